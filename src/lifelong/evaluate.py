"""Accuracy of a model on a task: batched, without gradients, through the strategy's logits."""

from __future__ import annotations

import torch
from torch import nn

from .data.streams import Task
from .models.modes import eval_mode


@torch.no_grad()
def accuracy(model: nn.Module, strategy, task: Task, batch_size: int = 2048) -> float:
    """Fraction of ``task``'s test examples classified correctly (task-aware where it applies)."""
    correct = 0
    x, y = task.x_test, task.y_test
    t = task.test_ids().to(x.device)
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            pred = strategy.logits(model, x[sl], t[sl]).argmax(dim=1)
            correct += int((pred == y[sl]).sum())
    return correct / max(1, x.shape[0])


def evaluate_tasks(model: nn.Module, strategy, tasks) -> list[float]:
    """Accuracy on each of ``tasks`` in order."""
    return [accuracy(model, strategy, task) for task in tasks]
