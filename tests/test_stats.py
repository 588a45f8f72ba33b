"""Statistics over seeds: Student's t CDF against known values, the paired t-test by hand, and the
fact it rests on — runs of one seed share initial weights and batch order."""

import math

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.api import build
from lifelong.config import RunConfig
from lifelong.stats import paired_t_test, t_cdf, t_quantile_975

FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=2, device="cpu")


@pytest.mark.parametrize("t", [-7.5, -2.0, -0.4, 0.0, 0.3, 1.0, 2.5, 40.0])
def test_t_cdf_has_the_closed_forms_of_one_and_two_degrees_of_freedom(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)


def test_t_cdf_meets_the_tabled_quantiles():
    for df in range(1, 31):
        q = t_quantile_975(df)
        assert t_cdf(q, df) == pytest.approx(0.975, abs=2e-7), df
        assert t_cdf(-q, df) == pytest.approx(0.025, abs=2e-7), df
    assert t_cdf(1.812461, 10) == pytest.approx(0.95, abs=1e-6)  # t_{0.95, 10}, standard tables
    assert t_cdf(math.inf, 3) == 1.0 and t_cdf(-math.inf, 3) == 0.0
    with pytest.raises(ValueError, match="integer >= 1"):
        t_cdf(1.0, 0)


def test_t_cdf_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 10, 29, 30, 31, 60, 101):
        for t in (-12.0, -3.1, -1.0, -0.01, 0.5, 2.2, 6.0):
            assert t_cdf(t, df) == pytest.approx(float(stats.t.cdf(t, df)), abs=1e-12)


def test_paired_t_test_by_hand():
    # d = (0.10, 0.05, 0.12): mean 0.09, s_d = √(0.0013) = 0.0360555, t = 0.09 / (s_d/√3) = 4.32346,
    # two-sided p with 2 degrees of freedom = 1 − 4.32346/√(2 + 4.32346²) = 0.0495550
    diff, half, p = paired_t_test([0.80, 0.85, 0.90], [0.70, 0.80, 0.78])
    assert diff == pytest.approx(0.09)
    assert half == pytest.approx(4.302653 * math.sqrt(0.0013) / math.sqrt(3))
    assert p == pytest.approx(1 - 4.323460152737 / math.sqrt(2 + 4.323460152737 ** 2), rel=1e-9)
    assert p == pytest.approx(0.0495549858581702, rel=1e-9)
    assert paired_t_test([0.5, 0.6], [0.5, 0.6])[2] == 1.0  # no difference at all
    assert paired_t_test([0.6, 0.7], [0.5, 0.6])[2] == 0.0  # the same difference every seed
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_t_test([0.5], [0.4])
    with pytest.raises(ValueError, match="as many values"):
        paired_t_test([0.5, 0.6], [0.4])


def _config(strategy: str, seed: int) -> RunConfig:
    return RunConfig(benchmark="rotated-mnist", strategy=strategy, model_options={"hidden": [16]},
                     benchmark_options={"arrays": tiny_arrays(), "angles": [0, 45, 90]},
                     train=FAST.__class__(**{**FAST.__dict__, "seed": seed}))


def test_a_seed_pairs_runs_of_different_methods_on_the_same_weights_and_batches():
    """The paired test is sound only because runs of one seed start from the same weights and draw
    the same batches: naive and EWC (whose penalty is zero on the first task) then agree exactly
    after the first task; another seed gives other weights."""
    weights = {}
    for strategy, seed in (("naive", 0), ("ewc", 0), ("si", 0), ("naive", 1)):
        _, model, _ = build(_config(strategy, seed))
        weights[strategy, seed] = [p.detach().clone() for p in model.parameters()]
    for other in (("ewc", 0), ("si", 0)):
        assert all(torch.equal(a, b) for a, b in zip(weights["naive", 0], weights[other]))
    assert not all(torch.equal(a, b) for a, b in zip(weights["naive", 0], weights["naive", 1]))
    first = {s: ll.run(_config(s, 0)).accuracy_matrix[0] for s in ("naive", "ewc")}
    assert first["naive"] == first["ewc"]
    assert ll.run(_config("naive", 1)).accuracy_matrix != ll.run(_config("naive", 0)).accuracy_matrix
