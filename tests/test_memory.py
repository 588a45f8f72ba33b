"""Buffers (episodic, reservoir, class-balanced), the QP solver, and experience replay."""

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies.memory import (
    add_to_memory,
    append_task_memory,
    as_records,
    balanced_quotas,
    class_balanced_add,
    herding_add,
    herding_order,
    memory_size,
    reservoir_add,
    sample,
    tensor_bytes,
)
from lifelong.strategies.qp import solve_nonneg_qp
from lifelong.train import step_loss

FAST = ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=10, epochs=1, device="cpu", seed=1)


def items(n, first=0, label=None):
    """n examples whose input *is* their index, so tests can tell which ones were kept."""
    idx = torch.arange(first, first + n)
    y = idx % 4 if label is None else torch.full((n,), label)
    return as_records((idx.float().unsqueeze(1), y, torch.zeros(n, dtype=torch.long)))


# ----------------------------------------------------------------------------- QP solver
@pytest.mark.parametrize("lower", [0.0, 0.5])
def test_qp_matches_scipy_on_random_instances(lower):
    rng = np.random.default_rng(0)
    for _ in range(40):
        T = int(rng.integers(1, 15))
        G = rng.normal(size=(T, int(rng.integers(T, 40))))
        g = rng.normal(size=G.shape[1])
        P, q = G @ G.T + 1e-3 * np.eye(T), G @ g
        ours = solve_nonneg_qp(torch.tensor(P), torch.tensor(q), lower=lower).numpy()
        ref = scipy.optimize.minimize(
            lambda v, P=P, q=q: 0.5 * v @ P @ v + q @ v, np.full(T, lower + 0.1),
            jac=lambda v, P=P, q=q: P @ v + q, bounds=[(lower, None)] * T, method="L-BFGS-B",
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
        assert ours.min() >= lower
        np.testing.assert_allclose(ours, ref.x, atol=1e-5)
        grad = P @ ours + q  # KKT: zero on free variables, >= 0 on those at the bound
        assert np.all(grad > -1e-8)
        assert np.allclose(grad[ours > lower + 1e-9], 0, atol=1e-8)


def test_qp_interior_solution_is_the_unconstrained_minimum():
    P = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    q = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    expected = torch.linalg.solve(P, -q)  # (1/7, 6/7), both positive
    assert torch.allclose(solve_nonneg_qp(P, q), expected, atol=1e-12)
    assert torch.equal(solve_nonneg_qp(P, -q), torch.zeros(2, dtype=torch.float64))


# ----------------------------------------------------------------------------- reservoir
def sequential_algorithm_r(n_total, size, uniforms):
    buffer = []
    for i in range(n_total):
        if i < size:
            buffer.append(i)
        else:
            j = int(np.floor(uniforms[i] * (i + 1)))
            if j < size:
                buffer[j] = i
    return buffer


def test_reservoir_equals_sequential_algorithm_r_and_never_exceeds_its_size():
    size, gen, buffer, seen = 10, torch.Generator().manual_seed(5), {}, 0
    draws = torch.Generator().manual_seed(5)
    uniforms = []
    for start in range(0, 97, 13):
        n = min(13, 97 - start)
        uniforms += torch.rand(n, generator=draws, dtype=torch.float64).tolist()
        buffer, seen = reservoir_add(buffer, items(n, start), seen, size, gen)
        assert buffer["x"].shape[0] == min(size, seen) <= size
    assert seen == 97
    assert buffer["x"].squeeze(1).long().tolist() == sequential_algorithm_r(97, size, uniforms)


def test_reservoir_fills_one_storage_for_the_whole_buffer_without_copying_it():
    gen, buffer, seen = torch.Generator().manual_seed(0), {}, 0
    buffer, seen = reservoir_add(buffer, items(3), seen, 10, gen)
    storage = buffer["x"].untyped_storage().data_ptr()
    for start in range(3, 30, 3):  # filling (3 → 9 rows), then the partly full batch, then full
        buffer, seen = reservoir_add(buffer, items(3, start), seen, 10, gen)
        assert buffer["x"].untyped_storage().data_ptr() == storage
        assert buffer["x"].shape[0] == min(10, seen)
    assert buffer["x"].squeeze(1).long().unique().numel() == 10  # ten distinct examples kept


def test_reservoir_keeps_every_example_with_equal_probability():
    n_total, size, trials = 40, 8, 2500
    gen = torch.Generator().manual_seed(123)
    counts = torch.zeros(n_total)
    for _ in range(trials):
        buffer, seen = {}, 0
        for start in range(0, n_total, 7):
            buffer, seen = reservoir_add(buffer, items(min(7, n_total - start), start), seen,
                                         size, gen)
        counts[buffer["x"].squeeze(1).long()] += 1
    # each example is kept with probability size / n_total = 0.2
    assert counts.sum() == trials * size
    _, p_value = scipy.stats.chisquare(counts.numpy())
    assert p_value > 0.01
    assert (counts / trials - size / n_total).abs().max() < 0.04


# ----------------------------------------------------------------------------- class-balanced
def test_balanced_quotas_share_out_what_small_classes_cannot_use():
    assert balanced_quotas(torch.tensor([500, 100, 30, 5]), 100).tolist() == [33, 32, 30, 5]
    assert balanced_quotas(torch.tensor([50, 0, 50]), 9).tolist() == [4, 0, 5]
    assert balanced_quotas(torch.tensor([2, 3]), 100).tolist() == [2, 3]


def test_class_balanced_buffer_keeps_classes_balanced_and_bounded():
    gen, buffer = torch.Generator().manual_seed(0), {}
    # classes arrive one after another, as in a class-incremental stream, in batches of 10
    for label, n in [(0, 300), (1, 120), (2, 60), (3, 7)]:
        first = label * 1000
        for start in range(0, n, 10):
            buffer = class_balanced_add(buffer, items(min(10, n - start), first + start, label),
                                        60, gen)
            assert buffer["y"].shape[0] <= 60
    counts = torch.bincount(buffer["y"], minlength=4).tolist()
    assert counts[3] == 7 and sum(counts) == 60
    assert max(counts[:3]) - min(counts[:3]) <= 1
    kept = buffer["x"].squeeze(1).long()
    assert torch.equal(kept // 1000, buffer["y"])  # every stored example is a real one
    assert kept.unique().numel() == kept.numel()


def test_class_balanced_keeps_a_uniform_sample_inside_a_class():
    counts, gen = torch.zeros(30), torch.Generator().manual_seed(1)
    for _ in range(1500):
        buffer = {}
        for start in range(0, 30, 6):
            buffer = class_balanced_add(buffer, items(6, start, label=0), 5, gen)
        counts[buffer["x"].squeeze(1).long()] += 1
    _, p_value = scipy.stats.chisquare(counts.numpy())
    assert p_value > 0.01


def test_episodic_memory_rows_hold_m_examples_of_each_task_padded_when_short():
    gen = torch.Generator().manual_seed(0)
    memory = append_task_memory({}, items(50), 8, gen)
    memory = append_task_memory(memory, items(5, 100), 8, gen)
    assert memory["x"].shape == (2, 8, 1) and memory["valid"].sum(1).tolist() == [8, 5]
    assert set(memory["x"][0].squeeze(1).long().tolist()) <= set(range(50))
    assert memory["x"][0].unique().numel() == 8
    assert set(memory["x"][1][memory["valid"][1]].squeeze(1).long().tolist()) == set(
        range(100, 105))
    assert tensor_bytes(memory) == 2 * 8 * (4 + 8 + 8 + 1)


# ----------------------------------------------------------------------------- replay
def test_replay_loss_is_cross_entropy_on_new_and_replayed_examples(tiny_domain_stream):
    stream = tiny_domain_stream
    strategy = ll.make_strategy("replay", buffer_size=30, replay_batch_size=4)
    strategy.setup(stream, FAST)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    task = stream[0]
    first = (task.x_train[:10], task.y_train[:10], task.train_ids()[:10])
    loss, outputs, _ = step_loss(model, strategy, first, task)
    assert torch.allclose(loss, F.cross_entropy(model(first[0]), first[1]))  # empty memory: plain CE
    assert strategy.stored() == 0  # the loop fills the memory after the forward pass
    strategy.after_forward(model, first, outputs.detach(), task)
    assert strategy.stored() == 10
    second = (task.x_train[10:20], task.y_train[10:20], task.train_ids()[10:20])
    state = strategy.rng().get_state()
    loss, _, _ = step_loss(model, strategy, second, task)
    replay_idx = torch.randperm(10, generator=torch.Generator().set_state(state))[:4]
    x = torch.cat([second[0], first[0][replay_idx]])
    y = torch.cat([second[1], first[1][replay_idx]])
    assert torch.allclose(loss, F.cross_entropy(model(x), y))  # the mean over B_n ∪ B_M


@pytest.mark.parametrize("policy", ["reservoir", "class-balanced"])
def test_replay_buffer_stays_bounded_and_restores_its_generator(policy, tiny_class_stream):
    stream = tiny_class_stream
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("replay", buffer_size=24, policy=policy)
    _, result = ll.fit(stream, model, strategy, FAST)
    assert strategy.stored() == 24 and strategy.seen_ == sum(len(t.y_train) for t in stream)
    if policy == "class-balanced":
        assert torch.bincount(strategy.memory_["y"]).tolist() == [6, 6, 6, 6]
    assert result.memory_bytes[-1] == strategy.memory_bytes() == tensor_bytes(strategy.memory_)
    tensors, structure = strategy.state_dict()
    copy = ll.make_strategy("replay", buffer_size=24, policy=policy)
    copy.setup(stream, FAST)
    copy.load_state_dict(tensors, structure)
    assert torch.equal(copy.draw(10)["x"], strategy.draw(10)["x"])


def test_replay_rejects_bad_options():
    with pytest.raises(ll.LifelongError, match="buffer_size"):
        ll.make_strategy("replay", buffer_size=0)
    with pytest.raises(ll.LifelongError, match="policy"):
        ll.make_strategy("replay", policy="fifo")


# ----------------------------------------------------------------------------- records, herding
def test_herding_picks_the_example_that_brings_the_mean_of_the_picked_closest_to_the_class_mean():
    # normalised: (1,0) (0,1) (.6,.8) (.8,.6); μ = (.6,.6). Pick 1: (.6,.8) and (.8,.6) are 0.2 away
    # (first wins); pick 2: (.8,.6) gives mean (.7,.7), 0.141 away; pick 3: (1,0) and (0,1) tie at
    # 0.240 (first wins); then (0,1). Scaling an example does not change it (features are normalised).
    features = torch.tensor([[5.0, 0.0], [0.0, 2.0], [0.6, 0.8], [1.6, 1.2]])
    assert herding_order(features).tolist() == [2, 3, 0, 1]
    assert herding_order(features, 2).tolist() == [2, 3]


def test_herding_memory_keeps_each_classs_first_picks_within_an_equal_share():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(12, 3, generator=gen)
    records = as_records((torch.arange(12.0).unsqueeze(1), torch.arange(12) // 4,
                          torch.zeros(12, dtype=torch.long)))
    memory = herding_add({}, records, features, 6)  # 3 classes of 4 examples: 2 each
    for c in range(3):
        kept = memory["x"][memory["y"] == c].squeeze(1).long()
        assert kept.tolist() == (4 * c + herding_order(features[4 * c:4 * c + 4], 2)).tolist()
    more = as_records((torch.arange(12.0, 16.0).unsqueeze(1), torch.full((4,), 3),
                       torch.ones(4, dtype=torch.long)))
    memory = herding_add(memory, more, torch.randn(4, 3, generator=gen), 6)  # a 4th class: shares shrink
    counts = torch.bincount(memory["y"]).tolist()
    assert sum(counts) == 6 and max(counts) - min(counts) <= 1
    for c in range(3):  # a shrinking class keeps its first picks (iCaRL's reduce step)
        kept = memory["x"][memory["y"] == c].squeeze(1).long()
        assert kept.tolist() == (4 * c + herding_order(features[4 * c:4 * c + 4], counts[c])).tolist()


@pytest.mark.parametrize("policy", ["reservoir", "class-balanced", "herding"])
def test_a_memory_stores_any_named_tensors_and_refuses_records_of_other_fields(policy):
    gen = torch.Generator().manual_seed(0)
    records = {**items(10), "logits": torch.randn(10, 4), "features": torch.randn(10, 3)}
    memory, seen = add_to_memory(policy, {}, records, 6, 0, gen, features=records["features"])
    assert seen == 10 and memory_size(memory) == 6
    assert {"x", "y", "t", "logits", "features"} <= set(memory)
    rows = memory["x"].squeeze(1).long()  # each stored row is one record, every field together
    assert torch.equal(memory["logits"], records["logits"][rows])
    assert set(sample(memory, 4, gen)) == set(memory) and memory_size(sample(memory, 4, gen)) == 4
    with pytest.raises(ll.LifelongError, match="cannot join a memory"):
        add_to_memory(policy, memory, items(3), 6, seen, gen, features=torch.randn(3, 3))
