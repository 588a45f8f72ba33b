"""Validation streams: each task scored on a stratified part of its own training data, never on
its test set — the data hyper-parameters are chosen on (``lifelong tune``, docs/tuning.md).

The benchmark option ``validation = {fraction = 0.1, seed = 0, tasks = 3}`` (any benchmark;
``make_benchmark`` applies it) carves ``fraction`` of every class of each task's training data
(``sources.stratified_split``, seeded by ``seed`` and the task's id): the run trains on the rest
and is scored on that part, which takes the place of the test set. The test tensors are dropped
unread. ``tasks`` = k keeps only the first k tasks (the protocol of Chaudhry et al. 2019, A-GEM,
Sec. 5: hyper-parameters are chosen on the first tasks of the stream); absent or null: all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..checks import check_count, check_number
from ..errors import LifelongError
from .sources import stratified_split
from .streams import Stream, Task

VALIDATION_OPTION = "validation"
"""The benchmark option every benchmark takes (``make_benchmark`` handles it, not the builder)."""
DEFAULT_FRACTION = 0.1


def validation_options(value: Any) -> dict[str, Any]:
    """The option's table with its defaults written out, or a one-line error naming the bad key."""
    if not isinstance(value, dict):
        raise LifelongError(f"benchmark option validation must be a table such as {{fraction = 0.1, "
                            f"seed = 0, tasks = 3}}, got {value!r}")
    unknown = sorted(set(value) - {"fraction", "seed", "tasks"})
    if unknown:
        raise LifelongError(f"benchmark option validation has no key {unknown[0]!r}; its keys: fraction, "
                            "seed, tasks")
    options = {"fraction": DEFAULT_FRACTION, "seed": 0, "tasks": None, **value}
    check_number("fraction", options["fraction"], inclusive=False, high=1, high_inclusive=False,
                 prefix="validation")
    check_count("seed", options["seed"], low=0, prefix="validation")
    if options["tasks"] is not None:
        check_count("tasks", options["tasks"], low=1, prefix="validation")
    return options


def validation_stream(stream: Stream, fraction: float = DEFAULT_FRACTION, seed: int = 0,
                      tasks: int | None = None) -> Stream:
    """``stream`` (its first ``tasks`` tasks) with each task's test set replaced by a stratified
    ``fraction`` of its training data, which the task no longer trains on. Reads no test tensor."""
    options = validation_options({"fraction": fraction, "seed": seed, "tasks": tasks})
    if tasks is not None and tasks > len(stream):
        raise LifelongError(f"validation tasks = {tasks}, but stream {stream.name!r} has only {len(stream)} "
                            "tasks; tune on fewer first tasks")
    kept = stream.tasks[:tasks] if tasks is not None else stream.tasks
    return dataclasses.replace(
        stream, tasks=[_held_out(task, options["fraction"], options["seed"]) for task in kept],
        meta={**stream.meta, VALIDATION_OPTION: options})


def _held_out(task: Task, fraction: float, seed: int) -> Task:
    y = task.y_train.cpu().numpy()
    counts = torch.bincount(task.y_train.cpu())
    if int(counts[counts > 0].min()) < 2:
        raise LifelongError(f"task {task.name!r} has a class with a single training example; a validation "
                            "split needs at least two per class (one to train, one to score)")
    fit, held = stratified_split(y, seed=seed * 1_000_003 + task.id, fraction=fraction)
    fit, held = torch.from_numpy(fit).to(task.x_train.device), torch.from_numpy(held).to(task.x_train.device)
    return Task(task.id, task.name, task.x_train[fit], task.y_train[fit], task.x_train[held],
                task.y_train[held], task.classes)
