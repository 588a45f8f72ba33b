"""Speed of the importance-based regularisers, as ratios measured in one run.

1. Whole run: each method's training time (sum of the per-task times: training epochs plus
   the after-task importance estimate; evaluation excluded) over naive's, on rotated MNIST with
   the homework MLP and protocol. The methods run interleaved with naive, ``--repeats`` rounds,
   and the fastest of each method's rounds is compared (the machine may be shared).
   Goal: ≤ 1.3× naive.
2. One importance estimate over the 4,000 training examples of a task, over one training
   epoch (naive, same model, same data). Goal for EWC's Fisher: < 1 epoch.

    python benchmarks/regularisation_speed.py                 # homework protocol, 10 epochs
    python benchmarks/regularisation_speed.py --epochs 3      # a shorter run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import lifelong
from lifelong.models import make_model
from lifelong.strategies import make_strategy
from lifelong.train import make_optimizer, train_epoch

METHODS = ["l2", "ewc", "online-ewc", "mas", "si", "rwalk", "scp"]
ESTIMATES = {
    "ewc (true Fisher, per-example)": ("ewc", {}),
    "ewc (empirical Fisher, per-example)": ("ewc", {"fisher": "empirical"}),
    "ewc (true Fisher, batched)": ("ewc", {"per_sample": False}),
    "mas (per-example |g|)": ("mas", {}),
    "scp (100 slices)": ("scp", {}),
    "l2": ("l2", {}),
}


def run_time(stream, method: str, epochs: int) -> float:
    torch.manual_seed(0)
    model = make_model("mlp", stream.input_shape, stream.num_classes)
    config = lifelong.preset("homework", epochs=epochs, device="cpu", eval_every_epoch=False)
    _, result = lifelong.fit(stream, model, make_strategy(method), config)
    return sum(result.task_times)


def estimate_times(stream, repeats: int) -> dict[str, float]:
    """Seconds of one epoch and of each importance estimate (best of ``repeats``)."""
    task = stream.tasks[0]
    torch.manual_seed(0)
    model = make_model("mlp", stream.input_shape, stream.num_classes)
    naive = make_strategy("naive")
    config = lifelong.preset("homework", device="cpu")
    naive.setup(stream, config)
    optimizer = make_optimizer(model, config)
    data = naive.train_data(task)
    gen = torch.Generator().manual_seed(0)
    times: dict[str, float] = {}
    epoch = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_epoch(model, naive, optimizer, task, data, config.batch_size, gen)
        epoch.append(time.perf_counter() - start)
    times["one training epoch"] = min(epoch)
    model.eval()
    for label, (name, params) in ESTIMATES.items():
        strategy = make_strategy(name, **params)
        strategy.setup(stream, config)
        spent = []
        for _ in range(repeats):
            start = time.perf_counter()
            strategy.estimate(model, task)
            spent.append(time.perf_counter() - start)
        times[label] = min(spent)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-runs", action="store_true", help="only the estimate timings")
    parser.add_argument("--out", default="regularisation_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stream = lifelong.make_benchmark("rotated-mnist")
    out: dict = {"epochs": args.epochs, "threads": args.threads}
    times = estimate_times(stream, args.repeats)
    epoch = times["one training epoch"]
    print(f"one training epoch (4,000 examples): {epoch:.3f}s")
    for label, seconds in times.items():
        if label != "one training epoch":
            print(f"  {label:<38} {seconds:7.3f}s = {seconds / epoch:5.2f} epochs")
    out["estimate_seconds"] = times
    if not args.skip_runs:
        rounds: dict[str, list[float]] = {m: [] for m in ["naive", *args.methods]}
        for _ in range(args.repeats):
            for method in rounds:
                rounds[method].append(run_time(stream, method, args.epochs))
                print(f"  ({method}: {rounds[method][-1]:.1f}s)", flush=True)
        best = {m: min(times) for m, times in rounds.items()}
        print(f"whole run, {args.epochs} epochs per task, fastest of {args.repeats}: "
              f"naive {best['naive']:.1f}s")
        for method in args.methods:
            print(f"  {method:<11} {best[method]:7.1f}s = {best[method] / best['naive']:5.2f}x naive")
        out["run_seconds"] = rounds
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
