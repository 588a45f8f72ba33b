"""``split-mnist``: disjoint groups of classes, one group per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...checks import shown
from ...errors import LifelongError
from ...registry import BENCHMARKS
from ..datasets import Dataset, load_dataset
from ..streams import Stream, Task
from ..transforms import class_subset
from .common import check_option_count, check_scenario, check_seed, normalizer, num_classes


@BENCHMARKS.register("split-mnist", "disjoint groups of digits per task (task- or class-incremental)")
def split(
    classes_per_task: int = 2,
    source: str | None = "mnist5k",
    arrays=None,
    scenario: str = "task",
    seed: int = 0,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    normalize: bool | None = None,
) -> Stream:
    """Task t holds the classes ``[t*k, (t+1)*k)`` of the sorted labels present: 5 tasks of 2
    digits by default (labels such as {3, 7, 8, 9} give tasks 37 and 89).

    The data options are ``rotated``'s; the stream is ``split-<dataset>`` and a task is named by
    its classes: ``digits01`` for MNIST, ``trouser+pullover`` for Fashion-MNIST, ``classes01`` for
    arrays without class names. ``scenario="task"`` masks the logits to the task's classes
    (multi-head); ``"class"`` uses one head over every class with no task identity.
    """
    check_scenario(scenario, ("task", "class"), "split-mnist")
    check_seed(seed)
    data = load_dataset(source, arrays, dataset, class_names, layout)
    return split_stream(data, classes_per_task, scenario, normalize)


def split_stream(data: Dataset, classes_per_task: int, scenario: str, normalize: bool | None) -> Stream:
    """``data`` split into tasks of ``classes_per_task`` consecutive labels, ``split-<data's name>``;
    normalised per channel and augmented by default for natural colour images (``normalizer``)."""
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    n = num_classes(ytr)
    present = [int(c) for c in torch.unique(ytr)]  # labels need not start at 0 nor be contiguous
    check_option_count("classes_per_task", classes_per_task)
    if len(present) % classes_per_task:
        raise LifelongError(
            f"classes_per_task={classes_per_task} must divide the {len(present)} classes "
            f"{shown(present)} evenly"
        )
    norm, meta = normalizer(data, normalize)
    tasks = []
    for t in range(len(present) // classes_per_task):
        cls = tuple(present[t * classes_per_task:(t + 1) * classes_per_task])
        a, b = class_subset(xtr, ytr, cls)
        c, d = class_subset(xte, yte, cls)
        tasks.append(Task(t, data.group_name(cls), norm(a), b, norm(c), d, cls))
    return Stream(f"split-{data.name}", tasks, scenario, tuple(xtr.shape[1:]), n, meta=meta,
                  augment=data.photos)
