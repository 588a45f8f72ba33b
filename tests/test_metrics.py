"""Each metric on hand-built accuracy matrices with answers worked out by hand."""

import pytest

from lifelong import metrics
from lifelong.errors import LifelongError

# Three tasks. Row i = after learning task i; column j = task j.
# The learning curve of the same run: 2 epochs per task, the accuracy on every task seen.
CURVE = [
    {"task": 0, "epoch": 1, "seen_mean": 0.8, "accuracy": [0.80]},
    {"task": 0, "epoch": 2, "seen_mean": 0.9, "accuracy": [0.90]},
    {"task": 1, "epoch": 1, "seen_mean": 0.5, "accuracy": [0.40, 0.60]},   # the gap: 0.90 → 0.40
    {"task": 1, "epoch": 2, "seen_mean": 0.825, "accuracy": [0.70, 0.95]},
    {"task": 2, "epoch": 1, "seen_mean": 0.6, "accuracy": [0.65, 0.50, 0.65]},  # task 1: 0.95 → 0.50
    {"task": 2, "epoch": 2, "seen_mean": 0.75, "accuracy": [0.60, 0.80, 0.85]},
]
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
    assert set(out) == {"acc", "bwt", "fwt", "forgetting", "learning_accuracy", "aia"}
    assert out["bwt"] == pytest.approx(-0.225)
    more = metrics.all_metrics(R, R0, R, curve=CURVE, task_matrix=R)
    assert set(more) == set(metrics.METRICS.names())


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
    assert metrics.METRICS.names() == ["acc", "bwt", "fwt", "forgetting", "learning_accuracy", "aia",
                                       "intransigence", "min_acc", "til_acc", "til_bwt"]
    assert [m.name for m in metrics.METRICS.further()] == metrics.METRICS.names()[4:]
    assert [m.higher_is_better for m in shown] == [True, True, True, False]
    assert metrics.METRICS.get("fwt").formula.startswith("FWT = 1/(T−1) Σ_{j>1}")
    assert [m.name for m in metrics.METRICS if m.needs_reference] == ["intransigence"]


def test_formats_show_mean_and_interval():
    assert metrics.PERCENT(0.86667, 0.42354, 2) == "86.67 ± 42.35"
    assert metrics.PERCENT(-0.45, 0.0, 1) == "-45.00"
    assert metrics.SECONDS(10.5, 6.353, 2) == "10.5 ± 6.4" and metrics.MEGABYTES(2.0) == "2.00"


def test_a_name_is_registered_once_and_unknown_names_are_refused(register):
    with pytest.raises(LifelongError, match="metric 'acc' is registered twice"):
        register("acc", metrics.average_accuracy, label="ACC")
    with pytest.raises(LifelongError, match="unknown metric 'worst'; known: acc, bwt"):
        metrics.METRICS.get("worst")


def test_a_metric_with_a_reference_run_is_computed_only_with_one(register):
    def my_intransigence(R, reference):
        """I = (1/T) Σ_j (R*_{j,j} − R_{j,j}), R* the reference run's matrix (Chaudhry et al. 2018)."""
        return sum(reference[j][j] - R[j][j] for j in range(len(R))) / len(R)

    metric = register("my_intransigence", my_intransigence, label="I", needs_reference=True,
                      higher_is_better=False)
    assert metric.meaning.startswith("I = (1/T)")  # the docstring's first line by default
    assert "my_intransigence" not in metrics.all_metrics(R, R0)
    joint = [[1.0, 0.2, 0.1], [0.9, 1.0, 0.3], [0.9, 0.9, 0.95]]
    # ((1 - 0.9) + (1 - 0.95) + (0.95 - 0.85)) / 3 = 0.08333
    assert metrics.all_metrics(R, R0, joint)["my_intransigence"] == pytest.approx(0.25 / 3)
    with pytest.raises(LifelongError, match="needs the accuracy matrix of a reference run"):
        metric.compute(R, R0)


def test_average_incremental_accuracy_is_the_mean_over_steps_of_the_seen_tasks():
    # step 1: 0.90; step 2: (0.70 + 0.95) / 2 = 0.825; step 3: (0.60 + 0.80 + 0.85) / 3 = 0.75
    assert metrics.average_incremental_accuracy(R) == pytest.approx((0.90 + 0.825 + 0.75) / 3)
    assert metrics.average_incremental_accuracy([[0.7]]) == pytest.approx(0.7)


def test_intransigence_is_the_reference_diagonal_minus_the_runs():
    joint = [[0.95, 0.1, 0.1], [0.9, 0.99, 0.2], [0.9, 0.95, 0.90]]
    # ((0.95 - 0.90) + (0.99 - 0.95) + (0.90 - 0.85)) / 3 = 0.14 / 3
    assert metrics.intransigence(R, joint) == pytest.approx(0.14 / 3)
    assert metrics.intransigence(joint, joint) == 0.0
    with pytest.raises(ValueError, match="same stream"):
        metrics.intransigence(R, [[0.9]])
    metric = metrics.METRICS.get("intransigence")
    assert not metric.higher_is_better
    with pytest.raises(metrics.Absent, match="reference run"):
        metric.compute(R, R0)


def test_min_acc_is_the_mean_lowest_accuracy_of_earlier_tasks_while_later_ones_train():
    # task 0 after it: 0.40, 0.70, 0.65, 0.60 (curve) and R 0.70, 0.60 → 0.40
    # task 1 after it: 0.50, 0.80 (curve) and R 0.80 → 0.50; the last task has no later task
    assert metrics.min_accuracy(R, CURVE) == pytest.approx((0.40 + 0.50) / 2)
    # a row after a task can be the lowest (an after_task step that prunes): it counts
    low = [R[0], R[1], [0.30, 0.80, 0.85]]
    assert metrics.min_accuracy(low, CURVE) == pytest.approx((0.30 + 0.50) / 2)


def test_min_acc_is_absent_with_a_reason_not_zero():
    metric = metrics.METRICS.get("min_acc")
    no_curve = r"no learning curve recorded \(train option eval_every_epoch=false\)"
    with pytest.raises(metrics.Absent, match=no_curve):
        metric.compute(R, R0, curve=[])
    with pytest.raises(metrics.Absent, match="one task"):
        metric.compute([[0.9]], [0.1], curve=[{"task": 0, "epoch": 1, "seen_mean": 0.9, "accuracy": [0.9]}])
    old = [{k: v for k, v in p.items() if k != "accuracy"} for p in CURVE]
    with pytest.raises(metrics.Absent, match="no per-task accuracies"):
        metric.compute(R, R0, curve=old)


def test_task_incremental_metrics_read_the_task_il_matrix():
    til = [[0.99, 0.5, 0.5], [0.98, 0.99, 0.5], [0.97, 0.96, 0.99]]
    out = metrics.all_metrics(R, R0, task_matrix=til)
    assert out["til_acc"] == pytest.approx((0.97 + 0.96 + 0.99) / 3)
    assert out["til_bwt"] == pytest.approx(((0.97 - 0.99) + (0.96 - 0.99)) / 2)
    assert out["acc"] == pytest.approx(metrics.average_accuracy(R))  # R itself is untouched
    with pytest.raises(metrics.Absent, match="only for class-incremental runs") as absent:
        metrics.METRICS.get("til_acc").compute(R, R0)
    assert not absent.value.applies  # not a missing input: the metric does not apply


@pytest.mark.parametrize("metric", list(metrics.METRICS), ids=lambda m: m.name)
def test_every_metric_computes_from_full_inputs_and_documents_its_source(metric):
    """Every registered metric: a finite number from a run with a reference, a curve and a
    task-IL matrix; a docstring with its formula; a title and a meaning for the tables."""
    value = metric.compute(R, R0, R, curve=CURVE, task_matrix=R)
    assert -1.0 <= value <= 1.0
    assert "=" in metric.formula and metric.meaning and metric.title.endswith("(%)")
