"""The multi-task (joint) upper bound."""

from __future__ import annotations

import torch
from torch import nn

from ..data.streams import Task
from ..registry import STRATEGIES
from .base import Batch, Strategy


@STRATEGIES.register("joint", "multi-task upper bound: trains on the union of all tasks seen so far")
class Joint(Strategy):
    """Multi-task learning on every task seen so far (the upper reference).

    At task t the model keeps training, from its current weights, on the union of the training
    data of tasks 1..t, for the same number of epochs as the other methods. We train on the
    tasks *seen so far* rather than on all tasks at once so that joint fills the same accuracy
    matrix and learning curve as every continual method (its row t is the best a learner that
    could keep all data up to t achieves); its last row is the usual all-at-once upper bound.
    The stored data counts as its memory.
    """


    def __init__(self) -> None:
        self.seen_: dict[str, list[torch.Tensor]] = {}

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        self.seen_ = {**self.seen_, str(task.id): list(super().train_data(task))}
        return model

    def train_data(self, task: Task) -> Batch:
        parts = [self.seen_[k] for k in sorted(self.seen_, key=int) if int(k) <= task.id]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
