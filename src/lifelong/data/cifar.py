"""CIFAR-10 and CIFAR-100 from their *binary* releases, read as bytes with numpy (no pickle).

The binary release (https://www.cs.toronto.edu/~kriz/cifar.html, ``cifar-10-binary.tar.gz`` and
``cifar-100-binary.tar.gz``) stores fixed-size records: CIFAR-10 one label byte then 3,072 pixel
bytes (1,024 red, 1,024 green, 1,024 blue, each a 32×32 image row by row), in
``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin``; CIFAR-100 a coarse-label byte,
a fine-label byte and the same 3,072 pixels, in ``train.bin`` and ``test.bin``. The images come out
channels-first ``(n, 3, 32, 32)`` as 8-bit integers. The Python release is pickled: unpickling a
file runs code, so it is refused in one line that points to the binary release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LifelongError

PIXELS = 3 * 32 * 32
CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
SUBFOLDERS = {"cifar10": "cifar-10-batches-bin", "cifar100": "cifar-100-binary"}
LABELS = ("fine", "coarse")
WHERE = ("download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html "
         "(cifar-10-binary.tar.gz or cifar-100-binary.tar.gz), extract it and give its folder")
PICKLED = ("data_batch_1", "batches.meta", "meta", "train", "test")
"""Files of the Python (pickled) releases: ``cifar-10-batches-py`` and ``cifar-100-python``."""


def read_cifar_file(path: str | Path, kind: str, labels: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file: uint8 images ``(n, 3, 32, 32)`` and int64 labels.

    ``kind`` is ``"cifar10"`` or ``"cifar100"``; for CIFAR-100 ``labels`` picks the ``fine`` (100)
    or ``coarse`` (20) labels. A file that is empty, not a whole number of records, or holds a
    label outside the data set's range is refused in one line.
    """
    path = Path(path)
    heads, classes = (1, 10) if kind == "cifar10" else (2, 100 if labels == "fine" else 20)
    record = heads + PIXELS
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise LifelongError(f"cannot read CIFAR file {path}: {exc.strerror or exc}; re-download it") from None
    if data.size == 0:
        raise LifelongError(f"{path} is empty; re-download it")
    if data.size % record:
        other = 3074 if record == 3073 else 3073
        hint = (f" (it is a whole number of {other:,}-byte records: is it "
                f"{'CIFAR-100' if other == 3074 else 'CIFAR-10'}?)" if data.size % other == 0 else "")
        raise LifelongError(f"{path} is truncated or not a {_title(kind)} binary file: {data.size:,} bytes "
                            f"are not a whole number of {record:,}-byte records{hint}; re-download it")
    rows = data.reshape(-1, record)
    y = rows[:, 0 if kind == "cifar10" or labels == "coarse" else 1].astype(np.int64)
    bad = np.flatnonzero(y >= classes)
    if bad.size:
        raise LifelongError(f"{path} is damaged or not {_title(kind)}: record {int(bad[0])} has label "
                            f"{int(y[bad[0]])}, outside 0..{classes - 1}; re-download it")
    return rows[:, heads:].reshape(-1, 3, 32, 32), y


def _title(kind: str) -> str:
    return "CIFAR-10" if kind == "cifar10" else "CIFAR-100"


def find_cifar(folder: Path) -> tuple[str, Path] | None:
    """``(kind, folder holding the files)`` when ``folder`` (or the release's own sub-folder in it)
    holds a CIFAR binary release; None when it holds none. The pickled release is refused here."""
    for place in (folder, *(folder / sub for sub in SUBFOLDERS.values())):
        if (place / CIFAR10_TEST).exists() or (place / CIFAR10_FILES[0]).exists():
            return "cifar10", place
        if (place / "train.bin").exists() or (place / "test.bin").exists():
            return "cifar100", place
    for place in (folder, folder / "cifar-10-batches-py", folder / "cifar-100-python"):
        if any((place / name).is_file() for name in PICKLED[:2]) or all(
                (place / name).is_file() for name in PICKLED[2:]):
            raise LifelongError(f"{place} holds CIFAR's Python release, which is pickled (reading it "
                                f"would run code from the file), and lifelong does not read it; {WHERE}, "
                                "or save the arrays to an .npz file (x_train, y_train, x_test, y_test)")
    return None


def load_cifar(folder: Path, kind: str, labels: str = "fine") -> tuple[np.ndarray, ...]:
    """The train and test arrays ``(x_train, y_train, x_test, y_test)`` of a binary release folder."""
    if labels not in LABELS:
        raise LifelongError(f"unknown CIFAR-100 labels {labels!r}; choose fine (100 classes) or coarse (20)")
    train = CIFAR10_FILES if kind == "cifar10" else ("train.bin",)
    test = CIFAR10_TEST if kind == "cifar10" else "test.bin"
    missing = [name for name in (*train, test) if not (folder / name).is_file()]
    if missing:
        raise LifelongError(f"{folder} lacks {', '.join(missing)} of the {_title(kind)} binary release; "
                            f"{WHERE}")
    parts = [read_cifar_file(folder / name, kind, labels) for name in train]
    x_test, y_test = read_cifar_file(folder / test, kind, labels)
    return (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), x_test, y_test)


def class_names(folder: Path, kind: str, labels: str = "fine") -> tuple[str, ...] | None:
    """The class names the release ships (``batches.meta.txt``, ``fine_label_names.txt``,
    ``coarse_label_names.txt``), or None when the file is absent."""
    name = "batches.meta.txt" if kind == "cifar10" else f"{labels}_label_names.txt"
    try:
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    return names or None
