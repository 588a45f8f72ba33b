"""A run's results as plain data, and its directory on disk (JSON and CSV; never pickle)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LifelongError
from .metrics import METRICS, Absent, Metric, continued_metrics

RESULT_FILE = "result.json"
COMPARISON_FILE, RUNS_DIR = "comparison.json", "runs"
"""A comparison folder's plan (written by ``compare``, read by ``report``) and its run directories."""


@dataclass
class RunResult:
    """Everything a report needs, with no model attached."""

    run_id: str
    config: dict[str, Any]
    task_names: list[str]
    initial_accuracy: list[float]
    accuracy_matrix: list[list[float]]
    metrics: dict[str, float]
    curve: list[dict[str, Any]] = field(default_factory=list)
    task_times: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    memory_bytes: list[int] = field(default_factory=list)
    model_sizes: list[dict[str, int]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    augment: bool = False
    """Whether the training batches were augmented (the run's ``augment``, or the stream's default)."""
    task_il_initial_accuracy: list[float] = field(default_factory=list)
    task_il_accuracy_matrix: list[list[float]] = field(default_factory=list)
    """A class-incremental run's accuracies with the outputs masked to each task's classes (the
    same model given the task identity; measured in the same forward passes as the matrix);
    empty for other runs and runs of an older lifelong."""

    def task_matrix(self) -> list[list[float]] | None:
        """The task-incremental accuracy matrix, or None when the run has none."""
        return self.task_il_accuracy_matrix or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        problem = result_problem(data)
        if problem:
            raise LifelongError(f"result is malformed ({problem}); it was not written by lifelong")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def metric_value(result: RunResult, metric: Metric, reference: RunResult | None = None) -> float | None:
    """``metric`` of a whole-stream run, computed from its accuracy matrix, curve and task-IL
    matrix (never the saved number, which a hand edit may have changed); None where it is absent
    (``absent_reason`` says why); of a continued fit, its saved value (checked on load against
    ``continued_metrics``)."""
    if result.extra.get("first_task"):
        return result.metrics.get(metric.name)
    try:
        return measure(result, metric, reference)
    except (Absent, ValueError):
        return None


def measure(result: RunResult, metric: Metric, reference: RunResult | None = None) -> float:
    """``metric`` of a whole-stream run; ``Absent`` (or ``ValueError`` for a reference of another
    shape) with the reason when it has none."""
    return metric.compute(result.accuracy_matrix, result.initial_accuracy,
                          reference.accuracy_matrix if reference is not None else None,
                          curve=result.curve, task_matrix=result.task_matrix())


def absent_reason(result: RunResult, metric: Metric, reference: RunResult | None = None) -> Absent | None:
    """Why ``metric`` has no value for ``result`` (an ``Absent``: its text, and whether it applies
    to such a run at all); None when it has one."""
    try:
        measure(result, metric, reference)
    except Absent as exc:
        return exc
    except ValueError as exc:
        return Absent(str(exc))
    return None


def safe_name(name: str) -> str:
    """``name`` as a file or folder name: characters other than letters, digits and ``-_.``
    become ``_`` (``naive (baseline)`` → ``naive__baseline_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def finite_number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite JSON number (not a bool) in [low, high]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def accuracy_problem(initial: Any, matrix: Any, tasks: int, rows: int | None = None) -> str | None:
    """Why (initial accuracies, accuracy matrix) are not the T values and rows × T matrix (rows
    defaults to T) of accuracies in [0, 1] of a T-task stream; None when they are."""
    rows = tasks if rows is None else rows
    if not isinstance(initial, list) or len(initial) != tasks:
        return f"initial_accuracy is not a list of {tasks} values"
    if not (isinstance(matrix, list) and len(matrix) == rows
            and all(isinstance(row, list) and len(row) == tasks for row in matrix)):
        return f"accuracy_matrix is not {rows}×{tasks}"
    if not all(finite_number(v, 0, 1) for v in [*initial, *(v for row in matrix for v in row)]):
        return "an accuracy is not a number in [0, 1]"
    return None


def curve_problem(curve: Any, tasks: int) -> str | None:
    """Why ``curve`` is not a list of learning-curve points of a T-task stream; None if it is."""
    for i, p in enumerate(curve if isinstance(curve, list) else [None]):
        if not (isinstance(p, dict) and isinstance(p.get("task"), int) and 0 <= p["task"] < tasks
                and isinstance(p.get("epoch"), int) and p["epoch"] >= 1
                and finite_number(p.get("seen_mean"), 0, 1)
                and isinstance(p.get("loss", 0.0), (int, float, type(None)))):  # a diverged loss is NaN
            return f"curve[{i}] is not a point with task, epoch and seen_mean"
    return None


_FIELDS = {"run_id": str, "config": dict, "task_names": list, "initial_accuracy": list,
           "accuracy_matrix": list, "metrics": dict, "curve": list, "task_times": list,
           "wall_time": (int, float), "memory_bytes": list, "model_sizes": list,
           "environment": dict, "extra": dict, "augment": bool, "task_il_initial_accuracy": list,
           "task_il_accuracy_matrix": list}
_REQUIRED = ("run_id", "config", "task_names", "initial_accuracy", "accuracy_matrix", "metrics")
# the metrics a result.json must hold (its format; report shows every registered metric)
_METRICS = ("acc", "bwt", "fwt", "forgetting")
_CONTINUED_METRICS = ("acc", "bwt", "forgetting", "old_tasks_change")


def first_task(data: dict[str, Any]) -> int | None:
    """The first task a result trained (``extra.first_task``, 0 for a whole stream: a continued
    ``fit`` trained only the later tasks); None when it is not an index of the stream's tasks."""
    extra = data.get("extra", {})
    first = extra.get("first_task", 0) if isinstance(extra, dict) else None
    ok = isinstance(first, int) and not isinstance(first, bool) and 0 <= first < len(data["task_names"])
    return first if ok else None


def result_problem(data: Any) -> str | None:
    """Why ``data`` (a parsed result.json) is not a result a report can trust; None if it is.

    The one check of every result read back: required keys and types, T task names, the T
    initial accuracies and T × T matrix in [0, 1], finite metrics, well-formed curve points."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, kind in _FIELDS.items():
        if key in _REQUIRED and key not in data:
            return f"no {key!r}"
        wrong = not isinstance(data.get(key), kind) or kind is not bool and isinstance(data[key], bool)
        if key in data and wrong:
            return f"{key!r} has the wrong type"
    names = data["task_names"]
    if not names or not all(isinstance(n, str) for n in names):
        return "task_names is not a non-empty list of names"
    first = first_task(data)
    if first is None:
        return "extra.first_task is not a task index of the stream"
    problem = (accuracy_problem(data["initial_accuracy"], data["accuracy_matrix"], len(names),
                                len(names) - first)
               or curve_problem(data.get("curve", []), len(names))
               or task_il_problem(data.get("task_il_initial_accuracy", []),
                                  data.get("task_il_accuracy_matrix", []), len(names), len(names) - first))
    if problem:
        return problem
    metrics = data["metrics"]
    required = _CONTINUED_METRICS if first else _METRICS
    bad = [k for k in required if k not in metrics] + [k for k, v in metrics.items() if not finite_number(v)]
    if bad:
        return f"metrics[{bad[0]!r}] is missing or not a finite number"
    disagree = metrics_disagreement(data["accuracy_matrix"], data["initial_accuracy"], metrics, first,
                                    curve=data.get("curve"),
                                    task_matrix=data.get("task_il_accuracy_matrix") or None)
    if disagree:
        return disagree
    if not all(finite_number(v, 0) for v in [*data.get("task_times", []), *data.get("memory_bytes", []),
                                        data.get("wall_time", 0)]):
        return "a time or memory size is not a non-negative number"
    if not all(isinstance(s, dict) for s in data.get("model_sizes", [])):
        return "model_sizes is not a list of objects"
    if not isinstance(data["config"].get("train", {}), dict):
        return "config.train is not an object"
    return None


def task_il_problem(initial: Any, matrix: Any, tasks: int, rows: int) -> str | None:
    """Why a result's task-incremental accuracies are not absent (both empty) nor shaped as its
    accuracy matrix is; None when they are."""
    if initial == [] and matrix == []:
        return None
    problem = accuracy_problem(initial, matrix, tasks, rows)
    return problem and "task_il_" + problem.replace("an accuracy", "a task-IL accuracy")


def metrics_disagreement(matrix: list, initial: list, metrics: dict[str, Any], first: int = 0, *,
                         curve: list | None = None, task_matrix: list | None = None) -> str | None:
    """Why saved ``metrics`` do not agree with the accuracy matrix they were computed from (a hand
    edit, or another file's numbers); None when every metric that can be recomputed agrees.

    Recomputed: the registered metrics that need no reference run (``continued_metrics`` for a
    continued fit). A metric not registered here, or that fails on this matrix, cannot be checked."""
    if first:
        computed = continued_metrics(matrix, initial, first)
    else:
        computed = {}
        for metric in METRICS:
            if metric.name in metrics and not metric.needs_reference:
                try:
                    computed[metric.name] = metric.compute(matrix, initial, curve=curve,
                                                           task_matrix=task_matrix)
                except (ValueError, TypeError, ArithmeticError, KeyError, LifelongError):
                    continue
    for name, value in computed.items():
        if name in metrics and not math.isclose(metrics[name], value, rel_tol=1e-9, abs_tol=1e-12):
            return (f"metrics[{name!r}] is {metrics[name]:.6g} but its accuracy matrix gives {value:.6g}; "
                    "it was edited or belongs to another run")
    return None


def environment(device: str, seed: int) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "seed": seed,
    }


class WriteError(LifelongError):
    """A file could not be written (disk full, permissions, read-only file system)."""


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write to a temporary sibling, then rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    mode = "wb" if isinstance(text, bytes) else "w"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise WriteError(f"cannot write {path} ({exc.strerror or type(exc).__name__}); the files written "
                         f"before are kept{' and its earlier version is unchanged' if path.exists() else ''}"
                         ) from None


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def save_result(result: RunResult, run_dir: str | Path) -> Path:
    """Write config.json, result.json and the CSV tables into ``run_dir``."""
    run_dir = Path(run_dir)
    names = result.task_names
    first = result.extra.get("first_task", 0)
    atomic_write(run_dir / "config.json", json.dumps(result.config, indent=2))
    atomic_write(
        run_dir / "accuracy_matrix.csv",
        _csv([["after", *names], ["init", *result.initial_accuracy]]
             + [[names[first + i], *row] for i, row in enumerate(result.accuracy_matrix)]),
    )
    atomic_write(run_dir / "metrics.csv", _csv([list(result.metrics), list(result.metrics.values())]))
    if result.task_il_accuracy_matrix:
        atomic_write(
            run_dir / "task_il_accuracy_matrix.csv",
            _csv([["after", *names], ["init", *result.task_il_initial_accuracy]]
                 + [[names[first + i], *row] for i, row in enumerate(result.task_il_accuracy_matrix)]),
        )
    if result.curve:
        atomic_write(
            run_dir / "curve.csv",
            _csv([["task", "epoch", "loss", "seen_mean"]]
                 + [[p["task"], p["epoch"], p.get("loss"), p["seen_mean"]] for p in result.curve]),
        )
    atomic_write(
        run_dir / "task_times.csv",
        _csv([["task", "seconds", "memory_bytes", "parameters"]]
             + [[names[first + i], t, m, s["parameters"]] for i, (t, m, s) in
                enumerate(zip(result.task_times, result.memory_bytes, result.model_sizes))]),
    )
    atomic_write(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return run_dir


def load_result(run_dir: str | Path) -> RunResult:
    """Read a finished run; a missing, unreadable or malformed file is a one-line error."""
    path = Path(run_dir) / RESULT_FILE
    fix = f"delete {run_dir} (or rerun with --force) to retrain it"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LifelongError(f"no {RESULT_FILE} in {run_dir}; is it a finished run directory?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LifelongError(f"{path} cannot be read ({type(exc).__name__}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise LifelongError(f"{path} is corrupt ({exc}); {fix}") from None
    problem = result_problem(data)
    if problem:
        raise LifelongError(f"{path} is malformed ({problem}); {fix}")
    return RunResult.from_dict(data)


def validate_result(result: RunResult, config: dict[str, Any], run_dir: str | Path) -> RunResult:
    """Trust a saved result only if it was written for ``config`` and is shaped like one."""
    fix = f"delete {run_dir} (or use --force) to retrain"
    if result.config != config:
        raise LifelongError(f"{Path(run_dir) / RESULT_FILE} belongs to another configuration; {fix}")
    problem = result_problem(result.to_dict())
    if problem:
        raise LifelongError(f"{Path(run_dir) / RESULT_FILE} is malformed ({problem}); {fix}")
    return result
