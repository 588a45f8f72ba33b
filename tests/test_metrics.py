"""Each metric on hand-built accuracy matrices with answers worked out by hand."""

import pytest

from lifelong import metrics
from lifelong.errors import LifelongError

# Three tasks. Row i = after learning task i; column j = task j.
R = [
    [0.90, 0.20, 0.10],
    [0.70, 0.95, 0.30],
    [0.60, 0.80, 0.85],
]
R0 = [0.10, 0.15, 0.05]


def test_average_accuracy_is_mean_of_last_row():
    assert metrics.average_accuracy(R) == pytest.approx((0.60 + 0.80 + 0.85) / 3)


def test_backward_transfer():
    # ((0.60 - 0.90) + (0.80 - 0.95)) / 2 = -0.225
    assert metrics.backward_transfer(R) == pytest.approx(-0.225)


def test_forward_transfer_uses_initial_row():
    # ((R[0][1] - R0[1]) + (R[1][2] - R0[2])) / 2 = ((0.20-0.15) + (0.30-0.05)) / 2 = 0.15
    assert metrics.forward_transfer(R, R0) == pytest.approx(0.15)


def test_forgetting_uses_best_earlier_accuracy():
    # task 0: max(0.90, 0.70) - 0.60 = 0.30 ; task 1: max(0.20, 0.95) - 0.80 = 0.15
    assert metrics.forgetting(R) == pytest.approx(0.225)
    R2 = [[0.5, 0.0], [0.9, 0.9]]  # accuracy on task 0 rose: negative forgetting
    assert metrics.forgetting(R2) == pytest.approx(-0.4)


def test_learning_accuracy_is_mean_diagonal():
    assert metrics.learning_accuracy(R) == pytest.approx((0.90 + 0.95 + 0.85) / 3)


def test_single_task_has_no_transfer():
    assert metrics.backward_transfer([[0.7]]) == 0.0
    assert metrics.forward_transfer([[0.7]], [0.1]) == 0.0
    assert metrics.forgetting([[0.7]]) == 0.0


def test_all_metrics_keys_and_values():
    out = metrics.all_metrics(R, R0)
    assert set(out) == {"acc", "bwt", "fwt", "forgetting", "learning_accuracy"}
    assert out["bwt"] == pytest.approx(-0.225)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="T×T"):
        metrics.average_accuracy([[0.1, 0.2]])
    with pytest.raises(ValueError, match="3 entries"):
        metrics.forward_transfer(R, [0.1, 0.2])
    with pytest.raises(ValueError, match="rows differ in length"):
        metrics.average_accuracy([[0.1, 0.2], [0.3]])


@pytest.fixture
def register():
    """Registers metrics for one test; the registry is restored afterwards."""
    added = []

    def add(name, function, **fields):
        metrics.METRICS.register(name, **fields)(function)
        added.append(name)
        return metrics.METRICS.get(name)

    yield add
    for name in added:
        metrics.METRICS.unregister(name)


def test_the_registered_table_columns_in_order():
    shown = metrics.METRICS.summary()
    assert [m.title for m in shown] == ["ACC (%)", "BWT (%)", "FWT (%)", "forgetting (%)"]
    assert metrics.METRICS.names() == ["acc", "bwt", "fwt", "forgetting", "learning_accuracy"]
    assert [m.higher_is_better for m in shown] == [True, True, True, False]
    assert metrics.METRICS.get("fwt").formula.startswith("FWT = 1/(T−1) Σ_{j>1}")
    assert not any(m.needs_reference for m in metrics.METRICS)


def test_formats_show_mean_and_interval():
    assert metrics.PERCENT(0.86667, 0.42354, 2) == "86.67 ± 42.35"
    assert metrics.PERCENT(-0.45, 0.0, 1) == "-45.00"
    assert metrics.SECONDS(10.5, 6.353, 2) == "10.5 ± 6.4" and metrics.MEGABYTES(2.0) == "2.00"


def test_a_name_is_registered_once_and_unknown_names_are_refused(register):
    with pytest.raises(LifelongError, match="metric 'acc' is registered twice"):
        register("acc", metrics.average_accuracy, label="ACC")
    with pytest.raises(LifelongError, match="unknown metric 'aia'; known: acc, bwt"):
        metrics.METRICS.get("aia")


def test_a_metric_with_a_reference_run_is_computed_only_with_one(register):
    def intransigence(R, reference):
        """I = (1/T) Σ_j (R*_{j,j} − R_{j,j}), R* the reference run's matrix (Chaudhry et al. 2018)."""
        return sum(reference[j][j] - R[j][j] for j in range(len(R))) / len(R)

    metric = register("intransigence", intransigence, label="I", needs_reference=True,
                      higher_is_better=False)
    assert metric.meaning.startswith("I = (1/T)")  # the docstring's first line by default
    assert "intransigence" not in metrics.all_metrics(R, R0)
    joint = [[1.0, 0.2, 0.1], [0.9, 1.0, 0.3], [0.9, 0.9, 0.95]]
    # ((1 - 0.9) + (1 - 0.95) + (0.95 - 0.85)) / 3 = 0.08333
    assert metrics.all_metrics(R, R0, joint)["intransigence"] == pytest.approx(0.25 / 3)
    with pytest.raises(LifelongError, match="needs the accuracy matrix of a reference run"):
        metric.compute(R, R0)
