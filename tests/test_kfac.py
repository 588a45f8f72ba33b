"""kfac: the Kronecker-factored Laplace penalty, against values computed by hand."""

import pytest
import torch
import torch.nn.functional as F
from conftest import idx_folder, tiny_arrays, whole_and_resumed
from torch import nn

import lifelong as ll
from lifelong.data.benchmarks import rotated
from lifelong.data.streams import Task
from lifelong.strategies.kfac import MERGED_TOL
from lifelong.strategies.kronecker import EigenTerm
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


# ------------------------------------------------------------------ the merged form
def two_tasks() -> list[Task]:
    gen = torch.Generator().manual_seed(1)
    tasks = []
    for k, n in enumerate((6, 5)):
        x = torch.randn(n, 3, generator=gen, dtype=torch.float64) + k
        y = torch.randint(0, 2, (n,), generator=gen)
        tasks.append(Task(k, f"t{k}", x, y, x, y, classes=(0, 1)))
    return tasks


def learn_two_tasks(*strategies) -> nn.Module:
    """A tiny float64 MLP moved before each of ``two_tasks()``, which every strategy learns
    (``after_task``) at the same weights; returns the model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    for task in two_tasks():
        with torch.no_grad():
            for p in model.parameters():
                p += 0.3 * torch.randn_like(p)
        for s in strategies:
            s.after_task(model, task)
    return model


def column_vec(m: torch.Tensor) -> torch.Tensor:
    """vec(M): the columns stacked, so vec(G M A) = (A ⊗ G) vec(M) for a symmetric A."""
    return m.T.reshape(-1)


def test_merged_penalty_and_gradient_by_explicit_kronecker_products():
    """Two tasks at different weights; merged: Ā, Ḡ the means of the two tasks' factors (the
    per-task form's, checked by hand above), the anchor the latest weights, and the penalty
    λ vec(ΔW̃)ᵀ (T Ā ⊗ Ḡ) vec(ΔW̃) = λ vec(ΔW̃)ᵀ ((A₁ + A₂) ⊗ (G₁ + G₂) / T) vec(ΔW̃), T = 2."""
    merged = strategy(lam=2.0, fisher="empirical", form="merged", tol=0.0)
    per_task = strategy(fisher="empirical")
    model = learn_two_tasks(merged, per_task)
    assert len(merged.input_factors_) == len(merged.anchors_) == 1
    assert merged.merged_tasks_ == {"0": 2, "2": 2}
    with torch.no_grad():
        for p in model.parameters():
            p += 0.1 * torch.randn_like(p)
    expected, grads = 0.0, []
    for name, layer in (("0", model[0]), ("2", model[2])):
        a = [f[name] for f in per_task.input_factors_]
        g = [f[name] for f in per_task.output_factors_]
        precision = torch.kron(a[0] + a[1], g[0] + g[1]) / 2
        d = torch.cat([layer.weight, layer.bias[:, None]], 1).detach() - per_task.anchors_[1][name]
        expected += 2.0 * column_vec(d) @ precision @ column_vec(d)
        grad = (2 * 2.0 * precision @ column_vec(d)).reshape(d.shape[1], d.shape[0]).T
        grads += [grad[:, :-1], grad[:, -1]]
    term = merged.penalty(model)
    assert float(term) == pytest.approx(float(expected), rel=1e-12)
    model.zero_grad()
    term.add_gradient()
    for p, grad in zip(model.parameters(), grads):
        assert torch.allclose(p.grad, grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("left_first", [False, True])
def test_eigenbasis_truncation_stays_within_its_stated_bound(left_first):
    """0 ⪯ A ⊗ G − K_r ⪯ tol · λ_max(A ⊗ G): the value is off by at most s·tol·λ_max‖ΔW̃‖² (and
    never above the exact one), the gradient by at most 2s·tol·λ_max‖ΔW̃‖; tol = 0 is exact."""
    gen = torch.Generator().manual_seed(0)

    def factor(n: int, decay: float) -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        return q @ torch.diag(decay ** torch.arange(n, dtype=torch.float64)) @ q.T

    out, inputs = 4, 5
    a, g = factor(inputs + 1, 0.3), factor(out, 0.4)
    anchor = torch.randn(out, inputs + 1, generator=gen, dtype=torch.float64)
    d = torch.randn(out, inputs + 1, generator=gen, dtype=torch.float64)
    weight, bias = anchor[:, :-1] + d[:, :-1], anchor[:, -1] + d[:, -1]
    precision = 1.5 * torch.kron(a, g)                 # scale s = 1.5 (T tasks merged)
    exact = column_vec(d) @ precision @ column_vec(d)
    exact_grad = (2 * precision @ column_vec(d)).reshape(inputs + 1, out).T
    top = float(torch.linalg.eigvalsh(precision)[-1])
    for tol, dropped in ((0.0, False), (0.01, True), (0.1, True)):
        term = EigenTerm.build(a, g, anchor, 1.5, tol, left_first)
        assert (term.weights.numel() < a.shape[0] * g.shape[0]) == dropped
        value, (left, right, right_b) = term.evaluate(weight, bias, grad_scale=2.0)
        grad = torch.cat([left @ right, (left @ right_b)[:, None]], 1)
        bound = tol * top * float((d ** 2).sum())
        assert -1e-12 <= float(exact - value) <= bound + 1e-12
        assert float((grad - exact_grad).norm()) <= 2 * tol * top * float(d.norm()) + 1e-10
        if not dropped:
            assert float(value) == pytest.approx(float(exact), rel=1e-12)
        at_anchor, _ = term.evaluate(anchor[:, :-1], anchor[:, -1], 2.0)
        assert float(at_anchor) == 0.0


def test_merged_state_does_not_grow_with_the_tasks():
    stream = rotated(angles=(0, 30, 60, 90), arrays=tiny_arrays())
    sizes = {}
    for form in ("per_task", "merged"):
        torch.manual_seed(0)
        model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8])
        s = ll.make_strategy("kfac", form=form)
        _, result = ll.fit(stream, model, s, ll.TrainConfig(lr=0.01, batch_size=16, epochs=1, device="cpu"))
        sizes[form] = result.memory_bytes
    assert sizes["merged"] == [sizes["merged"][0]] * 4 == [sizes["per_task"][0]] * 4
    assert sizes["per_task"] == [k * sizes["per_task"][0] for k in (1, 2, 3, 4)]
    assert s.merged_tasks_ == {"net.1": 4, "net.3": 4} and len(s.anchors_) == 1


def test_merged_form_resumes_and_saves_to_identical_numbers(tmp_path):
    folder = idx_folder(tmp_path / "data", tiny_arrays())
    cfg = ll.RunConfig(benchmark="rotated-mnist", strategy="kfac", strategy_options={"form": "merged"},
                       benchmark_options={"source": str(folder), "angles": [0, 45, 90]},
                       model_options={"hidden": [16]},
                       train=ll.TrainConfig(epochs=1, lr=0.01, batch_size=32, device="cpu"))
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    assert whole.accuracy_matrix == resumed.accuracy_matrix and whole.metrics == resumed.metrics

    stream = rotated(angles=(0, 45), arrays=tiny_arrays())
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])
    s = ll.make_strategy("kfac", form="merged")
    model, _ = ll.fit(stream, model, s, ll.TrainConfig(lr=0.01, batch_size=16, epochs=1, device="cpu"))
    with torch.no_grad():
        for p in model.parameters():
            p += 0.01
    ll.save_learner(tmp_path / "learner", model, s)
    loaded_model, loaded = ll.load_learner(tmp_path / "learner", ll.make_model(
        "mlp", stream.input_shape, stream.num_classes, hidden=[16]))
    assert loaded.hyperparameters() == s.hyperparameters()
    assert loaded.merged_tasks_ == {"net.1": 2, "net.3": 2}
    assert float(loaded.penalty(loaded_model)) == float(s.penalty(model)) > 0


def test_form_and_tol_are_checked():
    with pytest.raises(ll.LifelongError, match="form must be one of per_task, merged"):
        ll.make_strategy("kfac", form="sum")
    with pytest.raises(ll.LifelongError, match="tol must be in"):
        ll.make_strategy("kfac", tol=1.0)
    assert ll.make_strategy("kfac").threshold == 0.0          # per task: exact products
    assert ll.make_strategy("kfac", form="merged").threshold == MERGED_TOL


def test_per_task_form_in_eigenbases_matches_its_exact_products():
    """tol > 0 applies to the per-task form too (one eigenbasis term per task): at a tiny tol it
    gives the exact products' value and gradient."""
    exact, eigen = strategy(lam=2.0, fisher="empirical"), strategy(lam=2.0, fisher="empirical", tol=1e-12)
    model = learn_two_tasks(exact, eigen)
    assert [len(terms) for terms in eigen.terms().values()] == [2, 2]
    grads = []
    for s in (exact, eigen):
        term = s.penalty(model)
        model.zero_grad()
        term.add_gradient()
        grads.append((float(term), [p.grad.clone() for p in model.parameters()]))
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-9)
    assert all(torch.allclose(a, b, rtol=1e-8, atol=1e-12) for a, b in zip(grads[0][1], grads[1][1]))
