"""CPG: the pruning schedule, the accuracy goal on held-out TRAINING data, picking, growing."""

import copy

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.data import rotated
from lifelong.data.streams import Stream
from lifelong.strategies import cpg as cpg_module
from lifelong.strategies.cpg import CPG, sparsity_schedule
from lifelong.strategies.masks import owned
from lifelong.train import run_stream

STREAM = rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario="task")
CFG = ll.TrainConfig(lr=0.01, batch_size=32, epochs=2, device="cpu", eval_every_epoch=False)


def run(strategy, stream=STREAM):
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(24, 12))
    return run_stream(stream, model, strategy, CFG)


def scripted_accuracy(monkeypatch, values):
    """Replace the held-out accuracy CPG measures by a script of values."""
    script = iter(values)
    monkeypatch.setattr(cpg_module, "batch_accuracy", lambda *args, **kwargs: next(script))


def test_gradual_pruning_schedule_of_zhu_and_gupta():
    # s_i = 0.9 (1 − (1 − i/4)³): 0.9 × (1 − 27/64), 0.9 × (1 − 1/8), 0.9 × (1 − 1/64), 0.9
    assert sparsity_schedule(0.9, 4) == pytest.approx([0.5203125, 0.7875, 0.8859375, 0.9])


def test_compacting_stops_at_the_last_step_that_meets_the_goal(monkeypatch):
    one_task = Stream("one", STREAM.tasks[:1], "task", STREAM.input_shape, STREAM.num_classes)
    # after training 0.9 → goal 0.89; before pruning 0.9; step 1: 0.895 (kept), step 2: 0.85 (undone)
    scripted_accuracy(monkeypatch, [0.9, 0.9, 0.895, 0.85])
    strategy = CPG(tolerance=0.01, max_sparsity=0.9, prune_steps=4)
    model, _ = run(strategy, one_task)
    entry = strategy.log_[0]
    assert entry["sparsity"] == pytest.approx(0.5203125)
    assert entry["goal"] == pytest.approx(0.89) and entry["compacted_acc"] == 0.895
    owner, weight = strategy.owner_["net.1.weight"], model.net[1].weight
    assert int((owner == 1).sum()) == round((1 - 0.5203125) * owner.numel())
    assert torch.all(weight[owner == 0] == 0), "released weights must be zero"


def test_accuracy_goals_use_a_held_out_slice_of_the_training_data_only():
    strategy = CPG(holdout=0.25)
    strategy.setup(STREAM, CFG)
    task = STREAM[0]
    train_x, held_x = strategy.train_data(task)[0], strategy.held_out(task)[0]
    assert len(train_x) == 120 and len(held_x) == 40 and len(task.x_train) == 160
    rows = {tuple(r.flatten().tolist()) for r in task.x_train}
    assert all(tuple(r.flatten().tolist()) in rows for r in torch.cat([train_x, held_x]))
    assert len({tuple(r.flatten().tolist()) for r in torch.cat([train_x, held_x])}) == 160


def test_the_pick_mask_is_binary_forward_and_straight_through_backward():
    strategy = CPG()
    scores = torch.tensor([0.01, 0.001, -0.02], requires_grad=True)
    strategy._scores = {"w": scores}
    pick = strategy._pick("w", 1, learning=True)
    assert pick.tolist() == [1.0, 0.0, 0.0]
    (pick * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert scores.grad.tolist() == [1.0, 2.0, 3.0]


def test_task_t_predicts_with_its_own_weights_and_the_old_ones_it_picked():
    strategy = CPG(mask_lr=1e-2)  # a quick mask learning rate, so that some old weights are dropped
    model, _ = run(strategy)
    picks = strategy.picks_["1"]
    olds = [int(owned(o, 0, 0).sum()) for o in strategy.owner_.values()]
    dropped = sum(int((~picks[n] & owned(o, 0, 0)).sum()) for n, o in strategy.owner_.items())
    assert 0 < dropped < sum(olds), "the learned mask should drop some, not all, old weights"
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        params = dict(by_hand.named_parameters())
        for name, owner in strategy.owner_.items():
            params[name].mul_((owner == 2) | (picks[name] & (owner == 1)))
        for name, value in strategy.heads_["1"].items():
            params[name].copy_(value)
        x = STREAM[1].x_test
        assert torch.allclose(strategy.predict(model, x, STREAM[1].test_ids()), by_hand(x), atol=1e-6)


def test_growing_adds_units_when_the_goal_is_not_met(monkeypatch):
    one_task = Stream("one", STREAM.tasks[:1], "task", STREAM.input_shape, STREAM.num_classes)
    scripted_accuracy(monkeypatch, [0.5, 0.5, 0.5] + [0.5] * 10)  # never reaches the goal 0.99
    strategy = CPG(goal=0.99, grow=0.25, max_grow=2, prune_steps=2)
    model, state = run(strategy, one_task)
    assert strategy.log_[0]["grown"] == 2
    assert strategy.widths_ == [24 + 2 * 6, 12 + 2 * 3]
    assert model.net[1].weight.shape == (36, 36) and model.net[3].weight.shape == (18, 36)
    assert state.model_sizes[-1]["parameters"] == (36 * 36 + 36) + (36 * 18 + 18) + (18 * 4 + 4)


@pytest.mark.parametrize("options, message", [({"holdout": 0}, "holdout must be in"),
                                              ({"goal": 1.5}, "goal must be in"),
                                              ({"prune_steps": -1}, "prune_steps must be"),
                                              ({"max_sparsity": 1.0}, "max_sparsity must be")])
def test_bad_hyperparameters_are_refused(options, message):
    with pytest.raises(ll.LifelongError, match=message):
        ll.make_strategy("cpg", **options)


def test_without_a_goal_it_grows_only_when_no_free_weight_is_left():
    roomy, full = CPG(), CPG(max_sparsity=0.0)  # max_sparsity 0: each task keeps every weight it trained
    run(roomy)
    run(full)
    assert [e["grown"] for e in roomy.log_] == [0, 0, 0]
    assert [e["grown"] for e in full.log_] == [0, 1, 1]
    assert full.log_[1]["grew_because"] == ["no free weight left in 'net.1.weight'"]
    assert full.widths_ == [24 + 2 * 6, 12 + 2 * 3]
