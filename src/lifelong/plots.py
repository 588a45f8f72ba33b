"""Figures from saved results only: the learning curve and the accuracy-matrix heatmaps.

Uses ``matplotlib.figure.Figure`` directly (no pyplot, no global backend switch), so it works
headless and inside notebooks alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .results import RunResult
from .stats import mean_ci

Groups = dict[str, list[RunResult]]
"""method label → its runs (one per seed), in display order."""


def seen_mean_series(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): mean accuracy over the tasks seen so far, after every epoch.

    x is in task units: epoch e of E in task t (0-based) sits at ``t + (e − ½)/E``, so the
    task boundaries are the integers, between one task's last epoch and the next one's first.
    Runs without per-epoch evaluation fall back to one point per task from the accuracy matrix.
    """
    if result.curve:
        epochs = max(p["epoch"] for p in result.curve)
        x = [p["task"] + (p["epoch"] - 0.5) / epochs for p in result.curve]
        y = [p["seen_mean"] for p in result.curve]
    else:
        R = result.accuracy_matrix
        x = [i + 0.5 for i in range(len(R))]
        y = [float(np.mean(R[i][: i + 1])) for i in range(len(R))]
    return np.asarray(x), np.asarray(y)


def learning_curve(groups: Groups, title: str = "") -> Figure:
    """One line per method (mean over seeds, shaded 95% CI with several seeds), task
    boundaries as dotted vertical lines, tasks named on the x axis."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    task_names: list[str] = []
    colors = _colors(len(groups))
    for color, (label, runs) in zip(colors, groups.items()):
        series = [seen_mean_series(r) for r in runs]
        n = min(len(x) for x, _ in series)
        x = series[0][0][:n]
        ys = np.stack([y[:n] for _, y in series])
        stats = [mean_ci(list(ys[:, i])) for i in range(n)]
        mean = np.array([m for m, _ in stats])
        half = np.array([h for _, h in stats])
        style = "--" if label.startswith("joint") else "-"
        seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
        ax.plot(x, 100 * mean, style, color=color, lw=1.8, label=label + seeds,
                marker="." if n <= 60 else None)
        if len(runs) > 1:
            low, high = np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)
            ax.fill_between(x, 100 * low, 100 * high, color=color, alpha=0.2, lw=0)
        task_names = max(task_names, runs[0].task_names, key=len)
    T = len(task_names)
    for boundary in range(1, T):
        ax.axvline(boundary, color="0.5", ls=":", lw=1)
    epochs = max((p["epoch"] for rs in groups.values() for r in rs for p in r.curve), default=0)
    if epochs:  # a tick per epoch (numbered where there is room), the tasks named under them
        ax.set_xticks([t + (e - 0.5) / epochs for t in range(T) for e in range(1, epochs + 1)],
                      [str(e) if T * epochs <= 60 or e in (1, epochs) else ""
                       for _ in range(T) for e in range(1, epochs + 1)], minor=True, fontsize=7)
    ax.set_xticks([t + 0.5 for t in range(T)], [f"task {t + 1}\n{n}" for t, n in enumerate(task_names)])
    ax.tick_params(axis="x", which="major", length=0, pad=14 if epochs else 4)
    ax.set_xlim(0, max(T, 1))
    ax.set_ylabel("mean accuracy on the tasks seen so far (%)")
    ax.set_xlabel("epoch within each task (dotted lines = new task)")
    ax.set_title(title or "Learning curve")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


def heatmaps(groups: Groups, title: str = "") -> Figure:
    """Each method's accuracy matrix R (mean over seeds): row i = after training task i,
    column j = accuracy on task j, in percent."""
    k = len(groups)
    cols = min(4, k)
    rows = -(-k // cols)
    fig = Figure(figsize=(3.4 * cols + 1.0, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for ax, (label, runs) in zip(axes.flat, groups.items()):
        R = 100 * np.mean([np.asarray(r.accuracy_matrix, dtype=float) for r in runs], axis=0)
        T = R.shape[0]
        names = runs[0].task_names if len(runs[0].task_names) == T else [str(j + 1) for j in range(T)]
        image = ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
        for i in range(T):
            for j in range(T):
                ax.text(j, i, f"{R[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if R[i, j] < 60 else "black")
        ax.set_title(label, fontsize=10)
        ax.set_xticks(range(T), names, rotation=45 if T > 5 else 0)  # as in the learning curve
        ax.set_yticks(range(T), names)
        ax.set_xlabel("evaluated on task")
        ax.set_ylabel("after training task")
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    if image is not None:  # beside the panels drawn, not beside the grid's empty places
        fig.colorbar(image, ax=list(axes.flat)[:k], shrink=0.8, pad=0.02, label="accuracy (%)")
    fig.suptitle(title or "Accuracy matrices")
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1], metadata={"Date": None})  # reproducible bytes
    return paths


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
