"""Memories of the past as records of named tensors, with the selection policies of the field.

A memory is a ``dict[str, Tensor]`` whose tensors share their first dimension, one row per stored
example: ``x``, ``y``, ``t`` (inputs, labels, task ids) and whatever else a method keeps —
``logits`` (DER), ``features`` (iCaRL) — plus the policies' bookkeeping (``key``, ``rank``). A
strategy keeps it in an attribute ending in ``_``, so ``Strategy.state_dict`` saves it without
pickling. Updates are vectorised tensor operations (no Python loop over examples).

Selection policies (``add_to_memory(policy, ...)``; each returns the new memory):

* ``reservoir`` — Vitter's algorithm R (1985): after ``n`` examples each one is kept with
  probability ``size / n``;
* ``class-balanced`` — every seen class gets an equal share of the memory (water-filling: a class
  with fewer examples than its share keeps all of them and the rest is shared out); inside a class
  the kept examples are those with the smallest random keys (a uniform bottom-k sample);
* ``herding`` — iCaRL's (Rebuffi et al. 2017, Alg. 4): inside each class, examples are ranked by
  greedy herding on their L2-normalised features — the k-th pick is the example that brings the
  mean of the k picked closest to the class mean — and each class keeps its first picks up to its
  equal share (Alg. 5, "reduce exemplar set": the lowest ranks stay when the share shrinks).

``append_task_memory`` is GEM's and A-GEM's episodic memory: ``m`` examples per task, stacked as
``(T, m, ...)`` with a ``valid`` mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import LifelongError
from .base import Batch

Memory = dict[str, torch.Tensor]
POLICIES = ("reservoir", "class-balanced", "herding")


def as_records(batch: Batch, **more: torch.Tensor) -> Memory:
    """A batch ``(x, y, t)`` and any further named tensors as one record per example."""
    x, y, t = batch
    return {"x": x, "y": y, "t": t, **more}


def memory_size(memory: Mapping[str, torch.Tensor]) -> int:
    """How many examples ``memory`` holds."""
    return int(next(iter(memory.values())).shape[0]) if memory else 0


def take(memory: Mapping[str, torch.Tensor], index: torch.Tensor) -> Memory:
    """The rows ``index`` of every field."""
    return {k: v[index.to(v.device)] for k, v in memory.items()}


def joined(memory: Mapping[str, torch.Tensor], records: Memory) -> Memory:
    """The stored rows followed by ``records`` (the memory may be empty)."""
    return {k: torch.cat([memory[k], v]) for k, v in records.items()} if memory else dict(records)


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


def sample(records: Mapping[str, torch.Tensor], k: int, generator: torch.Generator) -> Memory:
    """``min(k, len)`` rows drawn uniformly without replacement (every field)."""
    return take(records, torch.randperm(memory_size(records), generator=generator)[:k])


def append_task_memory(memory: Memory, records: Memory, m: int, generator: torch.Generator) -> Memory:
    """Add ``m`` random examples of one task as a new row of the ``(T, m, ...)`` memory (a task
    with fewer than ``m`` examples repeats them; ``valid`` marks the distinct ones)."""
    chosen = sample(records, m, generator)
    n = memory_size(chosen)
    device = chosen["y"].device
    pad = torch.arange(m, device=device) % max(n, 1)
    row = {**{k: v[pad] for k, v in chosen.items()}, "valid": torch.arange(m, device=device) < n}
    if not memory:
        return {k: v.unsqueeze(0) for k, v in row.items()}
    return {k: torch.cat([memory[k], row[k].unsqueeze(0)]) for k in row}


# --------------------------------------------------------------------------- reservoir
def reservoir_add(memory: Memory, records: Memory, seen: int, size: int,
                  generator: torch.Generator) -> tuple[Memory, int]:
    """Algorithm R over a batch at once; returns the new memory and the new count seen.

    Example ``i`` of the stream (0-based) fills slot ``i`` while the memory is not full, else
    draws ``j`` uniform in ``[0, i]`` and replaces slot ``j`` when ``j < size``. Within a batch a
    later example overwrites an earlier one that drew the same slot, as the sequential algorithm.
    The memory is written in place (no copy of the buffer per step): its tensors are views of
    storage for ``size`` rows, allocated when it first grows, so the tensors of ``memory`` share
    their rows with those of the memory returned.
    """
    check_fields(memory, records)
    n = memory_size(records)
    draws = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    last: dict[int, int] = {}  # slot → the batch's last example that drew it (a few per step:
    for i, draw in enumerate(draws):  # Python numbers cost less than a dozen tensor operations)
        pos = seen + i
        slot = pos if pos < size else math.floor(draw * (pos + 1))
        if slot < size:
            last[slot] = i
    if not memory:
        memory = {k: v.new_zeros((0, *v.shape[1:])) for k, v in records.items()}
    grown = {k: _grow(memory[k], min(size, seen + n), size) for k in records}
    if last:
        device = records["y"].device
        slots = torch.tensor(list(last), device=device)
        items = torch.tensor(list(last.values()), device=device)
        for k, v in records.items():
            grown[k][slots] = v[items]
    return grown, seen + n


def _grow(value: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    """``value`` lengthened to ``length`` rows: a longer view of storage for ``capacity`` rows (made
    once, when ``value`` does not sit at the start of such storage), so filling copies nothing."""
    if length <= value.shape[0]:
        return value  # full: the chosen slots are overwritten in place
    shape = (capacity, *value.shape[1:])
    if (value.storage_offset() or not value.is_contiguous()
            or value.untyped_storage().nbytes() != math.prod(shape) * value.element_size()):
        storage = value.new_zeros(shape)
        storage[: value.shape[0]] = value
        value = storage
    return value.as_strided((length, *shape[1:]), value.stride())


# --------------------------------------------------------------------------- by class
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


def keep_per_class(memory: Memory, order_key: torch.Tensor, size: int) -> Memory:
    """The rows that stay when every class keeps its ``balanced_quotas`` share, taking the rows of
    smallest ``order_key`` inside each class."""
    y = memory["y"]
    counts = torch.bincount(y, minlength=int(y.max()) + 1)
    quotas = balanced_quotas(counts.cpu(), size).to(y.device)
    by_key = torch.argsort(order_key, stable=True)
    order = by_key[torch.argsort(y[by_key], stable=True)]  # by class, then by key
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(y.shape[0], device=y.device) - first[y[order]]
    return take(memory, order[rank < quotas[y[order]]])


def class_balanced_add(memory: Memory, records: Memory, size: int, generator: torch.Generator) -> Memory:
    """Merge ``records`` into a class-balanced memory; each example carries a random ``key``."""
    check_fields(memory, records, extra=("key",))
    keys = torch.rand(memory_size(records), generator=generator, dtype=torch.float64)
    new = {**records, "key": keys.to(records["y"].device)}
    merged = joined(memory, new)
    return keep_per_class(merged, merged["key"], size)


def herding_order(features: torch.Tensor, m: int | None = None) -> torch.Tensor:
    """iCaRL's herding (Alg. 4) on one class: indices of the first ``m`` picks (all by default)
    in the order picked. With φ the L2-normalised features and μ their mean, pick k is
    argmin_x ‖μ − (φ(x) + Σ_{j<k} φ(p_j)) / k‖ over the examples not picked yet."""
    phi = F.normalize(features.detach().flatten(1).double(), dim=1)
    n = phi.shape[0]
    m = n if m is None else min(m, n)
    mu = phi.mean(0)
    picked: list[int] = []
    total = torch.zeros_like(mu)
    free = torch.ones(n, dtype=torch.bool, device=phi.device)
    for k in range(1, m + 1):
        distance = (mu - (phi + total) / k).norm(dim=1).masked_fill(~free, float("inf"))
        best = int(distance.argmin())
        picked.append(best)
        free[best] = False
        total = total + phi[best]
    return torch.tensor(picked, dtype=torch.long, device=features.device)


def herding_add(memory: Memory, records: Memory, features: torch.Tensor, size: int) -> Memory:
    """Add the classes of ``records`` ranked by herding on ``features`` (one row per record), then
    keep every class's first picks up to its equal share of ``size`` (iCaRL's Alg. 4 and 5). New
    rows rank after the stored ones (in iCaRL each class arrives with one task, ranked once)."""
    check_fields(memory, records, extra=("rank",))
    y = records["y"]
    every = torch.cat([memory["y"], y]) if memory else y
    quotas = balanced_quotas(torch.bincount(every).cpu(), size)  # only these many picks are kept
    rank = torch.full((y.shape[0],), float("inf"), dtype=torch.float64, device=y.device)
    stored = memory["rank"][torch.isfinite(memory["rank"])] if memory else None
    offset = 0.0 if stored is None or stored.numel() == 0 else float(stored.max()) + 1
    for c in y.unique().tolist():
        rows = (y == c).nonzero().squeeze(1)
        order = herding_order(features[rows], int(quotas[c]))
        rank[rows[order]] = offset + torch.arange(len(order), dtype=torch.float64, device=y.device)
    new = {**records, "rank": rank}
    merged = joined(memory, new)
    return keep_per_class(merged, merged["rank"], size)


def check_fields(memory: Memory, records: Memory, extra: tuple[str, ...] = ()) -> None:
    """Records added to a memory must have the fields it stores (and no others)."""
    if not memory:
        return
    expected = set(memory) - set(extra)
    if set(records) != expected:
        raise LifelongError(f"records with fields {sorted(records)} cannot join a memory of "
                            f"{sorted(expected)}; add the same named tensors every time")


def add_to_memory(policy: str, memory: Memory, records: Memory, size: int, seen: int,
                  generator: torch.Generator, features: torch.Tensor | None = None) -> tuple[Memory, int]:
    """Offer ``records`` to a memory of at most ``size`` examples under ``policy`` (one of
    ``POLICIES``); returns the new memory and the count of examples offered so far. ``herding``
    needs the records' ``features``."""
    if policy == "reservoir":
        return reservoir_add(memory, records, seen, size, generator)
    seen += memory_size(records)
    if policy == "class-balanced":
        return class_balanced_add(memory, records, size, generator), seen
    if policy == "herding":
        if features is None:
            raise LifelongError("herding selects by features; pass the records' features")
        return herding_add(memory, records, features, size), seen
    raise LifelongError(f"unknown memory policy {policy!r}; choose one of {', '.join(POLICIES)}")


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

    def learned_state(self):  # type: ignore[no-untyped-def]
        if getattr(self, "_rng", None) is not None:
            self.rng_state_ = self._rng.get_state()  # type: ignore[union-attr]
        return super().learned_state()  # type: ignore[misc]

    def load_state_dict(self, tensors, structure) -> None:  # type: ignore[no-untyped-def]
        super().load_state_dict(tensors, structure)  # type: ignore[misc]
        self._rng = None
