"""PackNet: magnitude pruning counts, frozen weights bit-exact, masked prediction, capacity."""

import copy

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.data import rotated
from lifelong.strategies.masks import keep_largest, owned
from lifelong.strategies.packnet import PackNet
from lifelong.train import run_stream

STREAM = rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario="task")


def run(strategy, config=None, hidden=(24, 12), stream=STREAM):
    """Train on the 3-task stream, keeping a copy of the weights after every task."""
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=hidden)
    snapshots = []
    config = config or ll.TrainConfig(lr=0.01, batch_size=32, epochs=2, device="cpu", eval_every_epoch=False)
    model, _ = run_stream(stream, model, strategy, config,
                          on_task_end=lambda m, o, s: snapshots.append(copy.deepcopy(m.state_dict())))
    return model, snapshots


def test_keep_largest_keeps_the_largest_magnitudes_among_candidates():
    w = torch.tensor([0.1, -0.5, 0.3, 0.9, -0.2])
    candidates = torch.tensor([True, True, True, False, True])
    assert keep_largest(w, candidates, 0.5).tolist() == [False, True, True, False, False]
    assert keep_largest(w, candidates, 0.0).sum() == 0


class Recording(PackNet):
    """PackNet that keeps, per task, the free weights which got a gradient during training."""

    def __init__(self, **options):
        super().__init__(**options)
        self.seen = []

    def after_task(self, model, task, train=None):
        self.seen.append({n: t.clone() for n, t in self._freeze.trained.items()})
        super().after_task(model, task, train)


def test_each_task_owns_its_share_of_the_weights_it_trained_and_pruned_weights_are_zero():
    strategy = Recording(prune=0.75, retrain_epochs=1)
    _, snapshots = run(strategy)
    owner = strategy.owner_["net.1.weight"]
    free = torch.ones_like(owner, dtype=torch.bool)
    for t, seen in enumerate(strategy.seen):
        trained = free & seen["net.1.weight"]
        mine = owner == t + 1
        assert int(mine.sum()) == round(0.25 * int(trained.sum())) > 0
        assert torch.all(trained[mine]), "a task owns only weights it trained"
        free &= ~mine
    after_first = snapshots[0]["net.1.weight"]
    assert torch.all(after_first[owner != 1] == 0), "weights released after task 0 must be zero"


def test_weights_that_got_no_gradient_are_released_not_kept():
    # the 45° task has 4 input pixels that are zero in every training image: the weights from
    # them never train (their magnitude is only the random draw), so task 1 must not own them
    strategy = ll.make_strategy("packnet", prune=0.5, retrain_epochs=1)
    run(strategy)
    dead = STREAM[1].x_train.flatten(1).abs().sum(0) == 0
    assert int(dead.sum()) == 4
    owner = strategy.owner_["net.1.weight"]
    assert not bool((owner[:, dead] == 2).any())
    assert bool((owner[:, ~dead] == 2).any())


def test_frozen_weights_and_biases_stay_bit_exact_under_momentum_and_weight_decay():
    config = ll.TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.01, batch_size=32,
                            epochs=2, device="cpu", fresh_optimizer=False, eval_every_epoch=False)
    strategy = ll.make_strategy("packnet")
    _, snapshots = run(strategy, config)
    for name, owner in strategy.owner_.items():
        mine = owner == 1
        assert torch.equal(snapshots[0][name][mine], snapshots[2][name][mine])
    for bias in ("net.1.bias", "net.3.bias"):
        assert torch.equal(snapshots[0][bias], snapshots[2][bias])
    assert not torch.equal(snapshots[0]["net.1.weight"], snapshots[2]["net.1.weight"])


def test_task_t_predicts_with_the_weights_of_tasks_up_to_t_and_its_own_head():
    strategy = ll.make_strategy("packnet", retrain_epochs=1)
    model, _ = run(strategy)
    x = STREAM[0].x_test
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        params = dict(by_hand.named_parameters())
        for name, owner in strategy.owner_.items():
            params[name].mul_(owned(owner, 0, 0))
        for name, value in strategy.heads_["0"].items():
            params[name].copy_(value)
        assert torch.equal(strategy.predict(model, x, STREAM[0].test_ids()), by_hand(x))


def test_no_free_weight_left_is_a_clear_error():
    strategy = ll.make_strategy("packnet", prune=0.01, retrain_epochs=0)
    # hidden (2,): 72 prunable weights, all trained (no input pixel is zero throughout at
    # 0°/90°/180°); task 0 keeps 71, task 1 the last one, task 2 finds none
    stream = rotated(angles=(0, 90, 180), arrays=tiny_arrays(), scenario="task")
    with pytest.raises(ll.LifelongError, match=r"no free weights left in layer 'net.1.weight'.*raise prune"):
        run(strategy, hidden=(2,), stream=stream)


@pytest.mark.parametrize("options, message", [({"prune": 1.0}, "prune must be in"),
                                              ({"prune": "0.5"}, "prune must be in"),
                                              ({"retrain_epochs": -1}, "retrain_epochs must be")])
def test_bad_hyperparameters_are_refused(options, message):
    with pytest.raises(ll.LifelongError, match=message):
        ll.make_strategy("packnet", **options)
