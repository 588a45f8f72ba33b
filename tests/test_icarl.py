"""iCaRL: the BCE + distillation loss, the nearest-mean classifier and the exemplar budget by hand."""

import copy
import dataclasses
import math

import pytest
import torch
from conftest import blobs, idx_folder, tiny_arrays, whole_and_resumed
from torch import nn

import lifelong as ll
from lifelong.data import rotated, split
from lifelong.strategies.icarl import icarl_loss
from lifelong.strategies.memory import herding_order

FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, epochs=2, device="cpu", seed=3)


def sig(z):
    return 1 / (1 + math.exp(-z))


def bce(z, target):
    return -(target * math.log(sig(z)) + (1 - target) * math.log(1 - sig(z)))


def test_bce_with_distillation_on_a_tiny_example():
    # classes 0, 1 learned before (distilled), 2 new (one-hot), 3 never seen (left out)
    logits = torch.tensor([[0.0, 1.0, -1.0, 5.0], [2.0, -0.5, 0.5, -3.0]])
    old = torch.tensor([[2.0, 0.0, 3.0, 3.0], [-1.0, 1.0, 0.0, 0.0]])
    y = torch.tensor([2, 0])
    new_mask, old_mask = torch.tensor([False, False, True, False]), torch.tensor([True, True, False, False])
    first = bce(0.0, sig(2.0)) + bce(1.0, 0.5) + bce(-1.0, 1.0)
    second = bce(2.0, sig(-1.0)) + bce(-0.5, sig(1.0)) + bce(0.5, 0.0)  # its label 0 is old: distilled
    value = icarl_loss(logits, y, old, new_mask, old_mask)
    assert value.item() == pytest.approx((first + second) / 2, rel=1e-6)
    # before any old class: plain one-hot BCE over the new classes
    none = torch.zeros(4, dtype=torch.bool)
    first_task = icarl_loss(logits, y, None, torch.tensor([True, False, True, False]), none)
    assert first_task.item() == pytest.approx((bce(0.0, 0) + bce(-1.0, 1) + bce(2.0, 1) + bce(0.5, 0)) / 2)


def test_the_loss_hook_joins_exemplars_and_distils_from_the_previous_network(tiny_class_stream):
    stream, task = tiny_class_stream, tiny_class_stream.tasks[1]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    strategy = ll.make_strategy("icarl", buffer_size=6, replay_batch_size=6)
    strategy.setup(stream, FAST)
    strategy.before_task(model, stream.tasks[0])
    strategy.after_task(model, stream.tasks[0])  # exemplars of classes 0, 1 and a snapshot
    previous = copy.deepcopy(model)
    with torch.no_grad():
        model[1].weight.add_(0.1 * torch.randn_like(model[1].weight))
    strategy.before_task(model, task)
    batch = (task.x_train[:5], task.y_train[:5], task.train_ids()[:5])
    loss = strategy.loss(model, batch, model(batch[0]), task)

    x = torch.cat([batch[0], strategy.memory_["x"]])  # the 6 exemplars are all drawn
    y = torch.cat([batch[1], strategy.memory_["y"]]).tolist()
    z, q = model(x).tolist(), torch.sigmoid(previous(x)).tolist()
    expected = sum(bce(z[i][0], q[i][0]) + bce(z[i][1], q[i][1]) + bce(z[i][2], float(y[i] == 2))
                   + bce(z[i][3], float(y[i] == 3)) for i in range(len(y))) / len(y)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_nearest_mean_of_exemplars_on_hand_made_features():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))  # features: the input itself
    strategy = ll.make_strategy("icarl")
    strategy.learned_classes_ = torch.zeros(3, dtype=torch.bool)
    exemplars = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]])
    strategy.class_means_ = strategy.means(exemplars, torch.tensor([0, 0, 1]))
    r = 1 / math.sqrt(2)
    assert strategy.class_means_[:2].flatten().tolist() == pytest.approx([r, r, -1.0, 0.0])
    assert torch.isnan(strategy.class_means_[2]).all()  # no exemplars of class 2

    x = torch.tensor([[2.0, 2.0], [-1.0, 0.1]])
    model.eval()
    scores = strategy.predict(model, x, torch.zeros(2, dtype=torch.long))
    assert scores[0, :2].tolist() == pytest.approx([0.0, -math.sqrt((1 + r) ** 2 + 0.5)], abs=1e-6)
    assert scores[:, 2].max() < -1e30  # a class never seen is never predicted
    assert scores.argmax(1).tolist() == [0, 1]
    model.train()  # the loop trains through predict: the network's own outputs
    assert torch.equal(strategy.predict(model, x, torch.zeros(2, dtype=torch.long)), model(x))


def test_the_budget_is_shared_among_the_classes_seen_and_old_classes_keep_their_first_picks():
    x, y = blobs(40, classes=6)
    xt, yt = blobs(5, classes=6, seed=9)
    stream = split(classes_per_task=2, arrays=(x, y, xt, yt), scenario="class")
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("icarl", buffer_size=60)
    strategy.setup(stream, FAST)
    first_picks = None
    for task, per_class in zip(stream.tasks, (30, 15, 10)):
        strategy.before_task(model, task)
        strategy.after_task(model, task)  # no training: the features stay the same
        counts = torch.bincount(strategy.memory_["y"], minlength=6)
        assert counts.tolist() == [per_class] * (2 * task.id + 2) + [0] * (4 - 2 * task.id)
        class0 = strategy.memory_["x"][strategy.memory_["y"] == 0]
        if first_picks is None:
            xs = stream.tasks[0].x_train[stream.tasks[0].y_train == 0]
            first_picks = xs[herding_order(strategy.features(model, xs))]
        assert torch.equal(class0, first_picks[:per_class])
    assert strategy.memory_bytes() > strategy.memory_["x"].numel() * 4


def test_a_model_without_a_linear_layer_is_refused_in_one_line(tiny_class_stream):
    class NoLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(36, 4))

        def forward(self, x):
            return x.flatten(1) @ self.w

    with pytest.raises(ll.LifelongError, match="last nn.Linear layer, but NoLinear has none") as info:
        ll.fit(tiny_class_stream, NoLinear(), ll.make_strategy("icarl"), FAST)
    assert "\n" not in str(info.value)


def run(name, stream, config=FAST):
    torch.manual_seed(config.seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))
    strategy = ll.make_strategy(name)
    return strategy, ll.fit(stream, model, strategy, config)[1]


def test_icarl_beats_naive_on_a_tiny_class_incremental_stream(tiny_class_stream):
    longer = dataclasses.replace(FAST, epochs=3)  # long enough for naive to forget the first task
    _, naive = run("naive", tiny_class_stream, longer)
    strategy, icarl = run("icarl", tiny_class_stream, longer)
    assert icarl.metrics["acc"] >= 0.95 and icarl.metrics["acc"] > naive.metrics["acc"] + 0.2
    assert strategy.class_means_ is not None and icarl.memory_bytes[-1] > 0


def test_combined_with_a_regulariser_it_trains_and_classifies_by_nearest_mean(tiny_class_stream):
    strategy, result = run("icarl+ewc", tiny_class_stream)
    assert result.metrics["acc"] > 0.7
    icarl = strategy.members[0]
    x, t = tiny_class_stream.tasks[0].x_test, tiny_class_stream.tasks[0].test_ids()
    model = ll.make_model("mlp", tiny_class_stream.input_shape, tiny_class_stream.num_classes, hidden=(16,))
    model.eval()
    assert torch.equal(strategy.predict(model, x, t), icarl.predict(model, x, t))
    with pytest.raises(ll.LifelongError, match="icarl and replay each score the batch"):
        ll.make_strategy("icarl+replay")


def test_classes_coming_back_are_re_herded_within_the_budget():
    stream = rotated(angles=(0, 90), arrays=tiny_arrays())
    strategy, result = run("icarl", stream)
    assert torch.bincount(strategy.memory_["y"]).tolist() == [80] * 4  # 40 per task, both kept
    strategy = ll.make_strategy("icarl", buffer_size=20)
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))
    ll.fit(stream, model, strategy, FAST)
    assert torch.bincount(strategy.memory_["y"]).tolist() == [5] * 4


@pytest.mark.parametrize("strategy", ["icarl", "icarl+ewc"])
def test_an_interrupted_run_resumes_to_identical_numbers(tmp_path, strategy):
    data = idx_folder(tmp_path / "data", tiny_arrays())
    options = {"buffer_size": 12} if strategy == "icarl" else {"icarl": {"buffer_size": 12}}
    cfg = ll.RunConfig(
        benchmark="split-mnist", strategy=strategy, strategy_options=options,
        benchmark_options={"source": str(data), "classes_per_task": 1, "scenario": "class"},
        model_options={"hidden": [8]},
        train=ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=20, epochs=1, device="cpu"))
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    assert resumed.accuracy_matrix == whole.accuracy_matrix
    assert resumed.memory_bytes == whole.memory_bytes and whole.memory_bytes[-1] > 0
