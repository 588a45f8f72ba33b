"""Averaged GEM (Chaudhry, Ranzato, Rohrbach & Elhoseiny, ICLR 2019, "Efficient Lifelong
Learning with A-GEM").

A-GEM relaxes GEM's one constraint per past task to a single constraint on the *average*
episodic-memory loss (eq. 10): the update must not increase the loss on a batch drawn at
random from the memory of all past tasks. With g_ref the gradient on that batch, the
projection has a closed form (eq. 11):

    g̃ = g − (gᵀ g_ref / g_refᵀ g_ref) · g_ref    when gᵀ g_ref < 0,   else g̃ = g.

So each step costs one extra forward/backward on ``ref_batch_size`` examples and no QP. The
memory is GEM's: ``memory_per_task`` examples of each finished task (drawn uniformly when the
task ends); the reference batch is drawn uniformly from all of them with the strategy's seeded
generator. The reference batch runs in training mode (batch statistics) as in the authors'
code, but leaves BatchNorm's running statistics as they were (``models.modes.statistics_kept``).
``memory_bytes`` counts the stored examples and the one reference gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..models.modes import statistics_kept
from ..registry import STRATEGIES
from .base import Strategy, TrainFunction
from .gem import flat_grad, write_grad
from .importance import trainable
from .memory import SeededRandom, append_task_memory, as_records, tensor_bytes


def agem_project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """Eq. 11: remove from ``g`` its component against ``g_ref`` (only on conflict)."""
    dot = g @ g_ref
    if dot >= 0:
        return g
    return g - (dot / (g_ref @ g_ref).clamp_min(torch.finfo(g.dtype).tiny)) * g_ref


@STRATEGIES.register("agem", "Averaged GEM: one reference gradient from a random memory batch, "
                             "projection on conflict (Chaudhry et al. 2019)")
class AGEM(SeededRandom, Strategy):
    """A-GEM: project the gradient against the gradient of a random batch of past memories."""


    def __init__(self, memory_per_task: int = 256, ref_batch_size: int = 256) -> None:
        self.memory_per_task = check_count("memory_per_task", memory_per_task)
        self.ref_batch_size = check_count("ref_batch_size", ref_batch_size)
        self.memory_: dict[str, torch.Tensor] = {}
        self.grad_bytes_ = 0

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 4002)

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        records = as_records(self.train_data(task))
        self.memory_ = append_task_memory(self.memory_, records, self.memory_per_task, self.rng())
        self.grad_bytes_ = sum(p.numel() * p.element_size() for p in trainable(model).values())

    def reference_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ref_batch_size`` examples drawn uniformly from the valid memories of all tasks."""
        x, y, t, valid = self._flat_memory()
        pick = valid[torch.randperm(valid.numel(), generator=self.rng())[: self.ref_batch_size]]
        pick = pick.to(y.device)
        return x[pick], y[pick], t[pick]

    def _flat_memory(self) -> tuple[torch.Tensor, ...]:
        """The memory as rows (x, y, t) and the indices of its valid rows, worked out once each
        time the memory is replaced (after a task, on load), not every step."""
        mask = self.memory_["valid"]
        if getattr(self, "_flat", None) is None or self._flat[0] is not mask:
            x = self.memory_["x"].reshape(-1, *self.memory_["x"].shape[2:])
            self._flat = (mask, x, self.memory_["y"].reshape(-1), self.memory_["t"].reshape(-1),
                          mask.reshape(-1).nonzero().squeeze(1).cpu())
        return self._flat[1:]

    def reference_gradient(self, model: nn.Module, params: list[torch.Tensor] | None = None
                           ) -> torch.Tensor:
        """g_ref on a reference batch, in the model's mode (training: batch statistics, as the
        authors' code) with its BatchNorm running statistics kept as they were. ``params``: the
        trainable parameters (found in ``model`` when not given)."""
        params = list(trainable(model).values()) if params is None else params
        x, y, t = self.reference_batch()
        with statistics_kept(model):
            loss = F.cross_entropy(self.logits(model, x, t), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, params)])

    def after_backward(self, model: nn.Module) -> None:
        if not self.memory_:
            return
        params = list(trainable(model).values())
        g_ref = self.reference_gradient(model, params)
        g = flat_grad(params)
        projected = agem_project(g, g_ref)
        if projected is not g:
            write_grad(params, projected)

    def memory_bytes(self) -> int:
        """Stored examples (inputs, labels, task ids, valid mask) + one reference gradient."""
        return tensor_bytes(self.memory_) + (self.grad_bytes_ if self.memory_ else 0)
