"""Importance estimators: each Ω against a value computed by hand on a two-parameter model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lifelong.data import Stream, Task
from lifelong.strategies import make_strategy
from lifelong.strategies.gradient_stats import per_sample_gradient_stat

X = torch.tensor([[1.0], [2.0]])
Y = torch.tensor([0, 1])


class Scale(nn.Module):
    """logits = x · w with w a bare parameter: not an nn.Linear, so torch.func is used."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) * self.w


def linear_model(w):
    """logits = x · w, two parameters, as an nn.Linear (the fast per-example path)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(w).reshape(2, 1))
    return model


def stream_of(x, y, scenario="domain"):
    task = Task(0, "t0", x.reshape(-1, 1, 1, 1), y, x.reshape(-1, 1, 1, 1), y, (0, 1))
    return Stream("toy", [task], scenario, (1, 1, 1), 2)


def estimate(name, model, x=X, y=Y, **hp):
    stream = stream_of(x, y)
    strategy = make_strategy(name, **hp)
    strategy.setup(stream, None)
    omega = strategy.estimate(model, stream.tasks[0])
    return torch.cat([w.reshape(-1) for w in omega.values()]), strategy


MODELS = [linear_model, Scale]


@pytest.mark.parametrize("make", MODELS)
def test_empirical_fisher_per_sample_by_hand(make):
    # w = (ln 3, 0): x=1 → p=(3/4, 1/4), y=0: grad (−1/4, 1/4); x=2 → p=(9/10, 1/10), y=1:
    # grad 2·(9/10, −9/10). Fisher = mean of squares = (1/16 + 81/25) / 2 on both weights.
    omega, _ = estimate("ewc", make([math.log(3), 0.0]), fisher="empirical")
    assert torch.allclose(omega, torch.full((2,), (1 / 16 + 81 / 25) / 2), atol=1e-6)


def test_empirical_fisher_batched_by_hand():
    # one mini-batch of both examples: mean gradient (−1/4 + 9/5, 1/4 − 9/5) / 2, squared
    omega, _ = estimate("ewc", linear_model([math.log(3), 0.0]), fisher="empirical",
                        per_sample=False, batch_size=2)
    assert torch.allclose(omega, torch.full((2,), 0.775**2), atol=1e-6)


def test_true_fisher_matches_its_expectation():
    # x = 1, p = (3/4, 1/4): E_y[(p − e_y)_k²] = p0·p1 = 3/16 on both weights
    x, y = torch.ones(4000, 1), torch.zeros(4000, dtype=torch.long)
    omega, _ = estimate("ewc", linear_model([math.log(3), 0.0]), x, y, fisher="true")
    assert torch.allclose(omega, torch.full((2,), 3 / 16), atol=0.015)
    again, _ = estimate("ewc", linear_model([math.log(3), 0.0]), x, y, fisher="true")
    assert torch.equal(omega, again)


def test_true_fisher_draws_the_same_labels_on_both_paths():
    # the Linear shortcut draws from its own forward in chunks of 500, torch.func in chunks of
    # 25 from a separate no-grad forward: the same seeded draws, so the same Fisher
    x, y = torch.rand(1000, 1) * 3, torch.zeros(1000, dtype=torch.long)
    fast, _ = estimate("ewc", linear_model([math.log(3), 0.0]), x, y, fisher="true")
    slow, _ = estimate("ewc", Scale([math.log(3), 0.0]), x, y, fisher="true")
    assert torch.allclose(fast, slow, rtol=1e-5)


class Twice(nn.Module):
    """One Linear layer applied twice: the shortcut cannot read per-example gradients."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def forward(self, x):
        return self.layer(torch.tanh(self.layer(x)))


def test_per_example_sums_cover_every_example_when_the_shortcut_gives_up():
    torch.manual_seed(0)
    model, x = Twice(), torch.randn(60, 2)
    y, t = torch.randint(0, 2, (60,)), torch.zeros(60, dtype=torch.long)

    def losses(xb, yb, tb):
        return nn.functional.cross_entropy(model(xb), yb, reduction="none")

    total = per_sample_gradient_stat(model, losses, (x, y, t), "square", chunk=40)
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(60):
        grads = torch.autograd.grad(losses(x[i:i + 1], y[i:i + 1], t[:1]).sum(), list(model.parameters()))
        for (n, _), g in zip(model.named_parameters(), grads):
            expected[n] += g.pow(2)
    for n in expected:
        assert torch.allclose(total[n], expected[n], atol=1e-5), n


@pytest.mark.parametrize("make", MODELS)
def test_mas_by_hand(make):
    # ‖f‖² = x²(w0² + w1²) → |∂/∂w_k| = 2x²|w_k|; mean over x ∈ {1, 2} of 2x² is 5
    omega, _ = estimate("mas", make([1.0, -2.0]))
    assert torch.allclose(omega, torch.tensor([5.0, 10.0]), atol=1e-5)


def test_mas_takes_abs_per_example_not_of_the_sum():
    # outputs of opposite sign: per-example |g| differ from |Σ g| (a batched approximation)
    x = torch.tensor([[1.0], [-1.0]])
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 1))  # f = w x + b, two parameters
    with torch.no_grad():
        model[1].weight.fill_(2.0)
        model[1].bias.fill_(1.0)
    omega, _ = estimate("mas", model, x, torch.zeros(2, dtype=torch.long))
    # f = 3, −1; ∂f²/∂w = 2 f x = 6, 2; ∂f²/∂b = 2 f = 6, −2 → means of |·|: 4, 4
    assert torch.allclose(omega, torch.tensor([4.0, 4.0]))


def test_scp_by_hand():
    # mean output = x̄ w with x̄ = 3/2 → ∂⟨ξ, φ̄⟩/∂w_k = ξ_k x̄ → Γ_k = x̄² mean_l ξ_lk²
    omega, strategy = estimate("scp", linear_model([1.0, -2.0]), slices=7)
    xi = strategy.directions(2, strategy_task())
    assert torch.allclose(xi.norm(dim=1), torch.ones(7))
    assert torch.allclose(omega, 2.25 * xi.pow(2).mean(0), atol=1e-6)


def strategy_task():
    return stream_of(X, Y).tasks[0]


def test_scp_equals_a_loop_over_slices():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 3), nn.Tanh(), nn.Linear(3, 2))
    x = torch.randn(5, 1)
    omega, strategy = estimate("scp", model, x, torch.zeros(5, dtype=torch.long), slices=4)
    params = [p for p in model.parameters()]
    mean_out = model(x.reshape(-1, 1, 1, 1)).mean(0)
    slices = []
    for xi in strategy.directions(2, strategy_task()):
        grads = torch.autograd.grad(mean_out @ xi, params, retain_graph=True)
        slices.append(torch.cat([g.reshape(-1) for g in grads]).pow(2))
    assert torch.allclose(omega, torch.stack(slices).mean(0), atol=1e-6)


def test_l2_is_one():
    omega, _ = estimate("l2", linear_model([1.0, -2.0]))
    assert torch.equal(omega, torch.ones(2))


def test_fisher_uses_task_masked_logits():
    # task-incremental: task 0 owns class 0 and 1 of 3; the third logit must not count
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[math.log(3)], [0.0], [5.0]]))
    task = Task(0, "t0", X.reshape(-1, 1, 1, 1), Y, X.reshape(-1, 1, 1, 1), Y, (0, 1))
    two = torch.full_like(Y, 2)
    other = Task(1, "t1", X.reshape(-1, 1, 1, 1), two, X.reshape(-1, 1, 1, 1), two, (2,))
    stream = Stream("toy", [task, other], "task", (1, 1, 1), 3)
    strategy = make_strategy("ewc", fisher="empirical")
    strategy.setup(stream, None)
    omega = strategy.estimate(model, task)["1.weight"].reshape(-1)
    expected = (1 / 16 + 81 / 25) / 2
    assert torch.allclose(omega, torch.tensor([expected, expected, 0.0]), atol=1e-6)


def test_scp_sums_its_jacobian_over_chunks(monkeypatch):
    from lifelong.strategies import scp

    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 3), nn.Tanh(), nn.Linear(3, 2))
    x = torch.randn(7, 1)
    whole, _ = estimate("scp", model, x, torch.zeros(7, dtype=torch.long), slices=5)
    monkeypatch.setattr(scp, "CHUNK", 3)
    chunked, _ = estimate("scp", model, x, torch.zeros(7, dtype=torch.long), slices=5)
    assert torch.allclose(whole, chunked, atol=1e-6)
