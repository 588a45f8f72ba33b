"""Write a dataset with fewer training examples, to measure how a reproduction's accuracy
depends on the amount of data (docs/reproductions.md, "Why the gaps").

Each file keeps all the test images and a stratified draw (seeded) of ``n`` of the training
images, ``n/10`` per class, as an ``.npz`` that ``--data`` reads. By default the data is the
embedded 5,000 digits (files ``mnist5k-<n>.npz``); ``--data`` takes any source ``--data`` of the
CLI takes (files ``<its name>-<n>.npz``)::

    python benchmarks/mnist_subsets.py --sizes 1000 2000 --out runs/data
    lifelong run --data runs/data/mnist5k-2000.npz --benchmark split-mnist ...
    python benchmarks/mnist_subsets.py --data /usr/share/datasets/fashion-mnist --sizes 4000

Floats in [0, 1], as the images are given to the runs (``--data`` keeps float inputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lifelong.data.datasets import load_dataset
from lifelong.data.sources import stratified_split
from lifelong.errors import LifelongError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/data")
    parser.add_argument("--data", default=None, help="a data source (default: the embedded digits)")
    args = parser.parse_args()
    try:
        data = load_dataset(args.data)
    except LifelongError as exc:
        sys.exit(f"error: {exc}")
    x_train, y_train = data.x_train.numpy(), data.y_train.numpy()
    x_test, y_test = data.x_test.numpy(), data.y_test.numpy()
    name = "mnist5k" if args.data is None else data.name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        _, keep = stratified_split(y_train, test_per_class=n // 10, seed=args.seed)  # n/10 per class
        path = out / f"{name}-{n}.npz"
        np.savez(path, x_train=x_train[keep], y_train=y_train[keep], x_test=x_test, y_test=y_test)
        print(f"{path}: {len(keep)} training images ({n // 10} per class), {len(y_test)} test images")


if __name__ == "__main__":
    main()
