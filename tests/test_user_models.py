"""User models and data the methods cannot handle: one-line errors before training, or handled.

Frozen layers (PNN, PackNet, CPG), functional activations (the chain parser), BatchNorm and
Dropout in GEM's batched memory gradients, generative replay's [0, 1] inputs and the previous
learner's mode when it labels replayed inputs.
"""

import copy

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.strategies.generative import GenerativeReplay

ONE_EPOCH = ll.TrainConfig(lr=1e-2, batch_size=16, epochs=1, device="cpu", eval_every_epoch=False)
CHAIN_METHODS = ["pnn", "packnet", "cpg"]


def chain(*middle: nn.Module) -> nn.Sequential:
    """Flatten → Linear(36, 8) → ReLU → [middle] → Linear(8, 8) → ReLU → Linear(8, 4)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), *middle, nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 4))


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------- frozen layers
@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_a_model_with_frozen_layers_is_refused_and_left_untouched(method, tiny_task_stream):
    model = chain()
    model[1].requires_grad_(False)  # e.g. a pretrained first layer the user wants kept
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ll.LifelongError, match=r"'1.weight', '1.bias' have requires_grad=False") as excinfo:
        ll.fit(tiny_task_stream, model, method, ONE_EPOCH)
    assert "unfreeze them" in one_line_error(excinfo) and "another strategy" in str(excinfo.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model[1].weight.requires_grad  # PNN no longer unfreezes it


# ----------------------------------------------------------------- chains the parser cannot read
class FunctionalReLU(nn.Module):
    """Layers defined in running order, but the activation is a function call in forward."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.inp = nn.Linear(36, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        return self.out(torch.relu(self.inp(self.flatten(x))))


@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_functional_activations_are_named_as_the_likely_cause(method, tiny_task_stream):
    with pytest.raises(ll.LifelongError, match=r"activations called as functions in forward \(torch.relu") \
            as excinfo:
        ll.fit(tiny_task_stream, FunctionalReLU(), method, ONE_EPOCH)
    assert "nn.ReLU" in one_line_error(excinfo) and "skip connections" in str(excinfo.value)


# ----------------------------------------------------------------- GEM, A-GEM: BatchNorm, Dropout
def test_gem_batched_refuses_batchnorm_before_training_and_names_the_option(tiny_domain_stream):
    started = []
    with pytest.raises(ll.LifelongError, match=r"BatchNorm1d layer '3'.*pass memory_grads='per_task'") \
            as excinfo:
        ll.fit(tiny_domain_stream, chain(nn.BatchNorm1d(8)), ll.make_strategy("gem", memory_per_task=8),
               ONE_EPOCH, progress=lambda event: started.append(event["event"]))
    one_line_error(excinfo)
    assert "epoch_end" not in started  # refused before the first task trains


@pytest.mark.parametrize("name, options", [("gem", {"memory_grads": "per_task"}), ("agem", {})])
def test_per_task_gem_and_agem_train_a_batchnorm_model(name, options, tiny_domain_stream):
    strategy = ll.make_strategy(name, memory_per_task=8, **options)
    _, result = ll.fit(tiny_domain_stream, chain(nn.BatchNorm1d(8)), strategy, ONE_EPOCH)
    assert len(result.accuracy_matrix) == len(tiny_domain_stream)


def test_gem_batched_runs_a_dropout_model_with_a_mask_per_task(tiny_domain_stream):
    model = chain(nn.Dropout(0.5))
    strategy = ll.make_strategy("gem", memory_per_task=8)
    strategy.setup(tiny_domain_stream, ONE_EPOCH)
    for task in tiny_domain_stream:
        strategy.after_task(model, task)
    model.train()
    torch.manual_seed(0)
    G = strategy.memory_gradients(model)  # vmap refused random operations before
    assert G.shape[0] == len(tiny_domain_stream) and torch.isfinite(G).all()
    model.eval()  # without dropout, the batched rows are the per-task gradients
    looped = ll.make_strategy("gem", memory_per_task=8, memory_grads="per_task")
    looped.setup(tiny_domain_stream, ONE_EPOCH)
    looped.memory_ = strategy.memory_
    assert torch.allclose(strategy.memory_gradients(model), looped.memory_gradients(model), atol=1e-6)


# ----------------------------------------------------------------- generative replay
def test_generative_replay_refuses_inputs_outside_0_1_before_training(tiny_class_stream):
    for task in tiny_class_stream:  # standardised features, not pixels in [0, 1]
        task.x_train, task.x_test = task.x_train * 4 - 2, task.x_test * 4 - 2
    model = ll.make_model("mlp", tiny_class_stream.input_shape, tiny_class_stream.num_classes, hidden=(8,))
    with pytest.raises(ll.LifelongError, match=r"VAE models inputs scaled to \[0, 1\].*min-max scale") \
            as excinfo:
        ll.fit(tiny_class_stream, model, GenerativeReplay(hidden=(8,), latent_dim=2), ONE_EPOCH)
    assert "task 'classes01' has training inputs in [-2," in one_line_error(excinfo)


def test_the_previous_learner_labels_replayed_inputs_in_eval_mode(tiny_class_stream):
    stream = tiny_class_stream
    model = chain(nn.BatchNorm1d(8), nn.Dropout(0.5))
    strategy = GenerativeReplay(hidden=(8,), latent_dim=2, generator_epochs=1)
    strategy.setup(stream, ONE_EPOCH)
    strategy.before_task(model, stream[0])
    model.train()
    model(stream[0].x_train)  # running statistics away from their initial values
    strategy.after_task(model, stream[0])
    strategy.before_task(model, stream[1])
    previous = {k: v.clone() for k, v in strategy.previous_.items()}
    state = strategy._rng.get_state()
    x, _, targets = strategy.replay(model, 32)
    strategy._rng.set_state(state)
    x_again, _, targets_again = strategy.replay(model, 32)
    assert torch.equal(x, x_again) and torch.equal(targets, targets_again)  # no dropout, no batch stats
    assert all(torch.equal(previous[k], v) for k, v in strategy.previous_.items())  # stats kept
    assert model.training  # the learner's mode is restored
    frozen = copy.deepcopy(model).eval()
    frozen.load_state_dict(previous)
    with torch.no_grad():
        expected = torch.softmax(frozen(x)[:, :2] / strategy.temperature, dim=1)
    assert torch.allclose(targets[:, :2], expected, atol=1e-6)
