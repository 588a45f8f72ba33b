"""Pure functions on the accuracy matrix (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).

``R[i][j]`` is the accuracy on task j after training on tasks 0..i (T rows of T columns) and
``r0[j]`` the accuracy of the untrained model on task j. Indices below are 1-based, as in the
papers: R_{i,j} with i, j ∈ 1..T, and R_{0,j} = r0[j].

Each metric is registered in ``METRICS`` with its column label, display format and direction;
the tables, CSV files, HTML page and CLI summary read it from there, so one decorated function
in any file adds a column everywhere::

    @METRICS.register("aia", label="AIA", meaning="mean accuracy on the tasks seen so far")
    def average_incremental_accuracy(R):   # its docstring: the formula
        ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LifelongError

Matrix = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Format:
    """How a number is shown: ``scale`` × value with ``digits`` decimals, and ``unit`` in the
    column title (``ACC (%)``); with several seeds, mean ± 95% CI half-width."""

    unit: str
    scale: float = 1.0
    digits: int = 2

    def __call__(self, mean: float, half: float = 0.0, seeds: int = 1) -> str:
        text = f"{self.scale * mean:.{self.digits}f}"
        return text + (f" ± {self.scale * half:.{self.digits}f}" if seeds > 1 else "")


PERCENT, SECONDS, MEGABYTES = Format("%", 100.0, 2), Format("s", 1.0, 1), Format("MB", 1.0, 2)


@dataclass(frozen=True)
class Metric:
    """A registered summary number of a run; its formula is its function's docstring.

    ``function(R)``, or ``function(R, r0)`` when ``uses_initial`` (the untrained model's
    accuracies), plus ``reference=`` the accuracy matrix of a reference run (e.g. ``joint`` on the
    same stream and seed) when ``needs_reference``. ``summary``: a column of the tables and the
    CLI summary (else only in results.json and seeds.csv). ``meaning``: the plain words under the
    tables."""

    name: str
    function: Callable[..., float]
    label: str
    meaning: str
    fmt: Format = PERCENT
    higher_is_better: bool = True
    uses_initial: bool = False
    needs_reference: bool = False
    summary: bool = True

    @property
    def title(self) -> str:
        """The column title, e.g. ``ACC (%)``."""
        return f"{self.label} ({self.fmt.unit})"

    @property
    def formula(self) -> str:
        return inspect.cleandoc(self.function.__doc__ or "")

    def compute(self, R: Matrix, r0: Sequence[float], reference: Matrix | None = None) -> float:
        args = (R, r0) if self.uses_initial else (R,)
        if not self.needs_reference:
            return float(self.function(*args))
        if reference is None:
            raise LifelongError(f"metric {self.name!r} needs the accuracy matrix of a reference run")
        return float(self.function(*args, reference=reference))


class MetricRegistry:
    """The metrics, in registration order (the tables' column order)."""

    def __init__(self) -> None:
        self._entries: dict[str, Metric] = {}

    def register(self, name: str, *, label: str, meaning: str = "", fmt: Format = PERCENT,
                 higher_is_better: bool = True, uses_initial: bool = False,
                 needs_reference: bool = False, summary: bool = True) -> Callable[[Callable], Callable]:
        """Decorator: register a pure function of the accuracy matrix as metric ``name`` (the
        key in results.json and the CSV files). ``meaning`` defaults to the docstring's first line."""
        def decorator(function: Callable[..., float]) -> Callable[..., float]:
            if name in self._entries:
                raise LifelongError(f"metric {name!r} is registered twice")
            words = meaning or next(iter(inspect.cleandoc(function.__doc__ or name).splitlines()), name)
            self._entries[name] = Metric(name, function, label, words, fmt, higher_is_better,
                                         uses_initial, needs_reference, summary)
            return function

        return decorator

    def unregister(self, name: str) -> Metric:
        return self._entries.pop(self.get(name).name)

    def get(self, name: str) -> Metric:
        try:
            return self._entries[name]
        except KeyError:
            raise LifelongError(f"unknown metric {name!r}; known: {', '.join(self._entries)}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def summary(self) -> list[Metric]:
        """The metrics shown as table columns, in order."""
        return [m for m in self if m.summary]

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._entries.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries


METRICS = MetricRegistry()


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


def all_metrics(R: Matrix, r0: Sequence[float], reference: Matrix | None = None) -> dict[str, float]:
    """Every registered metric, by name (those that need a reference run only when ``reference``,
    its accuracy matrix, is given)."""
    return {m.name: m.compute(R, r0, reference) for m in METRICS
            if reference is not None or not m.needs_reference}


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
