"""BiC (Wu et al. 2019): the bias layer (eq. 5) and its fit (eq. 6) by hand, the loss mix λ
(eqs. 3-4), the balanced held-out split, composition, and better than naive class-incrementally."""

import math

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies.bic import BiC, bic_loss, corrected, fit_bias

CFG = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=3, device="cpu", seed=0)


def test_the_bias_layer_scales_and_shifts_only_each_tasks_classes():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    bias = torch.tensor([[1.0, 0.0], [2.0, 0.5]])
    classes = torch.tensor([[True, True, False, False], [False, False, True, True]])
    assert corrected(logits, bias, classes).tolist() == [[1.0, 2.0, 6.5, 8.5]]
    assert torch.equal(corrected(logits, torch.zeros(0, 2), torch.zeros(0, 4, dtype=torch.bool)), logits)


@pytest.mark.parametrize("labels_up, labels_down, alpha, beta", [
    ([1, 1, 1, 0], [1, 0, 0, 0], math.log(3), 0.0),            # P(new | o=±1) = 3/4, 1/4
    ([1, 1, 1, 0], [1, 1, 0, 0], math.log(3) / 2, math.log(3) / 2),  # 3/4, 1/2
])
def test_the_fit_on_a_validation_set_finds_the_known_alpha_and_beta(labels_up, labels_down, alpha, beta):
    # old class 0 has logit 0, new class 1 logit o = ±1: P(y = 1) = σ(α·o + β), a logistic
    # regression whose maximum likelihood solves σ(α + β) = p, σ(−α + β) = q:
    # α = (logit p − logit q) / 2, β = (logit p + logit q) / 2.
    logits = torch.tensor([[0.0, 1.0]] * 4 + [[0.0, -1.0]] * 4)
    y = torch.tensor(labels_up + labels_down)
    a, b = fit_bias(logits, y, torch.tensor([False, True])).tolist()
    assert a == pytest.approx(alpha, abs=1e-5) and b == pytest.approx(beta, abs=1e-5)


def test_the_loss_mixes_distillation_and_cross_entropy_by_hand():
    # old classes {0, 1}, new {2}: λ = 2/3. New logits 0 → softmax_old(o/2) = (1/2, 1/2); old
    # logits (2 ln 3, 0) → softmax_old(ô/2) = (3/4, 1/4): L_d = −(3/4 + 1/4)·ln(1/2) = ln 2.
    # L_c = CE((0, 0, 0), 2) = ln 3.  L = 2/3·ln 2 + 1/3·ln 3.
    logits = torch.zeros(1, 3)
    old = torch.tensor([[2 * math.log(3), 0.0, 5.0]])
    loss = bic_loss(logits, torch.tensor([2]), old, torch.tensor([True, True, False]), 2 / 3, 2.0)
    assert float(loss) == pytest.approx(2 / 3 * math.log(2) + 1 / 3 * math.log(3), rel=1e-6)


def setup_after_first_task(stream, buffer_size=40):
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = BiC(buffer_size=buffer_size)
    strategy.setup(stream, CFG)
    first, second = stream.tasks[:2]
    strategy.after_task(strategy.before_task(model, first), first)
    strategy.before_task(model, second)
    return model, strategy, second


def test_lambda_is_old_over_all_classes_in_the_strategys_loss(tiny_class_stream):
    model, strategy, task = setup_after_first_task(tiny_class_stream)
    x, y = task.x_train[:8], task.y_train[:8]
    t = torch.ones_like(y)
    outputs = strategy.predict(model, x, t)
    # the old model is the model (no training in between): L_d = entropy of softmax(o_old / T)
    p = F.softmax(outputs[:, :2] / 2, dim=1)
    distill = -(p * p.log()).sum(1).mean()
    expected = 0.5 * distill + 0.5 * F.cross_entropy(outputs, y)  # n = 2 old, m = 2 new classes
    loss = strategy.loss(model, (x, y, t), outputs, task).detach()
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_the_validation_set_is_balanced_and_held_out_of_training(tiny_class_stream):
    _, strategy, task = setup_after_first_task(tiny_class_stream, buffer_size=40)
    # 20 exemplars of each old class, 2 held out each (9:1); 2 of each new class held out too
    val = strategy.exemplar_split()
    assert torch.bincount(strategy.memory_["y"][val]).tolist() == [2, 2]
    assert torch.bincount(task.y_train[strategy._held_out]).tolist() == [0, 0, 2, 2]
    x, y, _ = strategy.train_data(task)
    assert x.shape[0] == task.x_train.shape[0] - 4 + 36
    assert torch.bincount(y).tolist() == [18, 18, 38, 38]


def acc(name, stream, **options):
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(32,))
    strategy = ll.make_strategy(name, **options)
    _, result = ll.fit(stream, model, strategy, CFG)
    return result.metrics["acc"], result, strategy


def test_bic_beats_naive_and_learns_a_correction(tiny_class_stream):
    naive, _, _ = acc("naive", tiny_class_stream)
    bic, result, strategy = acc("bic", tiny_class_stream, buffer_size=40)
    assert bic > naive + 0.2, (bic, naive)
    assert strategy.bias_.shape == (2, 2) and strategy.bias_[0].tolist() == [1.0, 0.0]
    assert strategy.bias_[1].tolist() != [1.0, 0.0]
    assert result.memory_bytes[-1] >= 40 * 36 * 4


def test_bic_combines_with_a_regulariser_and_keeps_its_correction(tiny_class_stream):
    torch.manual_seed(0)
    model = ll.make_model("mlp", tiny_class_stream.input_shape, tiny_class_stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("bic+ewc", bic={"buffer_size": 40})
    model, _ = ll.fit(tiny_class_stream, model, strategy, CFG)
    bic = strategy.members[0]
    x = tiny_class_stream.tasks[0].x_test[:4]
    t = torch.zeros(4, dtype=torch.long)
    assert torch.equal(strategy.predict(model, x, t), bic.predict(model, x, t))
    for other in ("replay", "pnn", "joint"):
        with pytest.raises(ll.LifelongError, match="bic"):
            ll.make_strategy(f"bic+{other}")


def test_in_task_and_domain_incremental_streams_the_correction_is_the_identity(tiny_task_stream,
                                                                                tiny_domain_stream):
    for stream in (tiny_task_stream, tiny_domain_stream):
        _, _, strategy = acc("bic", stream, buffer_size=40)
        assert torch.equal(strategy.bias_, torch.tensor([[1.0, 0.0]] * len(stream)))
