"""Tasks and streams: the data a lifelong learner meets, in order, as in-memory tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import shown
from ..errors import LifelongError

SCENARIOS = ("task", "domain", "class")
"""task-incremental (task id known at test time), domain-incremental (same classes, new
input distribution), class-incremental (new classes, one head, no task id)."""


@dataclass
class Task:
    """One task: its id in the stream, a name, train/test tensors and the classes it holds.

    ``x_*`` are float tensors of shape ``(n, *input_shape)`` scaled to [0, 1]; ``y_*`` are int64
    class labels in the stream's global label space.
    """

    id: int
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            where = f"task {self.name!r}: {split}"
            if not torch.is_tensor(x) or not torch.is_tensor(y):
                raise LifelongError(f"{where} data must be torch tensors, got {type(x).__name__} and "
                                    f"{type(y).__name__}; convert with torch.as_tensor")
            if not x.is_floating_point():
                raise LifelongError(f"{where} inputs are {x.dtype}; give floats (x.float(), images "
                                    "scaled to [0, 1])")
            if y.dtype != torch.long or y.dim() != 1:
                raise LifelongError(f"{where} labels must be a 1-D int64 tensor, got {y.dtype} of shape "
                                    f"{tuple(y.shape)}; use y.long()")
            if x.shape[0] != y.shape[0]:
                raise LifelongError(f"{where}: {x.shape[0]} inputs but {y.shape[0]} labels; "
                                    "give one label per example")
            stray = sorted(set(torch.unique(y).tolist()) - set(self.classes))
            if stray:
                raise LifelongError(f"{where} label {stray[0]} is not among the task's classes "
                                    f"{tuple(self.classes)}; list every label of the task in classes")

    def train_ids(self) -> torch.Tensor:
        """The task id of every training example (a constant tensor)."""
        return torch.full((self.x_train.shape[0],), self.id, dtype=torch.long)

    def test_ids(self) -> torch.Tensor:
        return torch.full((self.x_test.shape[0],), self.id, dtype=torch.long)


@dataclass
class Stream:
    """An ordered sequence of tasks sharing an input shape and a label space.

    ``name`` comes from the data (``rotated-mnist``, ``split-fashion-mnist``); ``benchmark`` is the
    registered builder that made it (set by ``make_benchmark``; ``None`` for a stream built by hand).
    ``augment`` is whether the loop augments its training batches when the run does not say
    (random crop with padding and horizontal flip; on for CIFAR streams, off for digits).
    """

    name: str
    tasks: list[Task]
    scenario: str
    input_shape: tuple[int, ...]
    num_classes: int
    meta: dict = field(default_factory=dict)
    benchmark: str | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise LifelongError(
                f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}"
            )
        if not self.tasks:
            raise LifelongError(f"stream {self.name!r} has no tasks")
        for t, task in enumerate(self.tasks):
            if task.id != t:
                raise LifelongError(f"stream {self.name!r}: task {task.name!r} at position {t} has "
                                    f"id {task.id}; number the tasks 0, 1, 2, … in order")
            if tuple(task.x_train.shape[1:]) != tuple(self.input_shape) or \
                    tuple(task.x_test.shape[1:]) != tuple(self.input_shape):
                raise LifelongError(f"stream {self.name!r}: task {task.name!r} has inputs of shape "
                                    f"{tuple(task.x_train.shape[1:])}, not the stream's input_shape "
                                    f"{tuple(self.input_shape)}")
            if task.classes and max(task.classes) >= self.num_classes or min(task.classes, default=0) < 0:
                raise LifelongError(f"stream {self.name!r}: task {task.name!r} has classes "
                                    f"{shown(tuple(task.classes))} outside 0..{self.num_classes - 1}; "
                                    "raise num_classes or relabel")

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)

    def __getitem__(self, i: int) -> Task:
        return self.tasks[i]

    @property
    def task_aware(self) -> bool:
        """True when the task identity is given at test time (task-incremental)."""
        return self.scenario == "task"

    def class_mask(self) -> torch.Tensor | None:
        """A (T, C) boolean matrix of each task's classes for task-incremental streams.

        Masking the logits outside a task's classes is the multi-head output: each task owns
        the rows of the output layer for its classes. ``None`` when no masking applies.
        """
        if not self.task_aware:
            return None
        mask = torch.zeros(len(self.tasks), self.num_classes, dtype=torch.bool)
        for task in self.tasks:
            mask[task.id, list(task.classes)] = True
        return mask
