"""K-FAC's two forms against naive on the homework protocol: training time and ACC, one process.

For each seed in turn: naive, kfac (``per_task``, the registered default λ = 10) and kfac with
``form=merged`` (each ``--merged`` variant) on rotated MNIST (the embedded 5,000 digits, 5 tasks at
0–80°, MLP 1024-512-256, preset ``homework``: Adam 1e-4, batch 128, 10 epochs per task). The
seeds are the alternating repeats: time is the training time (epochs plus the after-task factors,
evaluation excluded), its median over the seeds as a ratio to naive's median, and each seed's own
ratio. Goal (issue 19): merged ≤ 2× naive, ACC within 1 point of ``per_task``.

    OMP_NUM_THREADS=1 python benchmarks/kfac_forms.py                        # seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/kfac_forms.py --merged tol=3e-4 --merged tol=0
    OMP_NUM_THREADS=1 python benchmarks/kfac_forms.py --validation --seeds 0 --no-per-task \\
        --merged lam=5 --merged lam=20                     # choosing λ, tol: validation split

``--validation`` trains on 3,000 of the training digits and scores on the other 1,000 (the split
of ``regularisation_quality.py --search``; the test digits are never seen).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from regularisation_quality import one_run, parse_param


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--merged", action="append", metavar="KEY=VALUE[,KEY=VALUE]",
                        help="a merged variant's options (repeatable; default: the form's defaults)")
    parser.add_argument("--no-per-task", action="store_true", help="skip the per-task form")
    parser.add_argument("--validation", action="store_true", help="the validation split, not the test digits")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="kfac_forms.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [("naive", "naive", {})]
    if not args.no_per_task:
        variants.append(("kfac per_task", "kfac", {}))
    for spec in args.merged or [""]:
        params = dict(parse_param(p) for p in spec.split(",") if p)
        label = "kfac merged" + "".join(f" {k}={v}" for k, v in params.items())
        variants.append((label, "kfac", {"form": "merged", **params}))
    one_run("naive", 0, 1, {}, validation=args.validation)  # warm-up, not timed: the first run is slower
    runs: list[dict] = []
    for seed in args.seeds:
        for label, method, params in variants:
            run = one_run(method, seed, args.epochs, params, validation=args.validation)
            runs.append({**run, "label": label})
            print(f"seed {seed} {label}: ACC {100 * run['acc']:.2f} BWT {100 * run['bwt']:.2f} "
                  f"train {run['train_seconds']:.1f}s", flush=True)
            Path(args.out).write_text(json.dumps({"epochs": args.epochs, "validation": args.validation,
                                                  "threads": args.threads, "runs": runs}, indent=1))
    report(runs, args.seeds)


def report(runs: list[dict], seeds: list[int]) -> None:
    by = {(r["label"], r["seed"]): r for r in runs}
    naive = statistics.median(by["naive", s]["train_seconds"] for s in seeds)
    print(f"\n{'':<28}{'time (median)':>14}{'× naive':>9}  {'× naive per seed':<20}"
          f"{'ACC':>7}{'BWT':>8}  ACC per seed")
    for label in dict.fromkeys(r["label"] for r in runs):
        rows = [by[label, s] for s in seeds]
        median = statistics.median(r["train_seconds"] for r in rows)
        ratios = " / ".join(f"{r['train_seconds'] / by['naive', r['seed']]['train_seconds']:.2f}"
                            for r in rows)
        accs = " / ".join(f"{100 * r['acc']:.2f}" for r in rows)
        print(f"{label:<28}{median:13.1f}s{median / naive:9.2f}  {ratios:<20}"
              f"{100 * statistics.fmean(r['acc'] for r in rows):7.2f}"
              f"{100 * statistics.fmean(r['bwt'] for r in rows):8.2f}  {accs}")


if __name__ == "__main__":
    main()
