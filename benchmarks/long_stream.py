"""Long streams: time and memory per task over a 100-task permuted-MNIST stream.

Protocol: permuted MNIST (the embedded 5k digits, 4,000 training / 1,000 test examples per
task), MLP 784-256-256-10, Adam lr 1e-3, batch 128, one epoch per task, no per-epoch
evaluation. Per task it records

* ``train_s``  — training plus the strategy's ``after_task`` (the result's ``task_times``);
* ``eval_s``   — the evaluation of every task of the stream after that task (the accuracy
  matrix's row; O(T) per task, O(T²) per run, the same for every method), timed from the
  progress events ``task_start``/``task_end`` minus ``train_s``;
* ``memory_bytes`` — the strategy's learned state kept between tasks (``Strategy.memory_bytes``);
* ``rss_bytes`` — the process's resident memory (the stream's data alone is ~1.6 GB).

Every method runs in its own process (so RSS is its own), one after another. The least-squares
slope of ``train_s`` against the task index is printed per method (ms per task, per task),
fitted from task 2 on: task 1 carries the process's one-off warm-up.

    OMP_NUM_THREADS=1 python benchmarks/long_stream.py                      # 100 tasks, 8 methods
    OMP_NUM_THREADS=1 python benchmarks/long_stream.py --methods ewc --tasks 30
    python benchmarks/long_stream.py --plot-only --out long_stream          # figure + table again
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = ["naive", "ewc", "online-ewc", "si", "mas", "agem", "replay", "generative-replay"]
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "img" / "long-stream.png"


def rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse_spec(spec: str) -> tuple[str, str, int | None, dict]:
    """``method[@key=value,...][:tasks]`` → (label, method, tasks or None, options)."""
    head, _, n = spec.partition(":")
    method, _, opts = head.partition("@")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return head, method, int(n) if n else None, options


def run_one(spec: str, tasks: int, seed: int, test_per_task: int | None) -> dict:
    """Train ``spec``'s method on the long stream in this process; per-task records."""
    import dataclasses

    import torch

    import lifelong as ll

    label, method, _, options = parse_spec(spec)
    torch.set_num_threads(1)
    stream = ll.make_benchmark("permuted-mnist", n_tasks=tasks, seed=seed)
    if test_per_task is not None:
        stream = dataclasses.replace(stream, tasks=[
            dataclasses.replace(t, x_test=t.x_test[:test_per_task], y_test=t.y_test[:test_per_task])
            for t in stream.tasks])
    torch.manual_seed(seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(256, 256))
    config = ll.TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=1,
                            eval_every_epoch=False, device="cpu", seed=seed)
    starts: list[float] = []
    ends: list[float] = []
    rss: list[int] = []

    def progress(event: dict) -> None:
        if event["event"] == "task_start":
            starts.append(time.perf_counter())
        elif event["event"] == "task_end":
            ends.append(time.perf_counter())
            rss.append(rss_bytes())
            done = len(ends)
            if done % 10 == 0 or done == tasks:
                print(f"  {label}: task {done}/{tasks}, {ends[-1] - starts[-1]:.2f}s", flush=True)

    _, result = ll.fit(stream, model, ll.make_strategy(method, **options), config, progress=progress)
    train = list(result.task_times)
    rows = []
    for t in range(tasks):
        rows.append({"task": t + 1, "train_s": train[t], "eval_s": ends[t] - starts[t] - train[t],
                     "memory_bytes": int(result.memory_bytes[t]), "rss_bytes": rss[t],
                     "accuracy": sum(result.accuracy_matrix[t][: t + 1]) / (t + 1)})
    return {"method": label, "tasks": tasks, "seed": seed, "test_per_task": test_per_task,
            "rows": rows, "metrics": result.metrics}


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def summary(record: dict) -> dict:
    rows = record["rows"][1:]  # task 1 carries the process's one-off warm-up (~1.5 s)
    task = [r["task"] for r in rows]
    first, last = rows[:10], rows[-10:]
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    return {
        "method": record["method"], "tasks": record["tasks"],
        "train_first10_s": mean(first, "train_s"), "train_last10_s": mean(last, "train_s"),
        "train_slope_ms": 1000 * slope(task, [r["train_s"] for r in rows]),
        "eval_first10_s": mean(first, "eval_s"), "eval_last10_s": mean(last, "eval_s"),
        "eval_slope_ms": 1000 * slope(task, [r["eval_s"] for r in rows]),
        "memory_first_mb": record["rows"][0]["memory_bytes"] / 2**20,
        "memory_last_mb": rows[-1]["memory_bytes"] / 2**20,
        "rss_last_mb": rows[-1]["rss_bytes"] / 2**20,
        "train_total_s": sum(r["train_s"] for r in rows),
        "acc": record["metrics"].get("acc"),
    }


def table(summaries: list[dict]) -> str:
    lines = [
        "| method | tasks | train s/task, tasks 2–11 | last 10 | slope (ms/task per task) | "
        "memory task 1 (MB) | memory last (MB) | eval s/task, 2–11 | last 10 | ACC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        acc = "–" if s["acc"] is None else f"{s['acc']:.3f}"
        lines.append(
            f"| {s['method']} | {s['tasks']} | {s['train_first10_s']:.3f} | {s['train_last10_s']:.3f} | "
            f"{s['train_slope_ms']:+.2f} | {s['memory_first_mb']:.2f} | {s['memory_last_mb']:.2f} | "
            f"{s['eval_first10_s']:.3f} | {s['eval_last10_s']:.3f} | {acc} |")
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for record in records:
        rows = record["rows"]
        task = [r["task"] for r in rows]
        label = record["method"]
        axes[0].plot(task, [r["train_s"] for r in rows], label=label, lw=1.2)
        axes[1].plot(task, [r["memory_bytes"] / 2**20 or float("nan") for r in rows],  # 0: off the log axis
                     label=label, lw=1.5)
        axes[2].plot(task, [r["eval_s"] for r in rows], label=label, lw=1.0)
    axes[0].set(title="training + after_task, s per task", xlabel="task", ylabel="seconds", yscale="log")
    axes[1].set(title="strategy state kept between tasks (naive: none)", xlabel="task", ylabel="MB",
                yscale="log")
    axes[2].set(title="evaluation of every task after each task", xlabel="task", ylabel="seconds")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("permuted MNIST, MLP 784-256-256-10, 1 epoch per task (CPU, 1 thread)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def write_csv(record: dict, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(record["rows"][0]))
        writer.writeheader()
        writer.writerows(record["rows"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=METHODS,
                        help="methods; METHOD@key=value,...:N passes options and runs that one "
                             "on N tasks only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-per-task", type=int, default=None,
                        help="evaluate on the first N test examples of each task (default: all 1,000)")
    parser.add_argument("--out", default="long_stream", help="folder for <method>.json/.csv")
    parser.add_argument("--figure", default=str(FIGURE))
    parser.add_argument("--plot-only", action="store_true", help="read --out's JSON files, plot, tabulate")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: run one method
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        record = run_one(args.one, args.tasks, args.seed, args.test_per_task)
        (out / f"{args.one}.json").write_text(json.dumps(record))
        write_csv(record, out / f"{args.one}.csv")
        return
    if not args.plot_only:
        for spec in args.methods:
            label, _, n, _ = parse_spec(spec)
            command = [sys.executable, __file__, "--one", label, "--tasks", str(n or args.tasks),
                       "--seed", str(args.seed), "--out", str(out)]
            if args.test_per_task is not None:
                command += ["--test-per-task", str(args.test_per_task)]
            start = time.perf_counter()
            subprocess.run(command, check=True)
            print(f"{label}: {time.perf_counter() - start:.0f}s wall", flush=True)
    names = [parse_spec(spec)[0] for spec in args.methods]
    records = [json.loads((out / f"{m}.json").read_text()) for m in names if (out / f"{m}.json").exists()]
    summaries = [summary(r) for r in records]
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(table(summaries))
    plot(records, Path(args.figure))


if __name__ == "__main__":
    main()
