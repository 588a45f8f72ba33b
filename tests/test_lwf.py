"""Learning without Forgetting: the distillation term against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies.lwf import distillation_loss
from lifelong.train import step_loss

FAST = ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=10, epochs=1, device="cpu", seed=4)


def soft(logits, T):
    e = [math.exp(z / T) for z in logits]
    return [v / sum(e) for v in e]


def test_distillation_on_a_tiny_shared_head_example():
    new, old = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 1.0, 3.0]])
    p, q = soft([0.0, 1.0, 3.0], 2.0), soft([1.0, 2.0, 0.0], 2.0)
    expected = -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    heads = torch.ones(1, 3, dtype=torch.bool)
    assert distillation_loss(new, old, heads, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_distillation_sums_heads_and_averages_the_batch():
    new = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, 0.0, 2.0, 1.0]])
    old = torch.tensor([[0.0, 1.0, 3.0, 0.0], [1.0, 1.0, 0.0, 2.0]])
    heads = torch.tensor([[True, True, False, False], [False, False, True, True]])

    def term(n, o, cols, T=3.0):
        p, q = soft([o[c] for c in cols], T), soft([n[c] for c in cols], T)
        return -sum(pi * math.log(qi) for pi, qi in zip(p, q))

    expected = sum(
        sum(term(new[b].tolist(), old[b].tolist(), cols) for b in range(2)) / 2
        for cols in ([0, 1], [2, 3]))
    assert distillation_loss(new, old, heads, 3.0).item() == pytest.approx(expected, rel=1e-6)


def test_lwf_loss_is_cross_entropy_plus_lambda_distillation(tiny_domain_stream):
    stream = tiny_domain_stream
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("lwf", lam=0.7, temperature=2.0)
    strategy.setup(stream, FAST)
    task = stream[1]
    batch = (task.x_train[:6], task.y_train[:6], task.train_ids()[:6])
    assert torch.equal(step_loss(model, strategy, batch, task)[0], F.cross_entropy(model(batch[0]),
                                                                          batch[1]))
    strategy.after_task(model, stream[0])
    old = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # training moved the weights on
    assert all(torch.equal(strategy.old_model_[k], old[k]) for k in old)
    new_logits = model(batch[0])
    old_model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    old_model.load_state_dict(old)
    p_old = F.softmax(old_model(batch[0]) / 2.0, dim=1)
    distill = -(p_old * F.log_softmax(new_logits / 2.0, dim=1)).sum(1).mean()
    expected = F.cross_entropy(new_logits, batch[1]) + 0.7 * distill
    assert torch.allclose(step_loss(model, strategy, batch, task)[0], expected, atol=1e-6)
    assert strategy.memory_bytes() == sum(v.numel() * 4 for v in old.values()) + 4


def test_lwf_distils_old_heads_only(tiny_task_stream, tiny_class_stream):
    for stream, expected in ((tiny_task_stream, [[True, True, False, False]]),
                             (tiny_class_stream, [[True, True, False, False]])):
        torch.manual_seed(0)
        model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
        strategy = ll.make_strategy("lwf")
        strategy.setup(stream, FAST)
        strategy.after_task(model, stream[0])
        assert strategy.old_heads_.tolist() == expected
        # at the start of a task the new model is the old one: the distillation term is the
        # entropy of the softened old outputs over the old classes (and its gradient is zero)
        task = stream[1]
        x, y, t = task.x_train[:5], task.y_train[:5], task.train_ids()[:5]
        logits = model(x)[:, :2] / strategy.temperature
        entropy = -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()
        ce = F.cross_entropy(strategy.logits(model, x, t), y)
        assert torch.allclose(step_loss(model, strategy, (x, y, t), task)[0], ce + entropy, atol=1e-6)


def test_lwf_multi_head_keeps_one_head_per_old_task(tiny_task_stream):
    stream = tiny_task_stream
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("lwf")
    strategy.setup(stream, FAST)
    for task in stream:
        strategy.after_task(model, task)
    assert strategy.old_heads_.tolist() == [[True, True, False, False],
                                            [False, False, True, True]]


def test_lwf_rejects_bad_options():
    with pytest.raises(ll.LifelongError, match="lam"):
        ll.make_strategy("lwf", lam=-1)
    with pytest.raises(ll.LifelongError, match="temperature"):
        ll.make_strategy("lwf", temperature=0)
