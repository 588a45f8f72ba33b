"""Accuracy of a model on a task: batched, without gradients, through the strategy's logits."""

from __future__ import annotations

import torch
from torch import nn

from .data.streams import Task
from .models.modes import eval_mode


def accuracy(model: nn.Module, strategy, task: Task, batch_size: int = 2048) -> float:
    """Fraction of ``task``'s test examples classified correctly (task-aware where it applies)."""
    return evaluate_tasks(model, strategy, [task], batch_size)[0]


@torch.no_grad()
def evaluate_tasks(model: nn.Module, strategy, tasks, batch_size: int = 2048) -> list[float]:
    """Accuracy on each of ``tasks`` in order, in eval mode (entered once for all of them)."""
    with eval_mode(model):
        return [_correct(model, strategy, task, batch_size) / max(1, task.x_test.shape[0])
                for task in tasks]


def _correct(model: nn.Module, strategy, task: Task, batch_size: int) -> int:
    """How many of ``task``'s test examples the model (in eval mode, no gradients) gets right."""
    correct = 0
    x, y = task.x_test, task.y_test
    t = task.test_ids().to(x.device)
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        pred = strategy.logits(model, x[sl], t[sl]).argmax(dim=1)
        correct += int((pred == y[sl]).sum())
    return correct
