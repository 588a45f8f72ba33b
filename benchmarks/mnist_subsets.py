"""Write the embedded digits with fewer training examples, to measure how a reproduction's
accuracy depends on the amount of data (docs/reproductions.md, "Why the gaps").

Each file keeps all 1,000 embedded test digits and a stratified draw (seeded) of ``n`` of the
4,000 training digits, ``n/10`` per class, as an ``.npz`` that ``--data`` reads::

    python benchmarks/mnist_subsets.py --sizes 1000 2000 --out runs/data
    lifelong run --data runs/data/mnist5k-2000.npz --benchmark split-mnist ...

Floats in [0, 1], as the embedded digits are given to the runs (``--data`` keeps float inputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lifelong.data.sources import load_mnist5k, stratified_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/data")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = (a.numpy() for a in load_mnist5k())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        _, keep = stratified_split(y_train, test_per_class=n // 10, seed=args.seed)  # n/10 per class
        path = out / f"mnist5k-{n}.npz"
        np.savez(path, x_train=x_train[keep], y_train=y_train[keep], x_test=x_test, y_test=y_test)
        print(f"{path}: {len(keep)} training digits ({n // 10} per class), {len(y_test)} test digits")


if __name__ == "__main__":
    main()
