"""Elastic weight consolidation (EWC).

Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
Eq. 3: L(θ) = L_B(θ) + Σ_i λ/2 F_i (θ_i − θ*_A,i)², F the diagonal of the Fisher information
at θ*_A; with several tasks, one such penalty per old task (the paper's text after Eq. 3).
Our penalty is λ Σ F (θ − θ*)² (no ½; see ``importance``).

Hyper-parameters:
  lam          penalty strength λ (default from the documented search on rotated MNIST).
  fisher       "true": labels sampled from the model's predictive distribution — the Fisher's
               definition, the default; "empirical": the true labels of the data.
  per_sample   True (default, the paper): F = mean over examples of the squared per-example
               log-likelihood gradient, vectorised; False: mean over mini-batches of the squared
               mini-batch gradient (cheaper in memory, smaller in scale: λ must be larger).
  samples      examples used for the estimate (None: all of the task's training data).
  batch_size   mini-batch size of the batched variant.
  merge        "separate" (default, the paper: a penalty per task) or "sum" (one summed F),
               or any rule of ``importance.MERGE_RULES``.
The Fisher uses the task-masked logits (``Strategy.logits``), so multi-head streams work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count, check_flag
from ..data.streams import Task
from ..registry import STRATEGIES
from .gradient_stats import per_sample_gradient_stat
from .importance import Params, QuadraticPenalty, trainable

FISHER_KINDS = ("true", "empirical")


@STRATEGIES.register("ewc", "elastic weight consolidation: diagonal Fisher penalty (Kirkpatrick 2017)")
class EWC(QuadraticPenalty):
    """Ω = the diagonal Fisher information of the task just learned."""

    search_space = {"lam": (1e2, 1e3, 1e4, 1e5)}

    default_merge = "separate"

    def __init__(self, lam: float = 1000.0, fisher: str = "true", per_sample: bool = True,
                 samples: int | None = None, batch_size: int = 128, merge: str | None = None,
                 gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        check_flag("per_sample", per_sample)
        self.fisher = check_choice("fisher", fisher, FISHER_KINDS)
        self.per_sample = per_sample
        self.samples = check_count("samples", samples, allow_none=True)
        self.batch_size = check_count("batch_size", batch_size)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        x, y, t = self.estimation_data(task, self.samples)
        gen = torch.Generator().manual_seed(self.seed_ * 104729 + task.id)

        def draw(logits: torch.Tensor) -> torch.Tensor:
            """Labels sampled from the model's predictive distribution (the true Fisher)."""
            probs = torch.softmax(logits.detach(), dim=1)
            return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(logits.device)

        def nll(xb: torch.Tensor, yb: torch.Tensor | None, tb: torch.Tensor) -> torch.Tensor:
            logits = self.logits(model, xb, tb)
            return F.cross_entropy(logits, draw(logits) if yb is None else yb, reduction="none")

        def drawn(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return draw(self.logits(model, xb, tb))

        true = self.fisher == "true"
        if self.per_sample:  # true Fisher: labels drawn from the same forward pass as the loss
            total = per_sample_gradient_stat(model, nll, (x, y, t), "square",
                                             draw_labels=drawn if true else None)
            return {n: s / x.shape[0] for n, s in total.items()}
        if true:
            y = drawn(x, t)
        params = trainable(model)
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        batches = 0
        for start in range(0, x.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            grads = torch.autograd.grad(nll(x[sl], y[sl], t[sl]).mean(), list(params.values()),
                                        allow_unused=True)
            for n, g in zip(params, grads):
                if g is not None:
                    fisher[n] += g.pow(2)
            batches += 1
        return {n: f / batches for n, f in fisher.items()}
