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
        return [_scores(model, strategy, task, False, batch_size)[0] for task in tasks]


@torch.no_grad()
def evaluate_both(model: nn.Module, strategy, tasks,
                  batch_size: int = 2048) -> tuple[list[float], list[float]]:
    """(accuracies, task-incremental accuracies) on each of ``tasks``, one forward pass each."""
    with eval_mode(model):
        pairs = [_scores(model, strategy, task, True, batch_size) for task in tasks]
    return [a for a, _ in pairs], [b for _, b in pairs]


def _scores(model: nn.Module, strategy, task: Task, task_il: bool,
            batch_size: int) -> tuple[float, float | None]:
    """(accuracy, task-incremental accuracy) on ``task``'s test examples, the model already in
    eval mode without gradients.

    The first is the strategy's prediction (task-aware where it applies); with ``task_il`` the
    second is the same outputs' argmax over ``task.classes`` only (the others masked: the task
    identity given at test time), else None — a class-incremental run's task-IL score."""
    correct, correct_til = 0, 0
    x, y = task.x_test, task.y_test
    t = task.test_ids().to(x.device)
    outside = None
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        logits = strategy.logits(model, x[sl], t[sl])
        correct += int((logits.argmax(dim=1) == y[sl]).sum())
        if task_il:
            if outside is None:
                outside = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
                outside[list(task.classes)] = False
            masked = logits.masked_fill(outside, float("-inf"))
            correct_til += int((masked.argmax(dim=1) == y[sl]).sum())
    n = max(1, x.shape[0])
    return correct / n, (correct_til / n if task_il else None)
