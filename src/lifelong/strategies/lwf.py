"""Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017).

Before training on a new task, LwF records the old network's responses to the new task's
inputs and, while training, keeps the new network's responses for the old tasks close to them
with a knowledge-distillation loss (eq. 2) next to the new task's loss:

    L = L_new(y_n, ŷ_n) + λ_o Σ_old L_old(y_o, ŷ_o),
    L_old(y_o, ŷ_o) = − Σ_i y'_o⁽ⁱ⁾ log ŷ'_o⁽ⁱ⁾,   y'_o⁽ⁱ⁾ = softmax(y_o / T)_i,  ŷ'_o⁽ⁱ⁾ = softmax(ŷ_o / T)_i

with temperature T (``temperature``, default 2 as in the paper) and weight λ_o (``lam``,
default 1). Each L_old is averaged over the batch and the old tasks' terms are summed. As in
the paper there is no T² factor; its warm-up step (training the new head alone first) is
omitted.

Which logits are distilled:

* multi-head (task-incremental streams): each old task k has its own head — the logits of
  task k's classes — and contributes one term, with the softmaxes taken over those classes
  only (the paper's setting);
* shared head (domain- and class-incremental streams): one term over all the outputs the old
  model had learned, i.e. the classes of every old task (all classes in domain-incremental
  streams; the old classes, not the new ones, in class-incremental streams).

The old model is kept as a name → tensor dict (parameters and buffers) and evaluated with
``torch.func.functional_call`` in eval mode, on the current batch's inputs, without gradients.
``memory_bytes`` counts that copy of the model (and the tiny class masks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_number
from ..data.streams import Task
from ..models.modes import outputs_of, snapshot
from ..registry import STRATEGIES
from .base import Batch, Strategy, TrainFunction


def distillation_loss(
    new_logits: torch.Tensor, old_logits: torch.Tensor, heads: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Σ_k mean_batch(−Σ_{i∈head k} softmax(old/T)_i · log softmax(new/T)_i), eq. 2.

    ``heads`` is a (K, C) boolean matrix: row k marks the outputs of old head k.
    """
    outside = ~heads[:, None, :]  # (K, 1, C)
    very_negative = torch.finfo(new_logits.dtype).min / 2
    new = (new_logits / temperature).unsqueeze(0).masked_fill(outside, very_negative)
    old = (old_logits / temperature).unsqueeze(0).masked_fill(outside, very_negative)
    terms = F.softmax(old, dim=-1) * F.log_softmax(new, dim=-1)
    terms = torch.where(outside, torch.zeros_like(terms), terms)
    return -terms.sum(dim=-1).mean(dim=1).sum()


@STRATEGIES.register("lwf", "Learning without Forgetting: distil the previous model's outputs "
                            "on new data with a temperature (Li & Hoiem 2016)")
class LwF(Strategy):
    """LwF: cross-entropy on the new task + λ·distillation from the previous model."""

    search_space = {"lam": (0.3, 1.0, 3.0, 10.0), "temperature": (1.0, 2.0)}


    def __init__(self, lam: float = 1.0, temperature: float = 2.0) -> None:
        check_number("lam", lam)  # λ_o, the distillation weight
        check_number("temperature", temperature, inclusive=False)
        self.lam = lam
        self.temperature = temperature
        self.old_model_: dict[str, torch.Tensor] = {}
        self.old_heads_: torch.Tensor | None = None
        self.num_classes_ = 0

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        self.old_model_ = snapshot(model)
        head = torch.zeros(1, self.num_classes_, dtype=torch.bool)
        if self.class_mask_ is not None:
            head = self.class_mask_[task.id].unsqueeze(0).clone()
        else:
            head[0, list(task.classes)] = True
        if self.old_heads_ is None:
            self.old_heads_ = head
        elif self.class_mask_ is not None:
            self.old_heads_ = torch.cat([self.old_heads_, head])
        else:
            self.old_heads_ = self.old_heads_ | head

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.num_classes_ = stream.num_classes

    def extra_loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor,
                   task: Task) -> torch.Tensor | float:
        """λ_o · the distillation from the previous model on the batch's inputs (eq. 2)."""
        if not self.old_model_ or self.old_heads_ is None or self.lam == 0:
            return 0.0
        heads = self.old_heads_.to(outputs.device)
        old = outputs_of(model, self.old_model_, batch[0])
        return self.lam * distillation_loss(outputs, old, heads, self.temperature)
