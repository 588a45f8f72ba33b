"""The shared penalty, its merge rules, SI/RWalk path integrals, presets and whole runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lifelong.config import TrainConfig
from lifelong.data import Stream, Task
from lifelong.errors import LifelongError
from lifelong.models import make_model
from lifelong.strategies import make_strategy
from lifelong.strategies.base import Penalty, penalty_value
from lifelong.strategies.importance import (
    HYPERPARAMETER_PRESETS,
    QuadraticPenalty,
    hyperparameter_preset,
)
from lifelong.train import run_stream

METHODS = ["l2", "ewc", "online-ewc", "mas", "si", "rwalk", "scp"]


def two_weights(values):
    model = nn.Sequential(nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(values).reshape(2, 1))
    return model


def penalty_with(merge, omegas, anchors, lam=0.5, gamma=0.5):
    strategy = QuadraticPenalty(lam, merge, gamma)
    for omega, anchor in zip(omegas, anchors):
        strategy.merge_importance({"0.weight": torch.tensor(omega).reshape(2, 1)},
                                  {"0.weight": torch.tensor(anchor).reshape(2, 1)})
        strategy.tasks_learned_ += 1  # as the loop does after each task
    return strategy


def value_at(strategy, theta):
    return float(strategy.penalty(two_weights(theta)))


def penalty_grad(strategy, model):
    """The gradient the loop gives the penalty: its value, then ``Penalty.add_gradient``."""
    value = strategy.penalty(model)
    value.add_gradient()
    return value, model[0].weight.grad.reshape(-1)


def test_penalty_is_zero_at_anchor_and_its_gradient_is_2_lambda_omega_delta():
    strategy = penalty_with("sum", [[2.0, 3.0]], [[1.0, -1.0]], lam=0.5)
    assert value_at(strategy, [1.0, -1.0]) == 0.0
    model = two_weights([1.5, 0.0])
    loss, grad = penalty_grad(strategy, model)
    expected = 2 * 0.5 * torch.tensor([2.0, 3.0]) * torch.tensor([0.5, 1.0])
    assert torch.allclose(grad, expected)
    assert float(loss) == pytest.approx(0.5 * (2 * 0.25 + 3 * 1.0))
    assert torch.allclose(strategy.penalty_gradient("0.weight", model[0].weight).reshape(-1),
                          expected)


def test_the_loop_gradient_equals_autograd_of_the_whole_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    strategy = QuadraticPenalty(0.7, "sum")
    strategy.class_mask_ = None  # one head (``setup`` sets it from the stream)
    omega = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    anchor = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    strategy.merge_importance(omega, anchor)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    batch = (x, y, torch.zeros(5, dtype=torch.long))
    term = strategy.penalty(model)
    loss = strategy.loss(model, batch, model(x), None) + term.value
    loss.backward()
    term.add_gradient()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    reference = nn.functional.cross_entropy(model(x), y) + 0.7 * sum(
        (omega[n] * (p - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
    reference.backward()
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(ours[n], p.grad, atol=1e-6), n


def test_merge_separate_keeps_one_penalty_per_task():
    omegas, anchors = [[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]
    strategy = penalty_with("separate", omegas, anchors, lam=0.5)
    theta = [2.0, -1.0]
    # task 1: 1·4 + 2·1 = 6; task 2: 3·1 + 0 = 3 → λ·9
    assert value_at(strategy, theta) == pytest.approx(0.5 * 9, rel=1e-6)
    assert len(strategy.task_omegas_) == 2
    _, grad = penalty_grad(strategy, two_weights(theta))
    expected = 2 * 0.5 * torch.tensor([1 * 2 + 3 * 1, 2 * -1 + 0.0])
    assert torch.allclose(grad, expected)


def test_merge_sum_adds_omegas_and_anchors_at_the_latest_task():
    strategy = penalty_with("sum", [[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]])
    assert torch.equal(strategy.omega_["0.weight"].reshape(-1), torch.tensor([4.0, 2.0]))
    assert value_at(strategy, [1.0, 1.0]) == 0.0


def test_merge_decay_multiplies_the_old_omega_by_gamma():
    strategy = penalty_with("decay", [[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]],
                            gamma=0.5)
    assert torch.equal(strategy.omega_["0.weight"].reshape(-1), torch.tensor([3.5, 1.0]))


def test_merge_mean_is_the_running_mean():
    strategy = penalty_with("mean", [[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]], [[0.0, 0.0]] * 3)
    assert torch.allclose(strategy.omega_["0.weight"].reshape(-1), torch.tensor([3.0, 2.0]))


def test_merge_latest_replaces_omega():
    strategy = penalty_with("latest", [[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]])
    assert torch.equal(strategy.omega_["0.weight"].reshape(-1), torch.tensor([3.0, 0.0]))


def test_new_parameters_are_not_penalised():
    strategy = penalty_with("sum", [[1.0, 1.0]], [[0.0, 0.0]])
    grown = nn.Sequential(nn.Linear(1, 2, bias=False), nn.Linear(2, 2))
    with torch.no_grad():
        grown[0].weight.fill_(1.0)
    assert float(strategy.penalty(grown)) == pytest.approx(0.5 * 2)


def drive(strategy, model, loss_fn, steps, lr, set_to_none=True):
    """The loop's order of hooks, with plain SGD on a given loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        term = strategy.penalty(model)
        loss = loss_fn(model) + penalty_value(term)
        opt.zero_grad(set_to_none=set_to_none)
        loss.backward()
        strategy.read_gradient(model)
        if isinstance(term, Penalty):
            term.add_gradient()
        strategy.after_backward(model)
        opt.step()
        strategy.after_step(model)


def quadratic(h, c):
    return lambda model: 0.5 * (h * (model[0].weight.reshape(-1) - c).pow(2)).sum()


def test_si_path_integral_on_a_quadratic_matches_its_closed_form():
    # L = ½ h (θ − c)², SGD step η: θ_t − c = r^t d0 with r = 1 − ηh, g_t = h r^t d0 and
    # ω = Σ_t η g_t² = η h² d0² (1 − r^{2T}) / (1 − r²); Ω = ω / ((θ_T − θ_0)² + ξ)
    h, c, d0, eta, steps, xi = torch.tensor([1.0, 4.0]), torch.tensor([1.0, -1.0]), 1.0, 0.1, 20, 0.1
    model = two_weights((c + d0).tolist())
    strategy = make_strategy("si", lam=1.0, xi=xi)
    task = Task(0, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                torch.zeros(1, dtype=torch.long), (0,))
    strategy.before_task(model, task)
    drive(strategy, model, quadratic(h, c), steps, eta)
    r = 1 - eta * h
    omega_path = eta * h**2 * d0**2 * (1 - r ** (2 * steps)) / (1 - r**2)
    assert torch.allclose(strategy.path_["0.weight"].reshape(-1), omega_path, rtol=1e-5)
    change = d0 * (r**steps - 1)
    expected = omega_path / (change**2 + xi)
    omega = strategy.estimate(model, task)["0.weight"].reshape(-1)
    assert torch.allclose(omega, expected, rtol=1e-5)


def test_si_integrates_the_task_gradient_without_the_penalty():
    strategy = penalty_with("sum", [[2.0, 2.0]], [[0.0, 0.0]], lam=1.0)
    si = make_strategy("si", lam=1.0)
    si.omega_, si.anchor_ = strategy.omega_, strategy.anchor_
    model = two_weights([1.0, 1.0])
    task = Task(1, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                torch.zeros(1, dtype=torch.long), (0,))
    si.before_task(model, task)
    drive(si, model, quadratic(torch.ones(2), torch.tensor([3.0, 3.0])), 1, 0.1)
    # task gradient at θ = 1: (1 − 3) = −2; step with the penalty's 2·2·1 = 4: Δθ = −0.1·2 = −0.2
    assert torch.allclose(si.path_["0.weight"].reshape(-1), torch.tensor([-0.4, -0.4]))


@pytest.mark.parametrize("set_to_none", [True, False])
def test_si_path_uses_the_task_gradient_over_many_steps_however_the_loop_zeroes(set_to_none):
    # The penalty writes its total gradient into a buffer of its own, so the task gradient SI
    # integrates survives; a loop that zeroes .grad in place hands that buffer back each step.
    h, c, omega, anchor, lam, eta = 1.0, 3.0, 2.0, 0.0, 0.5, 0.1
    si = make_strategy("si", lam=lam)
    si.merge_importance({"0.weight": torch.full((2, 1), omega)}, {"0.weight": torch.zeros(2, 1)})
    model = two_weights([1.0, 2.0])
    task = Task(1, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                torch.zeros(1, dtype=torch.long), (0,))
    si.before_task(model, task)
    drive(si, model, quadratic(torch.full((2,), h), torch.full((2,), c)), 4, eta, set_to_none)
    theta, path = torch.tensor([1.0, 2.0]), torch.zeros(2)
    for _ in range(4):  # by hand: g = h(θ − c), step with g + 2λΩ(θ − θ*), ω += −g·Δθ
        g = h * (theta - c)
        new = theta - eta * (g + 2 * lam * omega * (theta - anchor))
        path, theta = path + g * (theta - new), new
    assert torch.allclose(model[0].weight.detach().reshape(-1), theta)
    assert torch.allclose(si.path_["0.weight"].reshape(-1), path)


def test_si_path_closes_a_step_whose_after_step_was_skipped():
    si = make_strategy("si", lam=1.0)
    model = two_weights([1.0, 2.0])
    task = Task(0, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                torch.zeros(1, dtype=torch.long), (0,))
    si.before_task(model, task)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = quadratic(torch.ones(2), torch.zeros(2))
    for _ in range(2):  # a loop that never calls after_step
        term = si.penalty(model)
        loss = loss_fn(model) + penalty_value(term)
        opt.zero_grad()
        loss.backward()
        si.read_gradient(model)
        if isinstance(term, Penalty):
            term.add_gradient()
        opt.step()
    si.after_step(model)
    # g = θ, θ ← 0.9 θ: −g·Δθ = 0.1 θ² per step, θ = (1, 2) then (0.9, 1.8)
    expected = 0.1 * torch.tensor([1.0, 4.0]) * (1 + 0.81)
    assert torch.allclose(si.path_["0.weight"].reshape(-1), expected)


def rwalk_after_two_steps(**params):
    rw = make_strategy("rwalk", lam=1.0, epsilon=0.1, **params)
    model = two_weights([0.0, 0.0])
    task = Task(0, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                torch.zeros(1, dtype=torch.long), (0,))
    rw.before_task(model, task)
    drive(rw, model, quadratic(torch.ones(2), torch.tensor([1.0, -2.0])), 2, 0.5)
    return rw, rw.estimate(model, task)["0.weight"].reshape(-1)


# SGD 0.5 on ½(θ − c)², c = (1, −2), from θ = 0: g1 = (−1, 2), Δ1 = (0.5, −1);
# g2 = (−0.5, 1), Δ2 = (0.25, −0.5)
G1, D1, G2, D2 = (torch.tensor(v) for v in ([-1.0, 2.0], [0.5, -1.0], [-0.5, 1.0], [0.25, -0.5]))


@pytest.mark.parametrize("interval", [2, 3])  # 3: the task's last, shorter interval counts
def test_rwalk_scores_an_interval_by_hand(interval):
    rw, omega = rwalk_after_two_steps(interval=interval, alpha=0.9)
    fisher = (G1**2 + G2**2) / 2  # the first interval's mean g² starts the average
    moved = D1 + D2
    score = ((-G1 * D1 - G2 * D2) / (0.5 * fisher * moved**2 + 0.1)).clamp_min(0)
    assert torch.allclose(rw.fisher_["0.weight"].reshape(-1), fisher)
    assert torch.allclose(omega, fisher + score)


def test_rwalk_every_step_uses_the_fisher_before_the_step_and_averages_scores():
    rw, omega = rwalk_after_two_steps(interval=1, alpha=0.5)
    f1 = G1**2
    score = -G1 * D1 / (0.5 * f1 * D1**2 + 0.1) - G2 * D2 / (0.5 * f1 * D2**2 + 0.1)
    f2 = 0.5 * G2**2 + 0.5 * f1
    assert torch.allclose(rw.fisher_["0.weight"].reshape(-1), f2)
    assert torch.allclose(omega, f2 + score)
    model = two_weights([0.75, -1.5])
    rw.task_score_ = {"0.weight": torch.zeros(2, 1)}
    again = rw.estimate(model, None)["0.weight"].reshape(-1)
    assert torch.allclose(again, f2 + score / 2)  # averaged with the new (zero) score


def test_presets():
    assert hyperparameter_preset("course", "ewc") == {"lam": 100.0}
    assert hyperparameter_preset("course", "si") == {"lam": 1.0, "xi": 0.1}
    assert hyperparameter_preset("course", "l2") == {}
    assert hyperparameter_preset("fast", "ewc") == {}  # fast names only generative-replay
    assert hyperparameter_preset("fast", "generative-replay")["generator_after_last"] is False
    with pytest.raises(LifelongError, match="unknown hyper-parameter preset"):
        hyperparameter_preset("nope", "ewc")
    for preset, table in HYPERPARAMETER_PRESETS.items():
        for name, params in table.items():
            make_strategy(name, **params)
            if preset == "tuned":  # the tuned values are the constructor defaults
                default = make_strategy(name)
                assert {k: getattr(default, k) for k in params} == params


@pytest.mark.parametrize("name,bad", [
    ("ewc", {"lam": -1.0}), ("ewc", {"fisher": "exact"}), ("ewc", {"samples": 0}),
    ("ewc", {"merge": "max"}), ("online-ewc", {"gamma": 0.0}), ("online-ewc", {"gamma": 1.5}),
    ("si", {"xi": 0.0}), ("scp", {"slices": 0}), ("rwalk", {"alpha": 2.0}), ("rwalk", {"interval": 0}),
    ("rwalk", {"epsilon": -1.0}), ("mas", {"lam": "big"}), ("ewc", {"per_sample": "yes"}),
])
def test_bad_hyperparameters_raise(name, bad):
    with pytest.raises(LifelongError):
        make_strategy(name, **bad)


def train(stream, name, seed=0, **hp):
    torch.manual_seed(seed)
    model = make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))
    strategy = make_strategy(name, **hp)
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, device="cpu", seed=seed,
                         eval_every_epoch=False)
    model, state = run_stream(stream, model, strategy, config)
    return model, strategy, state


def first_task(stream: Stream) -> Stream:
    return Stream(stream.name, stream.tasks[:1], stream.scenario, stream.input_shape,
                  stream.num_classes)


@pytest.mark.parametrize("name", METHODS)
def test_penalty_is_positive_after_the_first_task(name, tiny_domain_stream):
    model, strategy, _ = train(first_task(tiny_domain_stream), name)
    assert float(strategy.penalty(model)) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    assert float(strategy.penalty(model)) > 0


@pytest.mark.parametrize("name", METHODS)
def test_runs_on_every_scenario_and_repeats(name, tiny_domain_stream, tiny_task_stream,
                                           tiny_class_stream):
    for stream in (tiny_domain_stream, tiny_task_stream, tiny_class_stream):
        _, strategy, state = train(stream, name)
        matrix = torch.tensor(state.accuracy_matrix)
        assert matrix.shape == (len(stream), len(stream))
        assert ((matrix >= 0) & (matrix <= 1)).all()
    _, again, state_again = train(stream, name)
    assert state_again.accuracy_matrix == state.accuracy_matrix
    for key, omega in strategy.omega_.items():
        assert torch.equal(omega, again.omega_[key])


@pytest.mark.parametrize("name", ["ewc", "si"])
def test_state_round_trip_keeps_the_penalty(name, tiny_domain_stream):
    model, strategy, _ = train(tiny_domain_stream, name)
    tensors, structure = strategy.state_dict()
    fresh = make_strategy(name)
    fresh.load_state_dict(tensors, structure)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    restored = float(fresh.penalty(model))
    assert restored == pytest.approx(float(strategy.penalty(model)))
