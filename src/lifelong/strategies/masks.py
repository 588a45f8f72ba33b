"""Weight masks shared by PackNet and CPG: which task owns each weight, pruning, freezing.

Both methods split one network's weights among tasks. Each prunable weight tensor (every
Linear/Conv2d weight but the output layer's) gets an *owner* tensor of the same shape: 0 means
free, t+1 means task t's own (frozen once task t is done). The output layer is each task's own
classifier (the papers' separate heads): it is copied into the strategy after its task. Biases
are not pruned: they are trained with the first task and then fixed, as in PackNet (Sec. 3),
so every task reads the same biases.

A weight that must not move is protected twice: its gradient is zeroed after ``backward`` (the
papers' gradient mask) and its value re-imposed after each optimiser step, because a zero
gradient alone does not stop momentum or weight decay from moving it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import LifelongError
from ..models.columns import Chain, parse_chain
from ..models.modes import eval_mode
from .base import Batch, Strategy, TrainFunction

FREE = 0


def route_by_task(
    x: torch.Tensor, task_ids: torch.Tensor, forward: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """``forward(x_t, t)`` for each task id present; one call when the batch shares one task."""
    ids = task_ids.unique().tolist()
    if len(ids) == 1:
        return forward(x, int(ids[0]))
    out: torch.Tensor | None = None
    for t in ids:
        idx = (task_ids == t).nonzero().squeeze(1)
        part = forward(x[idx], int(t))
        if out is None:
            out = part.new_zeros((x.shape[0], *part.shape[1:]))
        out = out.index_copy(0, idx, part)
    assert out is not None
    return out


def layer_roles(model: nn.Module, method: str) -> tuple[list[str], list[str], list[str]]:
    """(prunable weight names, head parameter names, hidden bias names) of a Linear/Conv chain."""
    chain: Chain = parse_chain(model, method)
    *hidden, head = chain.names
    weights = [f"{n}.weight" for n in hidden]
    heads = [f"{head}.{p}" for p, _ in chain.layers[-1].named_parameters()]
    biases = [f"{n}.bias" for n, layer in zip(hidden, chain.layers) if layer.bias is not None]
    return weights, heads, biases


def owned(owner: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """Positions owned by tasks ``first..last`` (inclusive)."""
    return (owner >= first + 1) & (owner <= last + 1)


def keep_largest(weight: torch.Tensor, candidates: torch.Tensor, fraction: float) -> torch.Tensor:
    """The ``round(fraction × #candidates)`` candidate positions of largest |weight| (per layer,
    PackNet's magnitude criterion); ties are broken by position, so the result is deterministic."""
    scores = weight.detach().abs().flatten().masked_fill(~candidates.flatten(), -1.0)
    count = int(round(fraction * int(candidates.sum())))
    keep = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    if count > 0:
        order = torch.sort(scores, descending=True, stable=True).indices
        keep[order[:count]] = True
    return keep.view_as(weight)


class Freeze:
    """Hold every parameter entry fixed except those marked trainable.

    ``trainable`` maps a parameter name to True (all entries), a boolean tensor (those entries)
    or nothing (frozen). For a parameter given a boolean tensor, ``trained[name]`` records the
    entries that have received a nonzero gradient since the freeze began (a weight from an input
    that is always zero, or into a unit that never fires, never does).
    """

    def __init__(self, model: nn.Module, trainable: dict[str, bool | torch.Tensor]) -> None:
        self.entries: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self.trained: dict[str, torch.Tensor] = {}
        for name, param in model.named_parameters():
            allowed = trainable.get(name, False)
            if allowed is True:
                continue
            seen = None
            if allowed is False:
                allowed = torch.zeros_like(param, dtype=torch.bool)
            else:
                seen = self.trained[name] = torch.zeros_like(param, dtype=torch.bool)
            self.entries.append((param, allowed.to(param.device), param.detach().clone(), seen))

    def after_backward(self) -> None:
        for param, allowed, _, seen in self.entries:
            if param.grad is not None:
                param.grad.mul_(allowed)
                if seen is not None:
                    seen |= param.grad != 0

    def after_step(self) -> None:
        with torch.no_grad():
            for param, allowed, anchor, _ in self.entries:
                param.copy_(torch.where(allowed, param, anchor))


def lent_training(train: TrainFunction | None, method: str) -> TrainFunction:
    """The loop's training function ``after_task`` received, or a one-line error without one."""
    if train is None:
        raise LifelongError(f"{method} retrains after each task through the loop's training function; "
                            "call after_task(model, task, train) as the loop does (lifelong.fit)")
    return train


def split_holdout(data: Batch, fraction: float, seed: int) -> tuple[Batch, Batch]:
    """(training part, held-out part) of a task's training data, by a seeded permutation."""
    n = data[0].shape[0]
    held = int(round(fraction * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(data[0].device)
    rest, out = perm[held:], perm[:held]
    return tuple(d[rest] for d in data), tuple(d[out] for d in data)  # type: ignore[return-value]


@torch.no_grad()
def batch_accuracy(strategy: Strategy, model: nn.Module, data: Batch, batch_size: int = 2048) -> float:
    """Accuracy of the strategy's (task-routed, masked) logits on ``data``."""
    x, y, t = data
    correct = 0
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            correct += int((strategy.logits(model, x[sl], t[sl]).argmax(1) == y[sl]).sum())
    return correct / max(1, x.shape[0])


def pad_to(tensor: torch.Tensor, shape: torch.Size, value: float | bool = 0) -> torch.Tensor:
    """``tensor`` in the leading corner of a tensor of ``shape`` filled with ``value`` (after a
    layer grew: new units come last)."""
    if tensor.shape == shape:
        return tensor
    out = torch.full(shape, value, dtype=tensor.dtype, device=tensor.device)
    out[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return out


@torch.no_grad()
def redraw_free(model: nn.Module, owner: dict[str, torch.Tensor], seed: int) -> None:
    """Give the free weights fresh values from PyTorch's default initialisation,
    U(−1/√fan_in, 1/√fan_in), drawn from a generator seeded by ``seed``.

    Released weights were zeroed; trained from zero with small optimiser steps (the homework's
    Adam at 1e-4) they barely move, so a new task starts them like a freshly built layer.
    """
    generator = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    for name, own in owner.items():
        param = params[name]
        bound = 1.0 / param[0].numel() ** 0.5
        fresh = (torch.rand(param.shape, generator=generator) * 2 - 1).mul_(bound).to(param.device)
        param.copy_(torch.where(own == FREE, fresh.to(param.dtype), param))
