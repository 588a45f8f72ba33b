"""Cost of a combination of strategies vs its members' overheads over naive, in one process.

Each method trains the homework model (MLP 784-1024-512-256-10, Adam 1e-4, batch 128, a fresh
optimiser per task) on the first ``--tasks`` tasks of rotated MNIST (0°, 20°, 40°, … of the
embedded 5,000 digits) for ``--epochs`` epochs per task, with ``eval_every_epoch=False``, the
same seed and the same stream (built once). The time is that of the whole ``lifelong.fit``: the
training epochs, each member's after-task work (EWC's Fisher, MAS's importance, LwF's and
A-GEM's copies) and the evaluation of every task after every task (the same for all methods).
The methods run interleaved, ``--rounds`` rounds, and each method's median is compared.

Per method: seconds, ratio to naive, overhead = ratio − 1; per combination: its overhead vs the
sum of its members' overheads. Goal: a combination costs no more than the sum of its members'
overheads over naive (overhead ≤ sum).

    OMP_NUM_THREADS=1 python benchmarks/combination_cost.py                 # 3 tasks × 2 epochs, 3 rounds
    OMP_NUM_THREADS=1 python benchmarks/combination_cost.py --tasks 2 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import lifelong
from lifelong.models import make_model
from lifelong.strategies import make_strategy
from lifelong.strategies.importance import hyperparameter_preset

MEMBERS = ["ewc", "si", "mas", "lwf", "replay", "agem"]
COMBINATIONS = ["ewc+replay", "si+replay", "mas+replay", "lwf+replay", "agem+ewc"]
ANGLES = [0, 20, 40, 60, 80]


def fit_time(stream, method: str, config: lifelong.TrainConfig) -> tuple[float, float]:
    """Seconds of the whole fit and of its training (``sum(task_times)``: no evaluation)."""
    torch.manual_seed(config.seed)
    model = make_model("mlp", stream.input_shape, stream.num_classes)
    # the same hyper-parameters as ``lifelong compare`` (the "tuned" preset, per member)
    strategy = make_strategy(method, **hyperparameter_preset("tuned", method))
    start = time.perf_counter()
    _, result = lifelong.fit(stream, model, strategy, config)
    return time.perf_counter() - start, sum(result.task_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3, help="first N tasks of rotated MNIST")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--combinations", nargs="+", default=COMBINATIONS)
    parser.add_argument("--out", default="combination_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    members = [m for m in MEMBERS if any(m in c.split("+") for c in args.combinations)]
    methods = ["naive", *members, *args.combinations]
    stream = lifelong.make_benchmark("rotated-mnist", angles=ANGLES[: args.tasks])
    config = lifelong.TrainConfig(epochs=args.epochs, seed=args.seed, device="cpu",
                                  eval_every_epoch=False)
    fit_time(stream, "naive", config)  # warm-up (torch's first-call costs), not counted
    whole: dict[str, list[float]] = {m: [] for m in methods}
    train: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(args.rounds):
        for method in methods:
            w, t = fit_time(stream, method, config)
            whole[method].append(w)
            train[method].append(t)
            print(f"  (round {r + 1}: {method} {w:.2f}s)", flush=True)
    sec = {m: statistics.median(v) for m, v in whole.items()}
    sec_train = {m: statistics.median(v) for m, v in train.items()}
    over = {m: sec[m] / sec["naive"] - 1 for m in methods}
    print(f"\nthreads {torch.get_num_threads()}, {args.tasks} tasks × {args.epochs} epochs, "
          f"median of {args.rounds} interleaved rounds (whole fit; training alone in brackets)\n")
    print("| method | seconds | ratio to naive | overhead | (training s) |")
    print("|---|---:|---:|---:|---:|")
    for m in methods:
        print(f"| {m} | {sec[m]:.2f} | {sec[m] / sec['naive']:.2f} | {over[m]:+.2f} | "
              f"({sec_train[m]:.2f}) |")
    print("\n| combination | its overhead | sum of members' overheads | difference | ≤ sum? |")
    print("|---|---:|---:|---:|:---:|")
    verdict = {}
    for c in args.combinations:
        total = sum(over[m] for m in c.split("+"))
        verdict[c] = {"overhead": over[c], "sum_of_members": total, "ok": over[c] <= total}
        print(f"| {c} | {over[c]:+.2f} | {total:+.2f} | {over[c] - total:+.2f} | "
              f"{'yes' if over[c] <= total else 'no'} |")
    Path(args.out).write_text(json.dumps({"tasks": args.tasks, "epochs": args.epochs,
                                          "rounds": args.rounds, "threads": args.threads,
                                          "whole_seconds": whole, "train_seconds": train,
                                          "verdict": verdict}, indent=1))


if __name__ == "__main__":
    main()
