"""Write Fashion-MNIST in CIFAR-10's binary layout, to run the CIFAR pipeline end to end where
CIFAR itself is not at hand (this machine has no CIFAR and nothing may be downloaded).

Each 28×28 grey image is padded to 32×32 with black and copied into the three colour planes;
``--per-class`` training and ``--test-per-class`` test images of each of the 10 classes (the
first ones of each class, in file order) go to ``data_batch_1.bin`` … ``data_batch_5.bin`` and
``test_batch.bin`` as 3,073-byte records (label byte, 1,024 red, 1,024 green, 1,024 blue). Then:

    python benchmarks/fashion_as_cifar.py --out /tmp/fashion-cifar
    lifelong compare --benchmark split-cifar10 --data /tmp/fashion-cifar --scenario class \
        --model resnet18-reduced --optimizer sgd --lr 0.03 --batch-size 32 --epochs 5 \
        --strategies naive replay der derpp icarl joint --param replay.buffer_size=200 ...

The stream is called ``split-cifar10`` (the folder holds CIFAR-10's files) and its tasks by
CIFAR-10's class names: the labels are Fashion-MNIST's, the names are not theirs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lifelong.data import load_idx_folder


def records(x: np.ndarray, y: np.ndarray) -> bytes:
    """CIFAR-10 records of grey images ``x`` (n, 28, 28) in [0, 1] and labels ``y``."""
    images = np.zeros((len(x), 3, 32, 32), dtype=np.uint8)
    images[:, :, 2:30, 2:30] = np.round(x * 255).astype(np.uint8)[:, None]
    return np.concatenate([y.astype(np.uint8)[:, None], images.reshape(len(x), -1)], axis=1).tobytes()


def first_of_each_class(y: np.ndarray, per_class: int) -> np.ndarray:
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist", help="the IDX folder")
    p.add_argument("--out", required=True, help="the folder to write the CIFAR-10 layout into")
    p.add_argument("--per-class", type=int, default=500, dest="per_class")
    p.add_argument("--test-per-class", type=int, default=200, dest="test_per_class")
    args = p.parse_args()
    if not Path(args.fashion).is_dir():
        print(f"no Fashion-MNIST at {args.fashion} (sudo apt-get install dataset-fashion-mnist)")
        return 1
    xtr, ytr, xte, yte = (t.numpy() for t in load_idx_folder(args.fashion))
    train = first_of_each_class(ytr, args.per_class)
    test = first_of_each_class(yte, args.test_per_class)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(train, 5)):
        (out / f"data_batch_{i + 1}.bin").write_bytes(records(xtr[part, 0], ytr[part]))
    (out / "test_batch.bin").write_bytes(records(xte[test, 0], yte[test]))
    print(f"wrote {len(train)} training and {len(test)} test images in CIFAR-10's layout to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
