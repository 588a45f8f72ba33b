"""Progress displays — one status line for a run, one for a whole comparison — and optional
TensorBoard logging."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .results import RunResult, safe_name


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressBar:
    """One status line on stderr: task, epoch, a bar, and the time left for this run."""

    def __init__(self, label: str = "", epochs: int = 1, stream=None) -> None:
        self.label, self.epochs = label, epochs
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.tty = self.stream.isatty()

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "epoch_end":
            tasks = self.tasks
            done = event["task"] * self.epochs + event["epoch"]
            total = tasks * self.epochs
            elapsed = time.perf_counter() - self.start
            left = elapsed / done * (total - done)
            bar = "#" * int(20 * done / total)
            seen = f" seen-acc {event['seen_mean']:.3f}" if "seen_mean" in event else ""
            text = (f"{self.label} task {event['task'] + 1}/{tasks} epoch {event['epoch']}/"
                    f"{self.epochs} [{bar:<20}] {elapsed:5.0f}s, ~{left:.0f}s left{seen}")
            if self.tty:
                self.stream.write("\r" + text.ljust(100))
                self.stream.flush()
            elif event["epoch"] == self.epochs:
                self.stream.write(text + "\n")
        elif event["event"] == "task_start":
            self.tasks = event["tasks"]
        elif event["event"] == "task_end" and self.tty and event["task"] + 1 == self.tasks:
            self.stream.write("\n")


class ComparisonProgress:
    """``[3/8 runs] ewc s0: task 2/5 epoch 4/10 | 1m20s elapsed, ~5m10s left``.

    Progress is counted in epochs (tasks × epochs per run); the time left is the wall time per
    epoch trained in this session times the epochs still to train, so it already accounts for
    parallel workers. On a terminal the line is redrawn in place; otherwise (logs, CI) one line
    is written per finished task.
    """

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.2) -> None:
        self.out = stream or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.min_interval = min_interval
        self.units: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.finished_runs: set[str] = set()
        self.trained = 0
        self.current: dict[str, str] = {}
        self.start_time = time.perf_counter()
        self.last_draw = 0.0

    def start(self, runs: list[tuple[str, str, int]]) -> None:
        for key, label, units in runs:
            self.units[key], self.labels[key], self.done[key] = units, label, 0

    def reused(self, key: str) -> None:
        self.done[key] = self.units[key]
        self.finished_runs.add(key)

    def event(self, key: str, event: dict[str, Any]) -> None:
        epochs = event.get("epochs") or 1
        if event["event"] == "task_start":
            per_task = self.units[key] // max(1, event["tasks"])
            self.done[key] = max(self.done[key], event["task"] * per_task)  # resumed runs
            self.current[key] = f"task {event['task'] + 1}/{event['tasks']}"
            self._draw()
        elif event["event"] == "epoch_end":
            self.done[key] += 1
            self.trained += 1
            task = self.current.get(key, "").split(" epoch")[0]
            self.current[key] = f"{task} epoch {event['epoch']}/{epochs}"
            self._draw()
        elif event["event"] == "task_end" and not self.tty:
            self._draw(force=True)

    def finished(self, key: str, ok: bool = True) -> None:
        self.finished_runs.add(key)
        self.done[key] = self.units[key]
        self.current.pop(key, None)
        self._draw(force=True, note=f"{self.labels[key]} {'done' if ok else 'FAILED'}")

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    def line(self) -> str:
        total = sum(self.units.values())
        done = sum(self.done.values())
        elapsed = time.perf_counter() - self.start_time
        left = f", ~{_duration(elapsed / self.trained * (total - done))} left" if self.trained else ""
        running = "; ".join(f"{self.labels[k]}: {v}" for k, v in self.current.items())
        return (f"[{len(self.finished_runs)}/{len(self.units)} runs] {running + ' | ' if running else ''}"
                f"{_duration(elapsed)} elapsed{left}")

    def _draw(self, force: bool = False, note: str = "") -> None:
        now = time.perf_counter()
        if self.tty:
            if force or now - self.last_draw >= self.min_interval:
                self.out.write("\r\033[K" + self.line()[:160])
                self.out.flush()
                self.last_draw = now
        elif force:
            self.out.write(self.line() + (f"  ({note})" if note else "") + "\n")
            self.out.flush()


class TensorBoardLogger:
    """Writes each finished run's per-epoch scalars (mean accuracy over the tasks seen so far,
    loss, accuracy per seen task) under ``logdir/<benchmark>/<method>/s<seed>`` (names with other
    characters than letters, digits, ``-_.`` get ``_``: ``naive (baseline)`` → ``naive__baseline_``);
    a no-op, with one notice, where TensorBoard is not installed (``pip install 'lifelong[tensorboard]'``)."""

    def __init__(self, logdir: str | Path, writer_factory: Any = None, notice: TextIO | None = None):
        self.logdir = Path(logdir)
        if writer_factory is None:
            try:
                from torch.utils.tensorboard import SummaryWriter as writer_factory
            except ImportError:
                (notice or sys.stderr).write(
                    "note: TensorBoard is not installed; skipping --tensorboard "
                    "(pip install 'lifelong[tensorboard]')\n")
        self.writer_factory = writer_factory

    def __call__(self, run: Any, result: RunResult) -> None:
        if self.writer_factory is None:
            return
        writer = self.writer_factory(str(self.logdir / safe_name(run.benchmark) / safe_name(run.method)
                                         / f"s{run.seed}"))
        for step, point in enumerate(result.curve, start=1):
            writer.add_scalar("seen_mean_accuracy", point["seen_mean"], step)
            if point.get("loss") is not None:
                writer.add_scalar("loss", point["loss"], step)
            for j, acc in enumerate(point.get("accuracy", [])):
                writer.add_scalar(f"accuracy/{result.task_names[j]}", acc, step)
        writer.close()
