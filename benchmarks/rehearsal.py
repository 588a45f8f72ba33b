"""Class-incremental split MNIST with the rehearsal baselines, beside the published figures.

Protocol (Hsu et al. 2018, "Re-evaluating continual learning scenarios", and van de Ven et al.):
split MNIST into 5 tasks of 2 digits, class-incremental (one 10-way head, no task identity), an
MLP 400-400, Adam at 1e-3, batch 128, 30 epochs per task, a fresh optimiser per task. Every
method with a memory gets the same budget in examples (``--buffers``; GEM's per-task memory is
the budget / 5). On full-size data give fewer epochs for the same number of steps (Fashion-MNIST,
12,000 images per task: ``--epochs 2``).

    python benchmarks/rehearsal.py --seeds 0 1 2 3 4 --out runs/rehearsal
    python benchmarks/rehearsal.py --data /usr/share/datasets/fashion-mnist --epochs 2 \
        --out runs/rehearsal-fashion

The embedded 5,000 digits (4,000 for training, 800 per task) are a twentieth of full MNIST:
the published figures below are on full MNIST and are printed for orientation, not as targets of
the same data size. It writes the comparison's report (table.md with mean ± 95% CI over seeds,
seeds.csv, report.html) into ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifelong.compare import Comparison, compare
from lifelong.errors import LifelongError

PUBLISHED = {  # Hsu et al. 2018, Table 2, class-incremental split MNIST (full MNIST), ACC %
    "naive rehearsal": 90.78, "GEM": 92.20, "DGR": 91.24, "offline (joint)": 97.53,
}
REHEARSAL = ["replay", "er-ace", "der", "derpp", "icarl", "bic", "gdumb", "gem"]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def strategies(buffers: list[int], available: set[str], gdumb_epochs: int = 30) -> list:
    entries: list = ["naive", "generative-replay", "joint"]
    for size in buffers:
        for name in (n for n in REHEARSAL if n in available):
            option = {"memory_per_task": size // 5} if name == "gem" else {"buffer_size": size}
            if name == "gdumb":  # it trains on its memory alone: as many steps as the others' epochs
                option["epochs"] = gdumb_epochs
            entries.append({"name": name, "label": f"{name} ({size})", **option})
    return entries


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--buffers", type=int, nargs="+", default=[200, 500])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=30,
                   help="epochs per task (default 30: about 210 steps per task on the embedded digits)")
    p.add_argument("--gdumb-epochs", type=int, default=30, dest="gdumb_epochs",
                   help="GDumb's epochs on its memory after each task (default 30)")
    p.add_argument("--data", help="a folder of IDX files (default: the embedded digits)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="runs/rehearsal")
    args = p.parse_args()
    if args.data and not Path(args.data).is_dir():
        hint = " (sudo apt-get install dataset-fashion-mnist)" if Path(args.data) == FASHION else ""
        print(f"skipped: no data folder {args.data}{hint}")
        return 0
    from lifelong.registry import STRATEGIES

    STRATEGIES.discover()
    missing = [n for n in REHEARSAL if n not in STRATEGIES]
    if missing:
        print(f"note: not registered, left out: {', '.join(missing)}")
    options = {"scenario": "class", **({"source": args.data} if args.data else {})}
    comparison = Comparison.from_dict({
        "benchmark": "split-mnist", "benchmark_options": options, "seeds": args.seeds,
        "strategies": strategies(args.buffers, set(STRATEGIES.names()), args.gdumb_epochs),
        "model": "mlp", "model_options": {"hidden": [400, 400]},
        "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": args.epochs,
                  "eval_every_epoch": False},
    })
    try:
        compare(comparison, args.out, jobs=args.jobs)
    except LifelongError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not (Path(args.out) / "table.md").exists() or "another comparison" in str(exc):
            return 2  # nothing of this plan to show (a failed run alone still leaves the others' table)
    print((Path(args.out) / "table.md").read_text())
    print("Published, full MNIST (60,000 training digits), Hsu et al. 2018 class-IL ACC %: "
          + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
