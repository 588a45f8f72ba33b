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


@BENCHMARKS.register("split-mnist", "disjoint groups of digits per task (task-, domain- or "
                     "class-incremental)")
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
    class_order: Sequence[int] | None = None,
    shuffle_order: bool = False,
) -> Stream:
    """Task t holds the classes ``[t*k, (t+1)*k)`` of the sorted labels present: 5 tasks of 2
    digits by default (labels such as {3, 7, 8, 9} give tasks 37 and 89).

    The data options are ``rotated``'s; the stream is ``split-<dataset>`` and a task is named by
    its classes: ``digits01`` for MNIST, ``trouser+pullover`` for Fashion-MNIST, ``classes01`` for
    arrays without class names. ``scenario="task"`` masks the logits to the task's classes
    (multi-head); ``"class"`` uses one head over every class with no task identity; ``"domain"``
    labels each example by its class's position in its task (0 … k−1: even/odd digit for 2 per
    task), one head of k outputs, no task identity (van de Ven & Tolias 2019). ``class_order``
    lists every label in the order to split them (e.g. ``[3, 7, 0, 1, …]``); ``shuffle_order``
    draws that order from ``seed`` instead (``compare --vary stream``).
    """
    check_scenario(scenario, ("task", "domain", "class"), "split-mnist")
    check_seed(seed)
    data = load_dataset(source, arrays, dataset, class_names, layout)
    return split_stream(data, classes_per_task, scenario, normalize,
                        class_sequence(data.y_train, class_order, shuffle_order, seed))


def class_sequence(y: torch.Tensor, order: Sequence[int] | None, shuffle: bool, seed: int) -> list[int]:
    """The labels present in ``y`` in the order they are split: sorted, as ``order`` lists them,
    or (``shuffle``) in an order drawn from ``seed``."""
    present = [int(c) for c in torch.unique(y)]  # labels need not start at 0 nor be contiguous
    if not isinstance(shuffle, bool):
        raise LifelongError(f"benchmark option shuffle_order must be true or false, got {shuffle!r}")
    if order is not None and shuffle:
        raise LifelongError("give class_order or shuffle_order, not both")
    if order is not None:
        if sorted(order) != present or not all(isinstance(c, int) for c in order):
            raise LifelongError(f"class_order must list each of the labels {shown(present)} once, got "
                                f"{shown(list(order))}")
        return list(order)
    if shuffle:
        perm = torch.randperm(len(present), generator=torch.Generator().manual_seed(seed))
        return [present[i] for i in perm.tolist()]
    return present


def split_stream(data: Dataset, classes_per_task: int, scenario: str, normalize: bool | None,
                 order: list[int] | None = None) -> Stream:
    """``data`` split into tasks of ``classes_per_task`` consecutive labels of ``order`` (default:
    the sorted labels), ``split-<data's name>``; normalised per channel and augmented by default
    for natural colour images (``normalizer``). Domain-incremental: each label becomes its position
    in its task, and the stream has ``classes_per_task`` classes."""
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    n = num_classes(ytr)
    present = order if order is not None else [int(c) for c in torch.unique(ytr)]
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
        labels = cls
        if scenario == "domain":  # class cls[i] → i
            lookup = torch.zeros(n, dtype=torch.long)
            lookup[list(cls)] = torch.arange(len(cls))
            b, d, labels = lookup[b], lookup[d], tuple(range(len(cls)))
        tasks.append(Task(t, data.group_name(cls), norm(a), b, norm(c), d, labels))
    meta = {**meta, "class_order": list(present)} if order is not None else meta
    return Stream(f"split-{data.name}", tasks, scenario, tuple(xtr.shape[1:]),
                  classes_per_task if scenario == "domain" else n, meta=meta, augment=data.photos)
