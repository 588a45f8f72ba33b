"""Experience replay with a bounded buffer (ER; Chaudhry et al. 2019, "On Tiny Episodic
Memories in Continual Learning", Alg. 1; reservoir sampling after Vitter 1985, Algorithm R).

At every step the incoming batch B_n is joined by a batch B_M of ``replay_batch_size``
examples drawn uniformly (without replacement) from the buffer, and the model takes one SGD
step on the mean cross-entropy over B_n ∪ B_M; then B_n is offered to the memory. The memory
holds at most ``buffer_size`` examples of everything seen so far (``memory.py``), chosen by
``policy``:

* ``"reservoir"`` — every example seen is kept with the same probability size / n_seen;
* ``"class-balanced"`` — every class seen gets an equal share of the buffer (a class with
  fewer examples keeps them all and its unused share goes to the others), a uniform random
  sample inside each class.

In task-incremental streams the stored task ids pick each replayed example's own head. The
randomness (sampling and buffer updates) comes from a seeded generator kept in the state, so a
restored run continues identically. ``memory_bytes`` counts the stored examples.

B_M goes through the model in a forward pass of its own (B_n's outputs come from the loop's), so
a model with BatchNorm normalises the two parts with their own batch statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count
from ..data.streams import Task
from ..models.heads import mask_logits
from ..registry import STRATEGIES
from .base import Batch
from .memory import POLICIES, Memory, as_records, tensor_bytes
from .rehearsal import Rehearsal

ONLINE_POLICIES = tuple(p for p in POLICIES if p != "herding")  # herding needs features (iCaRL)


@STRATEGIES.register("replay", "experience replay: mixed batches of new and stored examples from "
                               "a reservoir or class-balanced memory")
class Replay(Rehearsal):
    """Experience replay from a bounded memory of past examples."""

    search_space = {"replay_batch_size": (32, 64, 128, 256)}

    seed_offset = 4003

    def __init__(self, buffer_size: int = 1000, replay_batch_size: int | None = None,
                 policy: str = "reservoir") -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.replay_batch_size = check_count("replay_batch_size", replay_batch_size, allow_none=True)
        self.policy = check_choice("policy", policy, ONLINE_POLICIES)
        self.memory_: Memory = {}
        self.seen_ = 0

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        """The mean cross-entropy over B_n ∪ B_M (the stored examples in a forward pass of their
        own, each with its own task's head)."""
        _, y, t = batch
        losses = F.cross_entropy(mask_logits(outputs, t, self.class_mask_), y, reduction="none")
        old = self.draw(y.shape[0])
        if old is not None:
            replayed = self.replayed_logits(model, old)
            losses = torch.cat([losses, F.cross_entropy(replayed, old["y"], reduction="none")])
        return losses.mean()

    def after_forward(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> None:
        """Offer the incoming batch to the memory under the chosen policy."""
        self.remember(as_records(batch))

    def memory_bytes(self) -> int:
        """Bytes of the stored examples (inputs, labels, task ids; class-balanced: keys too)."""
        return tensor_bytes(self.memory_)
