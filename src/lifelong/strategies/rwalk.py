"""Riemannian walk (RWalk), without its exemplar memory.

Chaudhry, Dokania, Ajanthan and Torr, "Riemannian Walk for Incremental Learning: Understanding
Forgetting and Intransigence", ECCV 2018, §4:
- §4.1 EWC++: a moving-average diagonal Fisher updated during training,
  F ← α F_batch + (1 − α) F, with F_batch the squared mini-batch gradient of the task loss;
  it is never reset between tasks.
- §4.2 path score: per step, the loss change −g·Δθ a weight caused, normalised by the change
  of the KL divergence it predicts, s += −g Δθ / (½ F Δθ² + ε); negative scores are set to 0
  and, to keep the penalty from growing stiffer with every task, the score of a new task is
  averaged with the previous one, s ← (s + s_t) / 2.
- §4.3 objective: L_k(θ) + λ Σ_i (F_i + s_i)(θ_i − θ*_i)², anchored at the latest weights
  (merge "latest": Ω = F + s already carries the history).
g is the task loss's gradient without the penalty's (see ``si``); the paper's exemplar memory
is not part of this strategy (combine with replay for that).

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), alpha (α, the
weight of the newest mini-batch in the Fisher average, default 0.1 — our choice), epsilon (ε,
default 0.1 as the course's damping), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, check_number, trainable


@STRATEGIES.register("rwalk", "Riemannian walk: moving-average Fisher + path score (Chaudhry 2018)")
class RWalk(QuadraticPenalty):
    """Ω = F (moving average over all training) + s (KL-normalised path score, averaged)."""

    name = "rwalk"
    default_merge = "latest"

    def __init__(self, lam: float = 10000.0, alpha: float = 0.1, epsilon: float = 0.1,
                 merge: str | None = None, gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        self.alpha = check_number("alpha", alpha, 0.0, inclusive=False, high=1.0)
        self.epsilon = check_number("epsilon", epsilon, 0.0, inclusive=False)
        self.fisher_: Params = {}
        self.score_: Params = {}
        self.task_score_: Params = {}

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        self.task_score_ = {n: torch.zeros_like(p) for n, p in trainable(model).items()}
        return model

    def after_backward(self, model: nn.Module) -> None:
        self.capture_step(model)

    def after_step(self, model: nn.Module) -> None:
        for n, g, delta in self.step_changes(model):
            old = self.fisher_.get(n)
            if old is None or old.shape != g.shape:
                fisher = self.fisher_[n] = g.square()
            else:  # F ← α g² + (1 − α) F, in place
                fisher = old.mul_(1 - self.alpha).addcmul_(g, g, value=self.alpha)
            if n in self.task_score_:  # s −= gΔ / (½FΔ² + ε)
                normaliser = delta.square().mul_(fisher).mul_(0.5).add_(self.epsilon)
                self.task_score_[n].addcdiv_(g * delta, normaliser, value=-1.0)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        omega = {}
        for n, p in trainable(model).items():
            new = self.task_score_.get(n, torch.zeros_like(p)).clamp_min(0)
            old = self.score_.get(n)
            self.score_[n] = new if old is None or old.shape != new.shape else (old + new) / 2
            fisher = self.fisher_.get(n, torch.zeros_like(p))
            omega[n] = (fisher + self.score_[n]) if fisher.shape == p.shape else self.score_[n]
        return omega
