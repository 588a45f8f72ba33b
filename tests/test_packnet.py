"""PackNet: magnitude pruning counts, frozen weights bit-exact, masked prediction, capacity."""

import copy

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.data import rotated
from lifelong.strategies.masks import keep_largest, owned
from lifelong.train import run_stream

STREAM = rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario="task")


def run(strategy, config=None, hidden=(24, 12)):
    """Train on the 3-task stream, keeping a copy of the weights after every task."""
    torch.manual_seed(0)
    model = ll.make_model("mlp", STREAM.input_shape, STREAM.num_classes, hidden=hidden)
    snapshots = []
    config = config or ll.TrainConfig(lr=0.01, batch_size=32, epochs=2, device="cpu", eval_every_epoch=False)
    model, _ = run_stream(STREAM, model, strategy, config,
                          on_task_end=lambda m, o, s: snapshots.append(copy.deepcopy(m.state_dict())))
    return model, snapshots


def test_keep_largest_keeps_the_largest_magnitudes_among_candidates():
    w = torch.tensor([0.1, -0.5, 0.3, 0.9, -0.2])
    candidates = torch.tensor([True, True, True, False, True])
    assert keep_largest(w, candidates, 0.5).tolist() == [False, True, True, False, False]
    assert keep_largest(w, candidates, 0.0).sum() == 0


def test_each_task_owns_its_share_and_pruned_weights_are_zero():
    strategy = ll.make_strategy("packnet", prune=0.75, retrain_epochs=1)
    _, snapshots = run(strategy)
    owner = strategy.owner_["net.1.weight"]
    n = owner.numel()  # 36 × 24 = 864
    task0 = round(0.25 * n)
    task1 = round(0.25 * (n - task0))
    task2 = round(0.25 * (n - task0 - task1))
    assert [int((owner == t + 1).sum()) for t in range(3)] == [task0, task1, task2] == [216, 162, 122]
    after_first = snapshots[0]["net.1.weight"]
    assert torch.all(after_first[owner != 1] == 0), "weights released after task 0 must be zero"


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
    # hidden (2,): 72 prunable weights; task 0 keeps 71, task 1 the last one, task 2 finds none
    with pytest.raises(ll.LifelongError, match=r"no free weights left in layer 'net.1.weight'.*raise prune"):
        run(strategy, hidden=(2,))


@pytest.mark.parametrize("options, message", [({"prune": 1.0}, "prune must be in"),
                                              ({"retrain_epochs": -1}, "retrain_epochs must be")])
def test_bad_hyperparameters_are_refused(options, message):
    with pytest.raises(ll.LifelongError, match=message):
        ll.make_strategy("packnet", **options)
