"""Experience replay with a bounded buffer (ER; Chaudhry et al. 2019, "On Tiny Episodic
Memories in Continual Learning", Alg. 1; reservoir sampling after Vitter 1985, Algorithm R).

At every step the incoming batch B_n is joined by a batch B_M of ``replay_batch_size``
examples drawn uniformly (without replacement) from the buffer, and the model takes one SGD
step on the mean cross-entropy over B_n ∪ B_M; then B_n is offered to the buffer. The buffer
holds at most ``buffer_size`` examples of everything seen so far, chosen by ``policy``:

* ``"reservoir"`` — every example seen is kept with the same probability size / n_seen;
* ``"class-balanced"`` — every class seen gets an equal share of the buffer (a class with
  fewer examples keeps them all and its unused share goes to the others), a uniform random
  sample inside each class.

In task-incremental streams the stored task ids pick each replayed example's own head. The
randomness (sampling and buffer updates) comes from a seeded generator kept in the state, so a
restored run continues identically. ``memory_bytes`` counts the stored examples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count
from ..data.streams import Task
from ..registry import STRATEGIES
from .base import Batch, Strategy
from .memory import (
    SeededRandom,
    buffer_len,
    class_balanced_add,
    reservoir_add,
    sample,
    tensor_bytes,
)

POLICIES = ("reservoir", "class-balanced")


@STRATEGIES.register("replay", "experience replay: mixed batches of new and stored examples from "
                               "a reservoir or class-balanced buffer")
class Replay(SeededRandom, Strategy):
    """Experience replay from a bounded buffer of past examples."""

    name = "replay"

    def __init__(self, buffer_size: int = 1000, replay_batch_size: int | None = None,
                 policy: str = "reservoir") -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.replay_batch_size = check_count("replay_batch_size", replay_batch_size, allow_none=True)
        self.policy = check_choice("policy", policy, POLICIES)
        self.buffer_: dict[str, torch.Tensor] = {}
        self.seen_ = 0

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 4003)

    def replay_batch(self, n_new: int) -> Batch | None:
        if not self.buffer_:
            return None
        k = self.replay_batch_size or getattr(self.config, "batch_size", n_new)
        return sample(self.buffer_, k, self.rng())

    def remember(self, batch: Batch) -> None:
        """Offer ``batch`` to the buffer under the chosen policy."""
        batch = tuple(b.detach() for b in batch)  # type: ignore[assignment]
        if self.policy == "reservoir":
            self.buffer_, self.seen_ = reservoir_add(
                self.buffer_, batch, self.seen_, self.buffer_size, self.rng())
        else:
            self.buffer_ = class_balanced_add(self.buffer_, batch, self.buffer_size, self.rng())
            self.seen_ += int(batch[1].shape[0])

    def loss(self, model: nn.Module, batch: Batch, task: Task) -> torch.Tensor:
        old = self.replay_batch(batch[1].shape[0])
        x, y, t = batch if old is None else (torch.cat([b, o]) for b, o in zip(batch, old))
        loss = F.cross_entropy(self.logits(model, x, t), y) + self.penalty(model)
        self.remember(batch)
        return loss

    def stored(self) -> int:
        return buffer_len(self.buffer_)

    def memory_bytes(self) -> int:
        """Bytes of the stored examples (inputs, labels, task ids; class-balanced: keys too)."""
        return tensor_bytes(self.buffer_)
