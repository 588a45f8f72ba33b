"""What the benchmark builders share: option checks, the memory guard and the label count.

A builder takes its data through ``load_dataset(source, arrays, dataset, class_names, layout)`` and
names its stream and tasks from the ``Dataset`` it gets (``rotated-`` + its name; see
``datasets.py``). Natural colour images (CIFAR) are normalised per channel and augmented by default
(``normalizer``, ``Stream.augment``); digits are neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from ...checks import check_count
from ...errors import LifelongError
from ..datasets import Dataset


def check_scenario(scenario: str, allowed: Sequence[str], name: str) -> None:
    if scenario not in allowed:
        raise LifelongError(
            f"{name} supports scenario {' or '.join(allowed)}, not {scenario!r}"
        )


def check_option_count(name: str, value, allow_none: bool = False) -> None:
    check_count(name, value, allow_none, prefix="benchmark option")


def check_seed(seed) -> None:
    check_count("seed", seed, low=0, high=2**32, prefix="benchmark option")


def check_memory(name: str, tasks: int, xtr: torch.Tensor, xte: torch.Tensor, per_task: int | None) -> None:
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


def num_classes(y: torch.Tensor) -> int:
    if y.numel() == 0:  # from_arrays refuses empty sets; this guards streams built otherwise
        raise LifelongError("the training set is empty; give at least one labelled example")
    return int(y.max().item()) + 1


def normalizer(data: Dataset, normalize: bool | None) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict]:
    """The per-channel standardisation of ``data`` (mean and standard deviation of its training
    images, per channel of ``(n, c, h, w)`` images, over all values of flat rows) and the stream
    meta that records it; the identity when off. ``normalize`` None: on for natural colour images
    (``Dataset.photos``: CIFAR), off for digits. Builders apply it after their own transforms,
    so a rotation's empty corners are black before, not after, normalisation."""
    if normalize is None:
        normalize = data.photos
    if not isinstance(normalize, bool):
        raise LifelongError(f"benchmark option normalize must be true or false, got {normalize!r}")
    if not normalize:
        return (lambda x: x), {}
    x = data.x_train
    dims = (0, 2, 3) if x.dim() == 4 else tuple(range(x.dim()))
    mean, std = x.mean(dim=dims), x.std(dim=dims)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is only centred
    shape = (1, -1, 1, 1) if x.dim() == 4 else ()
    m, s = mean.reshape(shape), std.reshape(shape)
    return (lambda t: (t - m) / s), {"normalization": {"mean": mean.reshape(-1).tolist(),
                                                       "std": std.reshape(-1).tolist()}}
