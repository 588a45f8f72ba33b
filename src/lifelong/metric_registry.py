"""The metric registry: how a metric is registered, shown and computed (``lifelong.metrics`` holds
the formulas). A metric that cannot be computed for a run — no reference run, no learning curve,
not a class-incremental stream — raises ``Absent`` with the reason, which the tables print in one
line instead of a number."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import LifelongError

Matrix = Sequence[Sequence[float]]


class Absent(LifelongError):
    """A metric has no value for a run; ``str(self)`` says why. ``applies`` False: it does not
    apply to such a run at all (a task-incremental score of a run that is not class-incremental),
    so a table leaves it out silently."""

    def __init__(self, reason: str, applies: bool = True) -> None:
        super().__init__(reason)
        self.applies = applies


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
    same stream and seed) when ``needs_reference``, and ``curve=`` the run's per-epoch evaluations
    (``RunResult.curve``) when ``uses_curve``. ``task_il``: computed from the task-incremental
    accuracy matrix of a class-incremental run (the same model, logits masked to each task's
    classes) in place of R. ``summary``: a column of the main table and the CLI summary (else in
    the table of further metrics under it, results.json and seeds.csv). ``meaning``: the plain
    words under the tables."""

    name: str
    function: Callable[..., float]
    label: str
    meaning: str
    fmt: Format = PERCENT
    higher_is_better: bool = True
    uses_initial: bool = False
    needs_reference: bool = False
    summary: bool = True
    uses_curve: bool = False
    task_il: bool = False

    @property
    def title(self) -> str:
        """The column title, e.g. ``ACC (%)``."""
        return f"{self.label} ({self.fmt.unit})"

    @property
    def formula(self) -> str:
        return inspect.cleandoc(self.function.__doc__ or "")

    def compute(self, R: Matrix, r0: Sequence[float], reference: Matrix | None = None, *,
                curve: list[dict[str, Any]] | None = None, task_matrix: Matrix | None = None) -> float:
        """The metric of a run; ``Absent`` (with the reason) when an input it needs is missing."""
        if self.task_il:
            if task_matrix is None:
                raise Absent("only for class-incremental runs (the task-incremental accuracy of the "
                             "same model)", applies=False)
            R = task_matrix
        args: tuple = (R, r0) if self.uses_initial else (R,)
        kwargs: dict[str, Any] = {}
        if self.needs_reference:
            if reference is None:
                raise Absent(f"metric {self.name!r} needs the accuracy matrix of a reference run")
            kwargs["reference"] = reference
        if self.uses_curve:
            if not curve:
                raise Absent("no learning curve recorded (train option eval_every_epoch=false)")
            kwargs["curve"] = curve
        return float(self.function(*args, **kwargs))


class MetricRegistry:
    """The metrics, in registration order (the tables' column order)."""

    def __init__(self) -> None:
        self._entries: dict[str, Metric] = {}

    def register(self, name: str, *, label: str, meaning: str = "", fmt: Format = PERCENT,
                 higher_is_better: bool = True, uses_initial: bool = False,
                 needs_reference: bool = False, summary: bool = True, uses_curve: bool = False,
                 task_il: bool = False) -> Callable[[Callable], Callable]:
        """Decorator: register a pure function of the accuracy matrix as metric ``name`` (the
        key in results.json and the CSV files). ``meaning`` defaults to the docstring's first line."""
        def decorator(function: Callable[..., float]) -> Callable[..., float]:
            if name in self._entries:
                raise LifelongError(f"metric {name!r} is registered twice")
            words = meaning or next(iter(inspect.cleandoc(function.__doc__ or name).splitlines()), name)
            self._entries[name] = Metric(name, function, label, words, fmt, higher_is_better,
                                         uses_initial, needs_reference, summary, uses_curve, task_il)
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
        """The metrics shown as columns of the main table, in order."""
        return [m for m in self if m.summary]

    def further(self) -> list[Metric]:
        """The others (``summary=False``): the table of further metrics, in order."""
        return [m for m in self if not m.summary]

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._entries.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries


METRICS = MetricRegistry()
