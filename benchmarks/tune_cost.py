"""What tuning costs: a 3 × 3 grid for EWC on the homework protocol, as a ratio to one run.

The homework is ``lifelong compare``'s default: rotated MNIST 0–80° on the embedded digits, MLP,
the ``homework`` preset (Adam, lr 1e-4, batch 128, 10 epochs per task). One run is EWC with its
defaults on the test protocol (``ll.run``, one process, one thread). The tuning is
``lifelong tune --strategy ewc --grid lam=100,1000,10000 --grid lr=1e-4,3e-4,1e-3 --jobs 2``
(validation protocol: each trial trains on 90% of each task's training digits and is scored on the
other 10%). In one process, fresh folders each time: one run, the tuning, one run again; the
ratio is the tuning's wall time over the mean of the two runs'. The load average is printed
before and after (the machine is shared).

    OMP_NUM_THREADS=1 python benchmarks/tune_cost.py --out /tmp/tune-cost
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

import lifelong as ll

GRID = {"lam": [100.0, 1000.0, 10000.0], "lr": [1e-4, 3e-4, 1e-3]}


def one_run(out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    config = ll.RunConfig(strategy="ewc", train=ll.preset("homework", device="cpu"))
    start = time.perf_counter()
    ll.run(config, out=out)
    return time.perf_counter() - start


def tuning(out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = ll.tune({"strategy": "ewc", "grid": GRID, "train": {"device": "cpu"}}, out, jobs=jobs)
    seconds = time.perf_counter() - start
    print(f"best: {result.best.values} (validation ACC {100 * result.best.mean:.2f}%)")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/tune-cost")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    print(f"load average before: {os.getloadavg()}", flush=True)
    first = one_run(out / "run-1")
    print(f"one run: {first:.1f} s", flush=True)
    tuned = tuning(out / "tune", args.jobs)
    print(f"tuning (3 x 3, --jobs {args.jobs}): {tuned:.1f} s", flush=True)
    second = one_run(out / "run-2")
    print(f"one run again: {second:.1f} s", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"ratio: {tuned / ((first + second) / 2):.2f} runs")


if __name__ == "__main__":
    main()
