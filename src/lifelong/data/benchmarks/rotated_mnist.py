"""``rotated-mnist``: every task shows the same images, rotated by its own angle."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ...checks import shown
from ...errors import LifelongError
from ...registry import BENCHMARKS
from ..datasets import load_dataset
from ..streams import Stream, Task
from ..transforms import random_subset, rotate
from .common import check_memory, check_option_count, check_scenario, check_seed, normalizer, num_classes

HOMEWORK_ANGLES = (0.0, 20.0, 40.0, 60.0, 80.0)


def as_images(x: torch.Tensor) -> torch.Tensor:
    """``(n, c, h, w)`` images for rotation: square flat rows are read as one-channel images."""
    side = math.isqrt(x.shape[1]) if x.dim() == 2 else 0
    if x.dim() == 2 and side * side == x.shape[1]:
        return x.reshape(-1, 1, side, side)
    if x.dim() != 4:
        raise LifelongError(f"rotated-mnist rotates images (n, h, w) or (n, c, h, w), or square rows "
                            f"(n, h*w); got inputs of shape {tuple(x.shape)}")
    return x


@BENCHMARKS.register("rotated-mnist", "digits rotated by a fixed angle per task (domain-incremental)")
def rotated(
    angles: Sequence[float] = HOMEWORK_ANGLES,
    source: str | None = "mnist5k",
    arrays=None,
    train_per_task: int | None = None,
    scenario: str = "domain",
    seed: int = 0,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    normalize: bool | None = None,
    shuffle_order: bool = False,
) -> Stream:
    """Task t shows every image rotated by ``angles[t]`` degrees (the homework: 0, 20 … 80).

    The data: ``source`` (``"mnist5k"``, the embedded 5,000 digits, or a folder of IDX files) or
    ``arrays`` (x_train, y_train, x_test, y_test), called ``dataset`` (default: ``mnist``, the
    folder's name, or ``arrays``); the stream is ``rotated-<dataset>``, task t ``rot<angle>``.
    ``train_per_task`` draws that many training examples per task (seeded by ``seed``); by
    default every task rotates the same full training set. ``scenario="task"`` gives the task
    identity at test time (for PNN, PackNet, CPG). ``layout`` says how 4-D image arrays are laid
    out (``channels_first``/``channels_last``; by default recognised, ``sources.channels_first``);
    ``normalize`` standardises every channel with the training images' mean and deviation (default:
    on for natural colour images such as CIFAR, whose streams are augmented by default too; off for
    digits). ``shuffle_order`` visits the angles in an order drawn from ``seed`` (``compare --vary
    stream``).
    """
    check_scenario(scenario, ("domain", "task"), "rotated-mnist")
    if len(angles) == 0:
        raise LifelongError("rotated-mnist needs at least one angle")
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in angles):
        raise LifelongError(f"angles must be numbers of degrees, got {shown(list(angles))}")
    check_option_count("train_per_task", train_per_task, allow_none=True)
    data = load_dataset(source, arrays, dataset, class_names, layout)
    xtr, ytr, xte, yte = as_images(data.x_train), data.y_train, as_images(data.x_test), data.y_test
    check_memory("rotated-mnist", len(angles), xtr, xte, train_per_task)
    check_seed(seed)
    if not isinstance(shuffle_order, bool):
        raise LifelongError(f"benchmark option shuffle_order must be true or false, got {shuffle_order!r}")
    if shuffle_order:
        perm = torch.randperm(len(angles), generator=torch.Generator().manual_seed(seed))
        angles = [angles[i] for i in perm.tolist()]
    gen = torch.Generator().manual_seed(seed)
    norm, meta = normalizer(data, normalize)
    classes = tuple(range(num_classes(ytr)))
    tasks = []
    for t, angle in enumerate(angles):
        x, y = random_subset(xtr, ytr, train_per_task, gen)
        tasks.append(
            Task(t, f"rot{float(angle):g}", norm(rotate(x, angle)), y, norm(rotate(xte, angle)), yte,
                 classes)
        )
    return Stream(f"rotated-{data.name}", tasks, scenario, tuple(xtr.shape[1:]), len(classes),
                  meta={"angles": [float(a) for a in angles], **meta}, augment=data.photos)
