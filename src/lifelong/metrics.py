"""Pure functions on the accuracy matrix (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).

``R[i][j]`` is the accuracy on task j after training on tasks 0..i (T rows of T columns) and
``r0[j]`` the accuracy of the untrained model on task j. Indices below are 1-based, as in the
papers: R_{i,j} with i, j ∈ 1..T, and R_{0,j} = r0[j].

Each metric is registered in ``METRICS`` with its column label, display format and direction;
the tables, CSV files, HTML page and CLI summary read it from there, so one decorated function
in any file adds a column everywhere::

    @METRICS.register("worst", label="worst task", meaning="accuracy on the worst task at the end")
    def worst_task_accuracy(R):   # its docstring: the formula
        ...

``Absent`` (from ``metric_registry``) is how a metric says it has no value for a run, and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metric_registry import (  # noqa: F401  (the registry's names, public here as before)
    MEGABYTES,
    METRICS,
    PERCENT,
    SECONDS,
    Absent,
    Format,
    Matrix,
    Metric,
    MetricRegistry,
)


def _square(R: Matrix) -> np.ndarray:
    try:
        A = np.asarray(R, dtype=float)
    except (ValueError, TypeError):
        raise ValueError("accuracy matrix must be T×T numbers; its rows differ in length or hold "
                         "other things") from None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be T×T with T ≥ 1, got shape {A.shape}")
    return A


@METRICS.register("acc", label="ACC", meaning="mean accuracy over all tasks after the last")
def average_accuracy(R: Matrix) -> float:
    """ACC = (1/T) Σ_j R_{T,j}: the mean of the last row."""
    return float(_square(R)[-1].mean())


@METRICS.register("bwt", label="BWT", meaning="mean change on each earlier task since just after "
                  "learning it (negative: forgetting)")
def backward_transfer(R: Matrix) -> float:
    """BWT = 1/(T−1) Σ_{j<T} (R_{T,j} − R_{j,j}); negative means forgetting. 0 when T = 1."""
    A = _square(R)
    T = A.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([A[-1, j] - A[j, j] for j in range(T - 1)]))


@METRICS.register("fwt", label="FWT", uses_initial=True,
                  meaning="accuracy on each task before training on it, minus the untrained model's")
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


@METRICS.register("forgetting", label="forgetting", higher_is_better=False,
                  meaning="mean drop from each earlier task's best accuracy")
def forgetting(R: Matrix) -> float:
    """F = 1/(T−1) Σ_{j<T} (max_{l<T} R_{l,j} − R_{T,j}) (Chaudhry et al. 2018). 0 when T = 1."""
    A = _square(R)
    T = A.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([A[: T - 1, j].max() - A[-1, j] for j in range(T - 1)]))


@METRICS.register("learning_accuracy", label="LA", summary=False,
                  meaning="mean accuracy on each task just after learning it")
def learning_accuracy(R: Matrix) -> float:
    """LA = (1/T) Σ_j R_{j,j}: accuracy on each task just after learning it (plasticity)."""
    return float(np.diag(_square(R)).mean())


@METRICS.register("aia", label="AIA", summary=False,
                  meaning="mean over steps of the accuracy on the tasks seen so far")
def average_incremental_accuracy(R: Matrix) -> float:
    """AIA = (1/T) Σ_i (1/i) Σ_{j≤i} R_{i,j} (Rebuffi et al. 2017, iCaRL, Sec. 4: "average
    incremental accuracy"): after every task i, the accuracy on the tasks seen so far, averaged over
    the T steps (the first included, as in the paper). The paper's accuracy of a step is over the
    pooled test images of the classes seen; here it is the mean of the per-task accuracies, the
    same number when the tasks' test sets are equally large."""
    A = _square(R)
    return float(np.mean([A[i, : i + 1].mean() for i in range(A.shape[0])]))


@METRICS.register("intransigence", label="intransigence", summary=False, needs_reference=True,
                  higher_is_better=False,
                  meaning="the reference run's accuracy on each task just after it, minus this run's")
def intransigence(R: Matrix, reference: Matrix) -> float:
    """I = (1/T) Σ_k I_k with I_k = R*_{k,k} − R_{k,k} (Chaudhry et al. 2018, RWalk, Sec. 4.2):
    R* is the accuracy matrix of the reference run on the same stream and seed — by default the
    comparison's ``joint`` run, which at task k trains on tasks 1..k together, the paper's
    reference model for I_k. The paper defines I_k per task; this is its mean over the T tasks.
    Positive: the method learns each new task less well than the reference (lower is better)."""
    A, B = _square(R), _square(reference)
    if A.shape != B.shape:
        raise ValueError(f"the reference run's accuracy matrix is {B.shape[0]}×{B.shape[1]}, this "
                         f"run's {A.shape[0]}×{A.shape[1]}; a reference must run the same stream")
    return float(np.mean(np.diag(B) - np.diag(A)))


@METRICS.register("min_acc", label="min-ACC", summary=False, uses_curve=True,
                  meaning="mean over earlier tasks of their lowest accuracy while later tasks train "
                  "(stability gap)")
def min_accuracy(R: Matrix, curve: list[dict[str, Any]]) -> float:
    """min-ACC = 1/(T−1) Σ_{k<T} min_{n > t_k} A(E_k, f_n) (De Lange et al. 2023, "Continual
    evaluation for lifelong learning: identifying the stability gap", Sec. 3): for each task k
    but the last, the lowest accuracy on it at any evaluation after it was learned (t_k: the end
    of task k), averaged over those T−1 tasks. The evaluations here are the learning curve's —
    every task seen, after every epoch of the later tasks (``curve[i]["accuracy"]``) — and the
    rows R_{i,k}, i > k, after each later task. The paper evaluates every few iterations, so on the
    same run its min-ACC can only be lower: a per-epoch curve shows a gap no deeper than the
    finer one. Absent for one task (no earlier task) or a curve without per-task accuracies."""
    A = _square(R)
    T = A.shape[0]
    if T == 1:
        raise Absent("one task: no earlier task to lose while a later one trains")
    if any(not isinstance(p.get("accuracy"), list) or len(p["accuracy"]) != p["task"] + 1 for p in curve):
        raise Absent("the learning curve holds no per-task accuracies (a run of an older lifelong)")
    lows = []
    for k in range(T - 1):
        seen = [p["accuracy"][k] for p in curve if p["task"] > k] + list(A[k + 1:, k])
        lows.append(min(seen))
    return float(np.mean(lows))


@METRICS.register("til_acc", label="task-IL ACC", summary=False, task_il=True,
                  meaning="ACC of the same model with its outputs masked to each task's classes")
def task_il_accuracy(R: Matrix) -> float:
    """task-IL ACC = (1/T) Σ_j R^TIL_{T,j}, the ACC of a class-incremental run's task-incremental
    matrix: R^TIL_{i,j} is the accuracy on task j after task i of the same model with its outputs outside
    task j's classes masked (the task identity given at test time), measured in the same forward
    pass as R; Mammoth (Buzzega et al. 2020) reports both for every class-incremental run."""
    return average_accuracy(R)


@METRICS.register("til_bwt", label="task-IL BWT", summary=False, task_il=True,
                  meaning="BWT of the same model with its outputs masked to each task's classes")
def task_il_backward_transfer(R: Matrix) -> float:
    """task-IL BWT = 1/(T−1) Σ_{j<T} (R^TIL_{T,j} − R^TIL_{j,j}), the BWT of a class-incremental
    run's task-incremental matrix R^TIL (see ``til_acc``)."""
    return backward_transfer(R)


def all_metrics(R: Matrix, r0: Sequence[float], reference: Matrix | None = None, *,
                curve: list[dict[str, Any]] | None = None,
                task_matrix: Matrix | None = None) -> dict[str, float]:
    """Every registered metric that can be computed from what is given, by name: those that
    need a reference run only with ``reference`` (its accuracy matrix), those of the learning curve
    only with ``curve``, the task-incremental ones only with ``task_matrix``."""
    out = {}
    for metric in METRICS:
        try:
            out[metric.name] = metric.compute(R, r0, reference, curve=curve, task_matrix=task_matrix)
        except Absent:
            continue
    return out


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
