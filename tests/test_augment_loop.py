"""Augmentation in the loop: which batch each hook sees, the draws it takes from the batch
generator (none when off), resume equality, and the replayed examples of DER, DER++, ER-ACE,
replay and iCaRL (alone and in a combination) augmented afresh."""

import dataclasses

import pytest
import torch
from conftest import idx_folder, tiny_arrays, whole_and_resumed
from torch import nn

import lifelong as ll
from lifelong.batches import batch_indices
from lifelong.data.augment import crop_flip, draw
from lifelong.train import run_stream

CFG = dict(epochs=1, lr=0.01, batch_size=32, device="cpu", seed=5)


class Seen(ll.Strategy):
    """Plain training that records the inputs ``loss`` and ``after_forward`` get at every step."""

    def __init__(self) -> None:
        self.trained, self.stored, self.outputs = [], [], []

    def loss(self, model, batch, outputs, task):
        self.trained.append(batch[0].clone())
        self.outputs.append(outputs.detach().clone())
        return super().loss(model, batch, outputs, task)

    def after_forward(self, model, batch, outputs, task):
        self.stored.append(batch[0].clone())
        assert torch.equal(outputs, self.outputs[-1])  # the augmented batch's (what DER stores)


def one_task(stream):
    return dataclasses.replace(stream, tasks=stream.tasks[:1])


def test_the_losses_see_the_augmented_batch_and_after_forward_the_batch_as_drawn(tiny_class_stream):
    stream = dataclasses.replace(one_task(tiny_class_stream), augment=True)  # on by the stream's default
    strategy = Seen()
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8])
    _, result = ll.fit(stream, model, strategy, CFG)
    assert result.augment is True
    x = stream[0].x_train
    g = torch.Generator().manual_seed(CFG["seed"])  # the loop's draws, in the loop's order
    batches = batch_indices(len(x), CFG["batch_size"], g)
    assert len(strategy.trained) == len(batches) == 3
    for idx, trained, stored in zip(batches, strategy.trained, strategy.stored):
        assert torch.equal(stored, x[idx])
        assert torch.equal(trained, crop_flip(stored, *draw(len(idx), g)))


def test_a_normalised_stream_is_padded_with_black_in_its_own_units(tiny_class_stream):
    meta = {"normalization": {"mean": [0.5], "std": [0.25]}}  # black: (0 − 0.5) / 0.25 = −2
    stream = dataclasses.replace(one_task(tiny_class_stream), augment=True, meta=meta)
    strategy = Seen()
    ll.fit(stream, ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8]), strategy, CFG)
    g = torch.Generator().manual_seed(CFG["seed"])
    first = batch_indices(len(stream[0].x_train), CFG["batch_size"], g)[0]
    expected = crop_flip(strategy.stored[0], *draw(len(first), g), fill=torch.tensor([-2.0]))
    assert torch.equal(strategy.trained[0], expected) and bool((expected == -2.0).any())


@pytest.mark.parametrize("augment", [None, False])
def test_off_trains_on_the_batches_as_drawn_and_takes_no_extra_draw(tiny_class_stream, augment):
    stream = one_task(tiny_class_stream)
    strategy, gen = Seen(), torch.Generator().manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8])
    run_stream(stream, model, strategy, ll.TrainConfig(**{**CFG, "epochs": 2, "augment": augment}),
               generator=gen)
    assert all(torch.equal(a, b) for a, b in zip(strategy.trained, strategy.stored, strict=True))
    reference = torch.Generator().manual_seed(0)
    for _ in range(2):  # two epochs: one permutation each, nothing else
        torch.randperm(len(stream[0].x_train), generator=reference)
    assert torch.equal(gen.get_state(), reference.get_state())


@pytest.mark.parametrize("strategy", ["naive", "der", "icarl"])
def test_an_augmented_run_resumes_to_identical_numbers(tmp_path, strategy):
    data = idx_folder(tmp_path / "data", tiny_arrays())
    cfg = ll.RunConfig(benchmark="rotated-mnist", strategy=strategy,
                       benchmark_options={"source": str(data), "angles": [0, 45, 90]},
                       model_options={"hidden": [16]}, train=ll.TrainConfig(**{**CFG, "augment": True}))
    whole, resumed = whole_and_resumed(cfg, tmp_path, task=2)
    assert whole.accuracy_matrix == resumed.accuracy_matrix and whole.curve == resumed.curve
    assert whole.augment and resumed.augment
    off = ll.run(dataclasses.replace(cfg, train=ll.TrainConfig(**CFG)), out=tmp_path / "off")
    assert not off.augment and off.curve != whole.curve  # the augmentation did change the training


class Recorder(nn.Module):
    """A small network that records the inputs of every forward pass."""

    def __init__(self, shape, classes) -> None:
        super().__init__()
        self.net = ll.make_model("mlp", shape, classes, hidden=[8])
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.net(x)


MARK = 7.0


def marked(x):
    """An 'augmentation' that makes its output recognisable: every pixel MARK."""
    return torch.full_like(x, MARK)


@pytest.mark.parametrize("name", ["replay", "der", "derpp", "er-ace", "icarl", "ewc+replay", "lwf+der"])
@pytest.mark.parametrize("lend", [True, False])
def test_replayed_examples_are_augmented_and_the_memory_keeps_them_as_drawn(tiny_class_stream, name, lend):
    stream, k = tiny_class_stream, 5
    options = {"buffer_size": 20, "replay_batch_size": k}
    members = name.split("+")
    options = {m: options for m in members if m not in ("ewc", "lwf")} if len(members) > 1 else options
    strategy = ll.make_strategy(name, **options)
    strategy.setup(stream, ll.TrainConfig(**CFG))
    strategy.lend_augmentation(marked if lend else None)
    model = Recorder(stream.input_shape, stream.num_classes)
    first, second = stream
    batch = (first.x_train[:10], first.y_train[:10], first.train_ids()[:10])
    model = strategy.before_task(model, first)
    strategy.after_forward(model, batch, model(batch[0]).detach(), first)
    strategy.after_task(model, first)
    model = strategy.before_task(model, second)
    new = (second.x_train[:10], second.y_train[:10], second.train_ids()[:10])
    model.inputs.clear()
    outputs = model(new[0])
    strategy.loss(model, new, outputs, second) + strategy.extra_loss(model, new, outputs, second)
    replayed = [x for x in model.inputs if len(x) == k and bool((x == MARK).all())]
    assert len(replayed) == (("derpp" in members) + 1 if lend else 0)  # DER++ draws twice
    memory = next(m for m in getattr(strategy, "members", [strategy]) if hasattr(m, "memory_")).memory_
    assert not bool((memory["x"] == MARK).any())  # stored as drawn, not augmented
