"""Memories of the past as plain tensor dicts: per-task episodic memory, reservoir and
class-balanced buffers, and a seeded generator that checkpoints with the strategy.

Every buffer is a ``dict[str, Tensor]`` with keys ``x``, ``y``, ``t`` (inputs, labels, task
ids) and, for some kinds, bookkeeping tensors — so a strategy keeps it in an attribute ending
in ``_`` and ``Strategy.state_dict`` saves it without pickling. All updates are vectorised
tensor operations (no Python loop over examples).

* ``append_task_memory`` — GEM/A-GEM's episodic memory: ``m`` examples per task, stacked as
  ``(T, m, ...)`` with a ``valid`` mask (a task with fewer than ``m`` examples is padded).
* ``reservoir_add`` — Vitter's algorithm R (1985): after ``n`` examples each one is kept with
  probability ``size / n``.
* ``class_balanced_add`` — every seen class gets an equal share of the buffer (water-filling:
  a class with fewer examples than its share keeps all of them and the rest is shared out);
  inside a class the kept examples are those with the smallest random keys (a bottom-k
  sample, i.e. uniform without replacement).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Batch

Buffer = dict[str, torch.Tensor]
FIELDS = ("x", "y", "t")


def tensor_bytes(*values: Any) -> int:
    """Bytes of every tensor in ``values`` (tensors, dicts and lists of tensors)."""
    total = 0
    for value in values:
        if torch.is_tensor(value):
            total += value.numel() * value.element_size()
        elif isinstance(value, dict):
            total += tensor_bytes(*value.values())
        elif isinstance(value, (list, tuple)):
            total += tensor_bytes(*value)
    return total


def buffer_len(buffer: Buffer) -> int:
    return int(buffer["y"].shape[0]) if buffer else 0


def random_subset(data: Batch, m: int, generator: torch.Generator) -> Batch:
    """``min(m, n)`` examples of ``data`` drawn uniformly without replacement."""
    n = data[0].shape[0]
    idx = torch.randperm(n, generator=generator)[:m].to(data[0].device)
    return tuple(d[idx] for d in data)  # type: ignore[return-value]


def append_task_memory(memory: Buffer, data: Batch, m: int, generator: torch.Generator) -> Buffer:
    """Add ``m`` random examples of one task as a new row of the ``(T, m, ...)`` memory."""
    x, y, t = random_subset(data, m, generator)
    n = y.shape[0]
    pad = torch.arange(m, device=y.device) % max(n, 1)  # repeat examples to fill the row
    row = {"x": x[pad], "y": y[pad], "t": t[pad], "valid": torch.arange(m, device=y.device) < n}
    if not memory:
        return {k: v.unsqueeze(0) for k, v in row.items()}
    return {k: torch.cat([memory[k], row[k].unsqueeze(0)]) for k in row}


def sample(buffer: Buffer, k: int, generator: torch.Generator) -> Batch:
    """``min(k, len)`` stored examples drawn uniformly without replacement."""
    idx = torch.randperm(buffer_len(buffer), generator=generator)[:k].to(buffer["y"].device)
    return tuple(buffer[f][idx] for f in FIELDS)  # type: ignore[return-value]


def reservoir_add(
    buffer: Buffer, batch: Batch, seen: int, size: int, generator: torch.Generator
) -> tuple[Buffer, int]:
    """Algorithm R over a batch at once; returns the new buffer and the new count seen.

    Example ``i`` of the stream (0-based) fills slot ``i`` while the buffer is not full, else
    draws ``j`` uniform in ``[0, i]`` and replaces slot ``j`` when ``j < size``. Within a batch
    a later example overwrites an earlier one that drew the same slot, exactly as the
    sequential algorithm does.
    """
    n = batch[1].shape[0]
    device = batch[1].device
    pos = seen + torch.arange(n, dtype=torch.float64)
    draw = torch.floor(torch.rand(n, generator=generator, dtype=torch.float64) * (pos + 1))
    slot = torch.where(pos < size, pos, draw).long()
    keep = slot < size
    new_len = min(size, seen + n)
    if not buffer:
        buffer = {f: batch[i].new_zeros((0, *batch[i].shape[1:])) for i, f in enumerate(FIELDS)}
    grown = {f: _grow(buffer[f], new_len) for f in FIELDS}
    last = torch.full((new_len,), -1, dtype=torch.long)
    last.scatter_reduce_(0, slot[keep], torch.arange(n)[keep], reduce="amax")
    slots, items = (last >= 0).nonzero().squeeze(1), last[last >= 0]
    slots, items = slots.to(device), items.to(device)
    for i, f in enumerate(FIELDS):
        grown[f][slots] = batch[i][items]
    return grown, seen + n


def _grow(value: torch.Tensor, length: int) -> torch.Tensor:
    extra = length - value.shape[0]
    if extra <= 0:
        return value.clone()
    return torch.cat([value, value.new_zeros((extra, *value.shape[1:]))])


def balanced_quotas(available: torch.Tensor, size: int) -> torch.Tensor:
    """Water-filling: an equal share of ``size`` per class with examples, capped by what the
    class has; what a small class cannot use is shared among the others (sum ≤ ``size``)."""
    quotas = torch.zeros_like(available)
    remaining, left = size, int((available > 0).sum())
    for c in torch.argsort(available, stable=True).tolist():  # one step per class, not example
        if int(available[c]) == 0:
            continue
        quotas[c] = min(int(available[c]), remaining // left)
        remaining -= int(quotas[c])
        left -= 1
    return quotas


def class_balanced_add(
    buffer: Buffer, batch: Batch, size: int, generator: torch.Generator
) -> Buffer:
    """Merge ``batch`` into a class-balanced buffer; each example carries a random ``key``."""
    keys = torch.rand(batch[1].shape[0], generator=generator, dtype=torch.float64)
    new = {**dict(zip(FIELDS, batch)), "key": keys.to(batch[1].device)}
    merged = {f: torch.cat([buffer[f], new[f]]) for f in new} if buffer else new
    y = merged["y"]
    counts = torch.bincount(y, minlength=int(y.max()) + 1)
    quotas = balanced_quotas(counts.cpu(), size).to(y.device)
    by_key = torch.argsort(merged["key"], stable=True)
    order = by_key[torch.argsort(y[by_key], stable=True)]  # by class, then by key
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(y.shape[0], device=y.device) - first[y[order]]
    kept = order[rank < quotas[y[order]]]
    return {f: v[kept] for f, v in merged.items()}


class SeededRandom:
    """Mixin: a seeded ``torch.Generator`` whose state is kept in ``rng_state_`` (a uint8
    tensor), so sampling continues identically after a checkpoint is saved and restored."""

    rng_state_: torch.Tensor

    def seed_rng(self, seed: int) -> None:
        self._rng: torch.Generator | None = torch.Generator().manual_seed(seed)
        self.rng_state_ = self._rng.get_state()

    def rng(self) -> torch.Generator:
        if getattr(self, "_rng", None) is None:
            self._rng = torch.Generator()
            self._rng.set_state(self.rng_state_)
        return self._rng  # type: ignore[return-value]

    def state_dict(self):  # type: ignore[no-untyped-def]
        if getattr(self, "_rng", None) is not None:
            self.rng_state_ = self._rng.get_state()  # type: ignore[union-attr]
        return super().state_dict()  # type: ignore[misc]

    def load_state_dict(self, tensors, structure) -> None:  # type: ignore[no-untyped-def]
        super().load_state_dict(tensors, structure)  # type: ignore[misc]
        self._rng = None
