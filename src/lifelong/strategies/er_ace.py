"""ER-ACE: experience replay with the asymmetric cross-entropy. Caccia, Aljundi, Asadi,
Tuytelaars, Pineau & Belilovsky, "New Insights on Reducing Abrupt Representation Change in Online
Continual Learning", ICLR 2022 (Sec. 4, eq. 6).

When new classes arrive, plain replay's cross-entropy over all classes pushes the old classes'
features towards the new ones' (the incoming batch's gradient lowers every old class's logit).
ER-ACE scores the two halves of each step differently:

    L = ℓ_CE(f(x_in) restricted to C_in, y_in) + ℓ_CE(f(x_M) over every class seen, y_M)

with C_in the classes present in the incoming batch and the replayed batch drawn uniformly from a
reservoir memory. The two terms are averaged over their own batches and summed, as in the
authors' code. "Every class seen" is every class of the tasks met so far, including the current
one (classes not met yet are masked in both terms). In task-incremental streams each example is
also restricted to its own task's head.

Hyper-parameters: ``buffer_size`` (examples), ``replay_batch_size`` (None: the run's batch size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..models.heads import mask_logits
from ..registry import STRATEGIES
from .base import Batch
from .memory import Memory, as_records
from .rehearsal import Rehearsal


def keep_classes(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Logits with every class outside ``allowed`` (a boolean row over the classes) masked out."""
    return logits.masked_fill(~allowed.to(logits.device), torch.finfo(logits.dtype).min / 2)


@STRATEGIES.register("er-ace", "experience replay with the asymmetric cross-entropy: incoming batch "
                               "over its own classes, replay over all seen (Caccia 2022)")
class ERACE(Rehearsal):
    """Cross-entropy over the incoming batch's classes + over every seen class for replay."""

    search_space = {"replay_batch_size": (32, 64, 128, 256)}

    seed_offset = 4007

    def __init__(self, buffer_size: int = 500, replay_batch_size: int | None = None) -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.replay_batch_size = check_count("replay_batch_size", replay_batch_size, allow_none=True)
        self.memory_: Memory = {}
        self.seen_ = 0

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seen_classes_ = torch.zeros(stream.num_classes, dtype=torch.bool)

    def extend(self, stream, config) -> None:
        """Going on: a longer stream may bring more classes; the ones seen stay seen."""
        super().extend(stream, config)
        grown = torch.zeros(stream.num_classes, dtype=torch.bool)
        grown[: self.seen_classes_.numel()] = self.seen_classes_
        self.seen_classes_ = grown

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        self.seen_classes_ = self.seen_classes_.clone()
        self.seen_classes_[list(task.classes)] = True
        return model

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        _, y, t = batch
        present = torch.zeros(outputs.shape[1], dtype=torch.bool, device=outputs.device)
        present[y] = True
        loss = F.cross_entropy(keep_classes(mask_logits(outputs, t, self.class_mask_), present), y)
        old = self.draw(y.shape[0])
        if old is not None:
            replayed = keep_classes(self.replayed_logits(model, old), self.seen_classes_)
            loss = loss + F.cross_entropy(replayed, old["y"])
        return loss

    def after_forward(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> None:
        self.remember(as_records(batch))
