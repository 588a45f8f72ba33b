"""Shuffled mini-batches as index tensors: the loop's batch order, shared with methods that train
something of their own (generative replay's generator)."""

from __future__ import annotations

import torch

from .strategies.base import Batch


def batch_indices(n: int, batch_size: int, generator: torch.Generator, repeats: int = 1,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """One shuffled epoch over ``n`` examples as index batches, from a seeded permutation.

    ``repeats`` > 1 passes over every example that many times in one shuffled epoch — the same
    batches as on the data repeated ``repeats`` times, without materialising the copies. No
    examples (or ``repeats`` 0) give no batches: an epoch of no steps, not one empty batch.
    """
    if n * repeats == 0:
        return ()
    perm = torch.randperm(n * repeats, generator=generator).to(device)
    if repeats > 1:
        perm = perm % n  # row k of x.repeat(repeats) is x[k % n]
    return perm.split(max(1, min(batch_size, perm.numel())))


def iterate_batches(data: Batch, batch_size: int, generator: torch.Generator, repeats: int = 1):
    """One epoch of shuffled mini-batches (``batch_indices``): tensor indexing only."""
    x, y, t = data
    for idx in batch_indices(x.shape[0], batch_size, generator, repeats, x.device):
        yield x[idx], y[idx], t[idx]
