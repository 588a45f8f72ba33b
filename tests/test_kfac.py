"""kfac: the Kronecker-factored Laplace penalty, against values computed by hand."""

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_arrays
from torch import nn

import lifelong as ll
from lifelong.data.benchmarks import rotated
from lifelong.data.streams import Task
from lifelong.train import step_loss


def strategy(**params):
    s = ll.make_strategy("kfac", **params)
    s.seed_, s.class_mask_ = 0, None
    return s


def zero_layer() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    return layer


def two_examples() -> Task:
    x = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    return Task(0, "t", x, y, x, y, classes=(0, 1))


def test_factors_by_hand():
    """W = 0: p = (½, ½); the output gradients of log p(y) are ±(½, −½), so G = [[¼, −¼], [−¼, ¼]];
    ã = (1, 2, 1) and (0, 1, 1), so A is the mean of their outer products."""
    A, G = strategy(fisher="empirical").factors(zero_layer(), two_examples())
    assert torch.allclose(G[""], torch.tensor([[0.25, -0.25], [-0.25, 0.25]]))
    assert torch.allclose(A[""], torch.tensor([[0.5, 1.0, 0.5], [1.0, 2.5, 1.5], [0.5, 1.5, 1.0]]))


def test_penalty_and_its_gradient_by_hand():
    """Anchor 0, ΔW̃ = [[1, 0, 0], [0, 0, 1]] (W₀₀ = 1, b₁ = 1): G ΔW̃ A = [[0, −⅛, −⅛], [0, ⅛, ⅛]],
    tr(ΔW̃ᵀ G ΔW̃ A) = ⅛, so λ = 2 gives 0.25 and the gradient 2λ G ΔW̃ A."""
    layer, s = zero_layer(), strategy(lam=2.0, fisher="empirical")
    assert s.penalty(layer) == 0.0                                  # nothing learned yet
    s.after_task(layer, two_examples())
    assert float(s.penalty(layer)) == 0.0                           # at the anchor
    with torch.no_grad():
        layer.weight[0, 0] = 1.0
        layer.bias[1] = 1.0
    term = s.penalty(layer)
    assert float(term) == pytest.approx(0.25)
    layer.weight.grad, layer.bias.grad = torch.zeros(2, 2), torch.zeros(2)
    term.add_gradient()
    assert torch.allclose(layer.weight.grad, torch.tensor([[0.0, -0.5], [0.0, 0.5]]))
    assert torch.allclose(layer.bias.grad, torch.tensor([-0.5, 0.5]))


def test_one_example_gives_the_exact_rank_one_fisher():
    """With one example A ⊗ G = (ã ãᵀ) ⊗ (g gᵀ) is that example's Fisher, so the penalty is
    λ (gᵀ ΔW̃ ã)² for any ΔW̃."""
    torch.manual_seed(0)
    layer, s = nn.Linear(3, 4), strategy(lam=0.5, fisher="empirical")
    x, y = torch.randn(1, 3), torch.tensor([2])
    s.after_task(layer, Task(0, "t", x, y, x, y, classes=(0, 1, 2, 3)))
    g = (F.one_hot(y, 4).float() - F.softmax(layer(x), 1)).detach()
    a = torch.cat([x, torch.ones(1, 1)], 1)
    delta = torch.randn(4, 4)
    with torch.no_grad():
        layer.weight += delta[:, :3]
        layer.bias += delta[:, 3]
    expected = 0.5 * float(g @ delta @ a.T) ** 2
    assert float(s.penalty(layer)) == pytest.approx(expected, rel=1e-5)


def test_the_loop_gradient_equals_autograd_of_the_whole_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    s = strategy(lam=3.0)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    task = Task(0, "t", x, y, x, y, classes=(0, 1, 2))
    s.after_task(model, task)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.1 * torch.randn_like(p)
    batch = (x, y, torch.zeros(20, dtype=torch.long))
    loss, _, term = step_loss(model, s, batch, task)
    model.zero_grad()
    loss.backward()
    term.add_gradient()
    ours = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    total = F.cross_entropy(model(x), y)
    for name, layer in (("0", model[0]), ("2", model[2])):
        d = torch.cat([layer.weight, layer.bias[:, None]], 1) - s.anchors_[0][name]
        total = total + 3.0 * (d * (s.output_factors_[0][name] @ d @ s.input_factors_[0][name])).sum()
    total.backward()
    assert loss.item() == pytest.approx(total.item(), rel=1e-5)
    for mine, reference in zip(ours, (p.grad for p in model.parameters())):
        assert torch.allclose(mine, reference, atol=1e-6)


def test_every_task_keeps_its_own_factors_and_anchor():
    stream = rotated(angles=(0, 45, 90), arrays=tiny_arrays())
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8])
    s = ll.make_strategy("kfac")
    ll.fit(stream, model, s, ll.TrainConfig(lr=0.01, batch_size=16, epochs=1, device="cpu"))
    assert len(s.input_factors_) == len(s.output_factors_) == len(s.anchors_) == 3
    assert set(s.anchors_[0]) == set(s.input_factors_[0]) == {"net.1", "net.3"}   # the two Linear layers
    assert s.input_factors_[0]["net.1"].shape == (37, 37) and s.output_factors_[0]["net.1"].shape == (8, 8)
    assert not torch.equal(s.anchors_[0]["net.1"], s.anchors_[2]["net.1"])


def test_a_model_with_other_layers_is_refused_in_one_line():
    stream = rotated(angles=(0, 45), arrays=tiny_arrays())
    model = ll.make_model("cnn", stream.input_shape, stream.num_classes)
    with pytest.raises(ll.LifelongError, match="nn.Linear layers only.*use ewc"):
        ll.fit(stream, model, "kfac", {"epochs": 1, "device": "cpu"})
    with pytest.raises(ll.LifelongError, match="fisher"):
        ll.make_strategy("kfac", fisher="exact")
