"""Each metric on hand-built accuracy matrices with answers worked out by hand."""

import pytest

from lifelong import metrics

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
