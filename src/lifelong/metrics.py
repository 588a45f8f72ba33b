"""Pure functions on the accuracy matrix (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).

``R[i][j]`` is the accuracy on task j after training on tasks 0..i (T rows of T columns) and
``r0[j]`` the accuracy of the untrained model on task j. Indices below are 1-based, as in the
papers: R_{i,j} with i, j ∈ 1..T, and R_{0,j} = r0[j].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Matrix = Sequence[Sequence[float]]


def _square(R: Matrix) -> np.ndarray:
    try:
        A = np.asarray(R, dtype=float)
    except (ValueError, TypeError):
        raise ValueError("accuracy matrix must be T×T numbers; its rows differ in length or hold "
                         "other things") from None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be T×T with T ≥ 1, got shape {A.shape}")
    return A


def average_accuracy(R: Matrix) -> float:
    """ACC = (1/T) Σ_j R_{T,j}: the mean of the last row."""
    return float(_square(R)[-1].mean())


def backward_transfer(R: Matrix) -> float:
    """BWT = 1/(T−1) Σ_{j<T} (R_{T,j} − R_{j,j}); negative means forgetting. 0 when T = 1."""
    A = _square(R)
    T = A.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([A[-1, j] - A[j, j] for j in range(T - 1)]))


def forward_transfer(R: Matrix, r0: Sequence[float]) -> float:
    """FWT = 1/(T−1) Σ_{j>1} (R_{j−1,j} − R_{0,j}): zero-shot gain over the untrained model."""
    A = _square(R)
    b = np.asarray(r0, dtype=float)
    T = A.shape[0]
    if b.shape != (T,):
        raise ValueError(f"initial accuracies must have {T} entries, got {b.shape}")
    if T == 1:
        return 0.0
    return float(np.mean([A[j - 1, j] - b[j] for j in range(1, T)]))


def forgetting(R: Matrix) -> float:
    """F = 1/(T−1) Σ_{j<T} (max_{l<T} R_{l,j} − R_{T,j}) (Chaudhry et al. 2018). 0 when T = 1."""
    A = _square(R)
    T = A.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([A[: T - 1, j].max() - A[-1, j] for j in range(T - 1)]))


def learning_accuracy(R: Matrix) -> float:
    """LA = (1/T) Σ_j R_{j,j}: accuracy on each task just after learning it (plasticity)."""
    return float(np.diag(_square(R)).mean())


def all_metrics(R: Matrix, r0: Sequence[float]) -> dict[str, float]:
    """The five summary numbers a run reports."""
    return {
        "acc": average_accuracy(R),
        "bwt": backward_transfer(R),
        "fwt": forward_transfer(R, r0),
        "forgetting": forgetting(R),
        "learning_accuracy": learning_accuracy(R),
    }


def continued_metrics(R: Matrix, start: Sequence[float], first_task: int) -> dict[str, float]:
    """The summary of a learner that, trained on tasks 1..k, went on to learn tasks k+1..T.

    ``R`` has a row per new task (T − k rows of T columns), ``start`` the learner's accuracies
    before it went on (T values) and ``first_task`` = k. The rows of tasks 1..k were measured
    by an earlier run (if at all), so the paper's BWT, forgetting and FWT over all T tasks are
    not defined here. Reported instead: ACC over all T tasks (the paper's, from the last row);
    BWT, forgetting and learning accuracy of the new tasks (the paper's formulas on their
    (T − k) × (T − k) block); and ``old_tasks_change`` = (1/k) Σ_{j≤k} (R_{T,j} − start_j), what the
    learned tasks gained (negative: lost) while the new ones were learned."""
    A = np.asarray(R, dtype=float)
    b = np.asarray(start, dtype=float)
    T = b.shape[0] if b.ndim == 1 else -1
    if not 0 < first_task < T or A.shape != (T - first_task, T):
        raise ValueError(f"a continued run of tasks {first_task + 1}..{T} needs {T - first_task} rows of "
                         f"{T} accuracies and {T} starting accuracies, got {A.shape} and {b.shape}")
    new = A[:, first_task:]
    return {
        "acc": float(A[-1].mean()),
        "bwt": backward_transfer(new),
        "forgetting": forgetting(new),
        "learning_accuracy": learning_accuracy(new),
        "old_tasks_change": float(np.mean(A[-1, :first_task] - b[:first_task])),
    }
