"""Stream builders: rotated, permuted and split digits, registered by name.

Every builder takes ``source`` (``"mnist5k"`` — the embedded 5,000 digits — or a folder of IDX
files such as full MNIST or /usr/share/datasets/fashion-mnist) or ready ``arrays``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from ..checks import check_count
from ..errors import LifelongError
from ..registry import BENCHMARKS
from .sources import Split, from_arrays, load_source
from .streams import Stream, Task
from .transforms import class_subset, permute, pixel_permutation, random_subset, rotate

HOMEWORK_ANGLES = (0.0, 20.0, 40.0, 60.0, 80.0)


def _data(source, arrays) -> Split:
    if arrays is None:
        return load_source(source)
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
        raise LifelongError("arrays must be a tuple (x_train, y_train, x_test, y_test)")
    return from_arrays(*arrays)


def _check_scenario(scenario: str, allowed: Sequence[str], name: str) -> None:
    if scenario not in allowed:
        raise LifelongError(
            f"{name} supports scenario {' or '.join(allowed)}, not {scenario!r}"
        )


def _check_count(name: str, value, allow_none: bool = False) -> None:
    check_count(name, value, allow_none, prefix="benchmark option")


def _check_seed(seed) -> None:
    check_count("seed", seed, low=0, high=2**32, prefix="benchmark option")


def _as_images(x: torch.Tensor) -> torch.Tensor:
    """``(n, c, h, w)`` images for rotation: square flat rows are read as one-channel images."""
    side = math.isqrt(x.shape[1]) if x.dim() == 2 else 0
    if x.dim() == 2 and side * side == x.shape[1]:
        return x.reshape(-1, 1, side, side)
    if x.dim() != 4:
        raise LifelongError(f"rotated-mnist rotates images (n, h, w) or (n, c, h, w), or square rows "
                            f"(n, h*w); got inputs of shape {tuple(x.shape)}")
    return x


def _check_memory(name: str, tasks: int, xtr: torch.Tensor, xte: torch.Tensor, per_task: int | None) -> None:
    """Each task holds its own transformed copy of the data: refuse a stream that cannot fit in
    this machine's memory before building it (a million permutations would only hang)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no check
        return
    train = xtr[:per_task] if per_task else xtr
    need = tasks * (train.numel() + xte.numel()) * xtr.element_size()
    if need > 0.8 * physical:
        raise LifelongError(f"{name} with {tasks} tasks needs about {need / 1e9:.1f} GB for the tasks' "
                            f"copies of the data, more than this machine's {physical / 1e9:.1f} GB; "
                            "use fewer tasks or train_per_task")


def _num_classes(y: torch.Tensor) -> int:
    if y.numel() == 0:  # from_arrays refuses empty sets; this guards streams built otherwise
        raise LifelongError("the training set is empty; give at least one labelled example")
    return int(y.max().item()) + 1


@BENCHMARKS.register("rotated-mnist", "digits rotated by a fixed angle per task (domain-incremental)")
def rotated(
    angles: Sequence[float] = HOMEWORK_ANGLES,
    source: str | None = "mnist5k",
    arrays=None,
    train_per_task: int | None = None,
    scenario: str = "domain",
    seed: int = 0,
) -> Stream:
    """Task t shows every image rotated by ``angles[t]`` degrees (the homework: 0, 20 … 80).

    ``train_per_task`` draws that many training examples per task (seeded by ``seed``); by
    default every task rotates the same full training set. ``scenario="task"`` gives the task
    identity at test time (for PNN, PackNet, CPG).
    """
    _check_scenario(scenario, ("domain", "task"), "rotated-mnist")
    if len(angles) == 0:
        raise LifelongError("rotated-mnist needs at least one angle")
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in angles):
        raise LifelongError(f"angles must be numbers of degrees, got {list(angles)!r}")
    _check_count("train_per_task", train_per_task, allow_none=True)
    xtr, ytr, xte, yte = (_as_images(a) if i % 2 == 0 else a for i, a in enumerate(_data(source, arrays)))
    _check_memory("rotated-mnist", len(angles), xtr, xte, train_per_task)
    _check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    classes = tuple(range(_num_classes(ytr)))
    tasks = []
    for t, angle in enumerate(angles):
        x, y = random_subset(xtr, ytr, train_per_task, gen)
        tasks.append(
            Task(t, f"rot{float(angle):g}", rotate(x, angle), y, rotate(xte, angle), yte, classes)
        )
    return Stream("rotated-mnist", tasks, scenario, tuple(xtr.shape[1:]), len(classes),
                  meta={"angles": [float(a) for a in angles]})


@BENCHMARKS.register("permuted-mnist", "digits with a fixed random pixel permutation per task")
def permuted(
    n_tasks: int = 5,
    source: str | None = "mnist5k",
    arrays=None,
    train_per_task: int | None = None,
    scenario: str = "domain",
    seed: int = 0,
) -> Stream:
    """Task t shuffles the pixels of every image by its own permutation (seeded by ``seed``)."""
    _check_scenario(scenario, ("domain", "task"), "permuted-mnist")
    _check_count("n_tasks", n_tasks)
    _check_count("train_per_task", train_per_task, allow_none=True)
    xtr, ytr, xte, yte = _data(source, arrays)
    _check_memory("permuted-mnist", n_tasks, xtr, xte, train_per_task)
    _check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    classes = tuple(range(_num_classes(ytr)))
    num_pixels = xtr[0].numel()
    tasks = []
    for t in range(n_tasks):
        perm = pixel_permutation(num_pixels, seed * 1000 + t)
        x, y = random_subset(xtr, ytr, train_per_task, gen)
        tasks.append(Task(t, f"perm{t}", permute(x, perm), y, permute(xte, perm), yte, classes))
    return Stream("permuted-mnist", tasks, scenario, tuple(xtr.shape[1:]), len(classes))


@BENCHMARKS.register("split-mnist", "disjoint groups of digits per task (task- or class-incremental)")
def split(
    classes_per_task: int = 2,
    source: str | None = "mnist5k",
    arrays=None,
    scenario: str = "task",
    seed: int = 0,
) -> Stream:
    """Task t holds the classes ``[t*k, (t+1)*k)`` of the sorted labels present: 5 tasks of 2
    digits by default (labels such as {3, 7, 8, 9} give tasks 37 and 89).

    ``scenario="task"`` masks the logits to the task's digits (multi-head); ``"class"`` uses one
    head over every digit with no task identity (class-incremental).
    """
    _check_scenario(scenario, ("task", "class"), "split-mnist")
    _check_seed(seed)
    xtr, ytr, xte, yte = _data(source, arrays)
    n = _num_classes(ytr)
    present = [int(c) for c in torch.unique(ytr)]  # labels need not start at 0 nor be contiguous
    _check_count("classes_per_task", classes_per_task)
    if len(present) % classes_per_task:
        raise LifelongError(
            f"classes_per_task={classes_per_task} must divide the {len(present)} classes "
            f"{present} evenly"
        )
    tasks = []
    for t in range(len(present) // classes_per_task):
        cls = tuple(present[t * classes_per_task:(t + 1) * classes_per_task])
        a, b = class_subset(xtr, ytr, cls)
        c, d = class_subset(xte, yte, cls)
        tasks.append(Task(t, "digits" + "".join(map(str, cls)), a, b, c, d, cls))
    return Stream("split-mnist", tasks, scenario, tuple(xtr.shape[1:]), n)


def make_benchmark(name: str, **options) -> Stream:
    """Build a registered stream by name, e.g. ``make_benchmark("rotated-mnist")``."""
    factory = BENCHMARKS.get(name)
    BENCHMARKS.check_options(name, options)
    try:
        return factory(**options)
    except TypeError as exc:
        raise LifelongError(f"bad option for benchmark {name!r}: {exc}") from None
