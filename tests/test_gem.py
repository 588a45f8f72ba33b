"""GEM and A-GEM: the projected gradient never conflicts with the past, and is left alone
when nothing conflicts; batched memory gradients equal the one-backward-per-task ones."""

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies.agem import agem_project
from lifelong.strategies.gem import flat_grad
from lifelong.strategies.memory import append_task_memory, as_records, tensor_bytes
from lifelong.strategies.qp import solve_nonneg_qp

FAST = ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=10, epochs=1, device="cpu", seed=2)


def model_for(stream, seed=0):
    torch.manual_seed(seed)
    return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))


def gem_with_memory(name, stream, labels_shift=(1, 2), m=12, **options):
    """A strategy whose memories hold tasks 0, 1, … with labels shifted by ``labels_shift``
    (shifted labels make the memories conflict with the tasks' own data)."""
    strategy = ll.make_strategy(name, memory_per_task=m, **options)
    strategy.setup(stream, FAST)
    gen = torch.Generator().manual_seed(0)
    for task, shift in zip(stream.tasks, labels_shift):
        x, y, t = strategy.train_data(task)
        y = (y + shift) % stream.num_classes
        strategy.memory_ = append_task_memory(strategy.memory_, as_records((x, y, t)), m, gen)
    return strategy


def backward_on(model, strategy, task, n=10):
    x, y, t = task.x_train[:n], task.y_train[:n], task.train_ids()[:n]
    model.zero_grad()
    F.cross_entropy(strategy.logits(model, x, t), y).backward()
    return flat_grad(list(model.parameters()))


def past_gradients(model, strategy):
    """Each stored task's memory gradient by a separate plain backward (the reference)."""
    rows = []
    for k in range(strategy.memory_["y"].shape[0]):
        valid = strategy.memory_["valid"][k]
        x, y, t = (strategy.memory_[f][k][valid] for f in ("x", "y", "t"))
        model.zero_grad()
        F.cross_entropy(strategy.logits(model, x, t), y).backward()
        rows.append(flat_grad(list(model.parameters())))
    model.zero_grad()
    return torch.stack(rows)


@pytest.mark.parametrize("margin, eps", [(0.0, 0.0), (0.5, 0.0), (0.5, 1e-3)])
def test_gem_projection_removes_every_conflict(tiny_domain_stream, margin, eps):
    stream = tiny_domain_stream
    model = model_for(stream)
    strategy = gem_with_memory("gem", stream, margin=margin, eps=eps)
    G = past_gradients(model, strategy)
    g = backward_on(model, strategy, stream[2])
    assert (G @ g < 0).any(), "the test needs a conflict to start from"
    strategy.after_backward(model)
    projected = flat_grad(list(model.parameters()))
    assert not torch.allclose(projected, g)
    # exact KKT bound: eps·I in the dual loosens constraint k to ⟨g̃, g_k⟩ ≥ −eps·v*_k
    v = solve_nonneg_qp(G @ G.T + eps * torch.eye(2), G @ g, lower=margin)
    assert (G @ projected >= -eps * v - 1e-5 * G.norm(dim=1) * projected.norm()).all()


def test_gem_projection_is_the_closest_non_conflicting_gradient():
    rng = np.random.default_rng(3)
    G, g = rng.normal(size=(4, 12)), rng.normal(size=12)
    strategy = ll.make_strategy("gem", margin=0.0, eps=0.0)
    ours = strategy.project(torch.tensor(g), torch.tensor(G)).numpy()
    ref = scipy.optimize.minimize(  # the primal (eq. 8), solved by scipy
        lambda z: 0.5 * np.sum((z - g) ** 2), g, jac=lambda z: z - g, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda z: G @ z, "jac": lambda z: G}],
        options={"ftol": 1e-14, "maxiter": 500})
    assert (G @ g < 0).any()
    np.testing.assert_allclose(ours, ref.x, atol=1e-6)


@pytest.mark.parametrize("name", ["gem", "agem"])
def test_gradient_is_unchanged_when_nothing_conflicts(tiny_domain_stream, name):
    stream = tiny_domain_stream
    model = model_for(stream)
    strategy = gem_with_memory(name, stream, labels_shift=(0,), m=160)
    task = stream[0]  # the current batch is the remembered task itself: G = gᵀ
    g = backward_on(model, strategy, task, n=160)
    assert (past_gradients(model, strategy) @ g > 0).all()
    backward_on(model, strategy, task, n=160)
    strategy.after_backward(model)
    assert torch.equal(flat_grad(list(model.parameters())), g)


def test_gem_projection_copes_with_identical_past_gradients():
    rng = np.random.default_rng(4)
    row, g = torch.tensor(rng.normal(size=10)), torch.tensor(rng.normal(size=10))
    g = g - 2 * (g @ row).clamp_min(0) / (row @ row) * row - 0.1 * row  # make g conflict
    G = torch.stack([row, row, torch.tensor(rng.normal(size=10))])
    projected = ll.make_strategy("gem", margin=0.0, eps=0.0).project(g, G)
    assert (G @ g < 0).any() and (G @ projected >= -1e-9).all()


def test_agem_projection_removes_the_conflict_with_the_reference(tiny_domain_stream):
    stream = tiny_domain_stream
    model = model_for(stream)
    strategy = gem_with_memory("agem", stream, ref_batch_size=16)
    state = strategy.rng().get_state()
    g_ref = strategy.reference_gradient(model)
    strategy.rng().set_state(state)  # after_backward draws the same reference batch
    g = backward_on(model, strategy, stream[2])
    assert g @ g_ref < 0
    strategy.after_backward(model)
    projected = flat_grad(list(model.parameters()))
    assert abs(float(projected @ g_ref)) < 1e-5 * float(g.norm() * g_ref.norm())
    assert torch.allclose(projected, g - (g @ g_ref) / (g_ref @ g_ref) * g_ref)


def test_agem_reference_batch_draws_from_the_memory_as_it_is_now(tiny_domain_stream):
    stream = tiny_domain_stream
    strategy = gem_with_memory("agem", stream, labels_shift=(1,), m=6, ref_batch_size=100)
    first = strategy.reference_batch()
    assert sorted(first[2].tolist()) == [0] * 6  # one task stored: its 6 examples, task id 0
    strategy.after_task(model_for(stream), stream[1])  # a new memory: the rows are found afresh
    x, y, t = strategy.reference_batch()
    assert sorted(t.tolist()) == [0] * 6 + [1] * 6
    assert any(torch.equal(row, first[0][0]) for row in x)


def test_agem_formula_on_a_hand_example():
    g, ref = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 1.0])
    assert torch.equal(agem_project(g, ref), torch.tensor([1.0, 0.0]))  # g - (-2/1)·ref
    assert agem_project(-g, ref) is not None and torch.equal(agem_project(-g, ref), -g)


def test_batched_memory_gradients_equal_one_backward_per_task(tiny_task_stream):
    stream = tiny_task_stream  # multi-head: each memory uses its own task's logits
    model = model_for(stream)
    batched = ll.make_strategy("gem", memory_per_task=50)  # > 40 examples: padded rows
    batched.setup(stream, FAST)
    for task in stream:
        batched.after_task(model, task)
    looped = ll.make_strategy("gem", memory_per_task=50, memory_grads="per_task")
    looped.setup(stream, FAST)
    looped.memory_ = batched.memory_
    G = batched.memory_gradients(model)
    assert torch.allclose(G, looped.memory_gradients(model), atol=1e-6)
    assert torch.allclose(G, past_gradients(model, batched), atol=1e-6)
    # masked logits: task 0's memory gradient is zero on the output rows of task 1's classes
    bias = G[:, -stream.num_classes:]
    assert torch.equal(bias[0, 2:], torch.zeros(2)) and torch.equal(bias[1, :2], torch.zeros(2))
    assert bias[0, :2].abs().sum() > 0


def test_memory_bytes_count_examples_and_gradients(tiny_domain_stream):
    stream = tiny_domain_stream
    model = model_for(stream)
    params = sum(p.numel() for p in model.parameters())
    gem = ll.make_strategy("gem", memory_per_task=16)
    config = ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=80, epochs=1, device="cpu",
                            eval_every_epoch=False)
    _, result = ll.fit(stream, model, gem, config)
    per_example = 36 * 4 + 8 + 8 + 1  # a 6×6 float image, label, task id, valid flag
    assert result.memory_bytes == [k * (16 * per_example + params * 4) for k in (1, 2, 3)]
    agem = ll.make_strategy("agem", memory_per_task=16)
    _, result = ll.fit(stream, model_for(stream), agem, config)
    assert result.memory_bytes[-1] == 3 * 16 * per_example + params * 4
    assert agem.memory_bytes() == tensor_bytes(agem.memory_) + params * 4


def test_gem_and_agem_reject_bad_options():  # determinism: tests/test_contract.py
    for bad in ({"memory_per_task": 0}, {"margin": -1.0}, {"memory_grads": "vmap"}):
        with pytest.raises(ll.LifelongError):
            ll.make_strategy("gem", **bad)
    with pytest.raises(ll.LifelongError, match="ref_batch_size"):
        ll.make_strategy("agem", ref_batch_size=0)
