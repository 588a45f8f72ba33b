"""Tiny synthetic streams so every test runs in seconds."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import rotated, split


def blobs(n_per_class: int = 40, classes: int = 4, side: int = 6, seed: int = 0):
    """Separable synthetic 'images': each class lights up its own block of pixels, plus noise."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(classes):
        x = 0.15 * torch.rand(n_per_class, 1, side, side, generator=g)
        row = (c * side) // classes
        x[:, 0, row : row + max(1, side // classes), :] += 0.8
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((n_per_class,), c, dtype=torch.long))
    x, y = torch.cat(xs), torch.cat(ys)
    return x, y


def tiny_arrays(seed: int = 0):
    xtr, ytr = blobs(40, seed=seed)
    xte, yte = blobs(10, seed=seed + 100)
    return xtr, ytr, xte, yte


class Interrupt(Exception):
    """Raised by ``stop_at`` to interrupt a run, as Ctrl-C or a crash would."""


def stop_at(task: int):
    """A progress callback that interrupts the run as task ``task`` starts."""

    def progress(event):
        if event["event"] == "task_start" and event["task"] == task:
            raise Interrupt

    return progress


def whole_and_resumed(cfg, out, task: int = 2):
    """Run ``cfg`` whole under ``out/whole``, then interrupted as ``task`` starts and resumed
    under ``out/cut``; checks the resume picked up after ``task`` and returns both results."""
    import lifelong

    whole = lifelong.run(cfg, out=out / "whole")
    with pytest.raises(Interrupt):
        lifelong.run(cfg, out=out / "cut", progress=stop_at(task))
    resumed = lifelong.run(cfg, out=out / "cut")
    assert resumed.extra["resumed_after_task"] == task
    return whole, resumed


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny tensors run fastest on one thread; more only adds scheduling cost (and contention)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_domain_stream():
    """3 rotated tasks over 4 classes (domain-incremental)."""
    return rotated(angles=(0, 45, 90), arrays=tiny_arrays())


@pytest.fixture
def tiny_task_stream():
    """2 tasks of 2 classes each, task identity known (task-incremental)."""
    return split(classes_per_task=2, arrays=tiny_arrays(), scenario="task")


@pytest.fixture
def tiny_class_stream():
    """2 tasks of 2 classes each, one head, no task identity (class-incremental)."""
    return split(classes_per_task=2, arrays=tiny_arrays(), scenario="class")


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def write_idx(path, array, gz: bool = False) -> None:
    """Write a uint8 array in the IDX format (optionally gzipped)."""
    import gzip

    import numpy as np

    array = np.asarray(array).astype(np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def idx_folder(folder, arrays, gz: bool = False):
    """A folder of the four MNIST-format files holding (x_train, y_train, x_test, y_test)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in zip(IDX_NAMES, arrays):
        a = torch.as_tensor(a)
        if a.dim() == 4:  # (n, 1, h, w) in [0, 1] -> (n, h, w) bytes
            a = (a.squeeze(1) * 255).round()
        write_idx(folder / (name + (".gz" if gz else "")), a.numpy(), gz)
    return folder


def cifar_records(labels, seed: int = 0, heads: int = 1):
    """CIFAR binary records: ``heads`` label bytes (CIFAR-100: coarse, fine) then 3,072 pixel bytes
    (1,024 red, 1,024 green, 1,024 blue, row by row); ``labels`` is (n, heads). Returns the bytes and
    the (n, 3, 32, 32) uint8 images they hold."""
    import numpy as np

    labels = np.asarray(labels, dtype=np.uint8).reshape(-1, heads)
    images = np.random.RandomState(seed).randint(0, 256, (len(labels), 3, 32, 32)).astype(np.uint8)
    return np.concatenate([labels, images.reshape(len(labels), -1)], axis=1).tobytes(), images


def cifar_folder(folder, kind: str = "cifar10", per_class: int = 2, test_per_class: int = 1):
    """A folder in the exact layout of CIFAR-10's (``data_batch_1.bin`` … ``test_batch.bin``) or
    CIFAR-100's (``train.bin``, ``test.bin``; coarse label = fine // 5) binary release, with
    ``per_class`` training images per class split over the batches. Returns the folder."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    classes = 10 if kind == "cifar10" else 100
    train = np.repeat(np.arange(classes), per_class)
    test = np.repeat(np.arange(classes), test_per_class)
    if kind == "cifar10":
        for i, part in enumerate(np.array_split(train, 5)):
            (folder / f"data_batch_{i + 1}.bin").write_bytes(cifar_records(part, seed=i)[0])
        (folder / "test_batch.bin").write_bytes(cifar_records(test, seed=9)[0])
    else:
        for name, labels, seed in (("train.bin", train, 0), ("test.bin", test, 9)):
            pairs = np.stack([labels // 5, labels], axis=1)
            (folder / name).write_bytes(cifar_records(pairs, seed=seed, heads=2)[0])
    return folder
