"""What the rehearsal methods share: a bounded memory of records filled from the stream as it
passes, and uniform draws from it.

A subclass keeps ``buffer_size`` (examples, the same meaning for every rehearsal method),
``replay_batch_size`` (None: the run's batch size) and, optionally, ``policy`` (default
``reservoir``) as hyper-parameters; the memory is ``memory_`` (records of named tensors,
``memory.py``), the count of examples offered ``seen_``, and the draws come from a seeded generator
kept in the state (``SeededRandom``), so a restored run continues identically. ``seed_offset``
keeps each method's draws apart from the others' in a combination.

The memory stores inputs as drawn from the stream (un-augmented); when the run augments its
batches, every draw gets a fresh crop and flip (``Strategy.augmented``), as the incoming batch
does — the buffer augmentation of the DER paper and of Mammoth's replay methods.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Strategy
from .memory import Memory, SeededRandom, add_to_memory, memory_size, sample


class Rehearsal(SeededRandom, Strategy):
    """A bounded memory of past records and uniform draws from it (no hook of its own)."""

    seed_offset = 4003
    buffer_size: int
    replay_batch_size: int | None

    def setup(self, stream: Any, config: Any) -> None:
        super().setup(stream, config)
        self.memory_: Memory = {}
        self.seen_ = 0
        self.seed_rng(self.seed_ + self.seed_offset)

    def draw(self, n_new: int) -> Memory | None:
        """``replay_batch_size`` stored records drawn uniformly (default: the batch size; None
        while the memory is empty), their inputs augmented afresh as the run's batches are."""
        if not self.memory_:
            return None
        k = self.replay_batch_size or getattr(self.config, "batch_size", n_new)
        records = sample(self.memory_, k, self.rng())
        return {**records, "x": self.augmented(records["x"])}

    def remember(self, records: Memory) -> None:
        """Offer records to the memory under the method's policy (reservoir by default)."""
        records = {k: v.detach() for k, v in records.items()}
        self.memory_, self.seen_ = add_to_memory(getattr(self, "policy", "reservoir"), self.memory_,
                                                 records, self.buffer_size, self.seen_, self.rng())

    def stored(self) -> int:
        """How many examples the memory holds."""
        return memory_size(self.memory_)

    def replayed_logits(self, model: torch.nn.Module, records: Memory) -> torch.Tensor:
        """The task-masked logits of stored inputs (each with its own task's head)."""
        return self.logits(model, records["x"], records["t"])
