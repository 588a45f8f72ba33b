"""A run's results as plain data, and its directory on disk (JSON and CSV; never pickle)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LifelongError

RESULT_FILE = "result.json"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        missing = [k for k in ("run_id", "accuracy_matrix", "initial_accuracy", "metrics") if k not in data]
        if missing:
            raise LifelongError(f"result is missing {missing[0]!r}; it was not written by lifelong")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


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


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write to a temporary sibling, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def save_result(result: RunResult, run_dir: str | Path) -> Path:
    """Write config.json, result.json and the CSV tables into ``run_dir``."""
    run_dir = Path(run_dir)
    names = result.task_names
    atomic_write(run_dir / "config.json", json.dumps(result.config, indent=2))
    atomic_write(
        run_dir / "accuracy_matrix.csv",
        _csv([["after", *names], ["init", *result.initial_accuracy]]
             + [[names[i], *row] for i, row in enumerate(result.accuracy_matrix)]),
    )
    atomic_write(run_dir / "metrics.csv", _csv([list(result.metrics), list(result.metrics.values())]))
    if result.curve:
        atomic_write(
            run_dir / "curve.csv",
            _csv([["task", "epoch", "loss", "seen_mean"]]
                 + [[p["task"], p["epoch"], p.get("loss"), p["seen_mean"]] for p in result.curve]),
        )
    atomic_write(
        run_dir / "task_times.csv",
        _csv([["task", "seconds", "memory_bytes", "parameters"]]
             + [[names[i], t, m, s["parameters"]] for i, (t, m, s) in
                enumerate(zip(result.task_times, result.memory_bytes, result.model_sizes))]),
    )
    atomic_write(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return run_dir


def load_result(run_dir: str | Path) -> RunResult:
    """Read a finished run; a missing or corrupt file is a one-line error."""
    path = Path(run_dir) / RESULT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LifelongError(f"no {RESULT_FILE} in {run_dir}; is it a finished run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LifelongError(f"{path} is corrupt ({exc}); delete the run directory to retrain") from None
    if not isinstance(data, dict):
        raise LifelongError(f"{path} is not a lifelong result; delete it to retrain")
    return RunResult.from_dict(data)


def validate_result(result: RunResult, config: dict[str, Any], run_dir: str | Path) -> RunResult:
    """Trust a saved result only if it was written for ``config`` and is shaped like one."""
    fix = f"delete {run_dir} (or use --force) to retrain"
    if result.config != config:
        raise LifelongError(f"{Path(run_dir) / RESULT_FILE} belongs to another configuration; {fix}")
    T = len(result.task_names)
    matrix = result.accuracy_matrix
    shaped = (
        isinstance(matrix, list) and len(matrix) == T and T > 0
        and all(isinstance(row, list) and len(row) == T for row in matrix)
        and isinstance(result.initial_accuracy, list) and len(result.initial_accuracy) == T
    )
    values = [v for row in matrix for v in row] + list(result.initial_accuracy) if shaped else []
    if not shaped or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
        raise LifelongError(f"{Path(run_dir) / RESULT_FILE} is malformed (accuracy matrix); {fix}")
    return result
