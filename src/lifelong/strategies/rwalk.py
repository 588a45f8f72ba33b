"""Riemannian walk (RWalk), without its exemplar memory.

Chaudhry, Dokania, Ajanthan and Torr, "Riemannian Walk for Incremental Learning: Understanding
Forgetting and Intransigence", ECCV 2018, §4:
- §4.1 EWC++: a moving-average diagonal Fisher, F ← α F_interval + (1 − α) F, with F_interval
  the mean squared mini-batch gradient of the task loss over the last ``interval`` steps; it is
  never reset between tasks.
- §4.2 path score (Eq. 10): over each interval [t₁, t₂] of ``interval`` steps, the loss drop
  the weight caused, Σ −g Δθ, normalised by the KL change it predicts over the interval,
  ½ F (θ(t₂) − θ(t₁))² + ε; negative interval scores are set to 0, the task's score s_t is their
  sum, and to keep the penalty from growing stiffer with every task s ← (s + s_t) / 2.
- §4.3 objective: L_k(θ) + λ Σ_i (F_i + s_i)(θ_i − θ*_i)², anchored at the latest weights
  (merge "latest": Ω = F + s already carries the history).
Intervals follow the authors' code (the Fisher and the score are updated every 50 iterations,
α = 0.9 on the newest interval); the normaliser of an interval uses the Fisher before that
interval is folded in, and a task's last, shorter interval is counted too. ``interval=1``
scores every step. g is the task loss's gradient without the penalty's (see ``si``); the
paper's exemplar memory is not part of this strategy (combine with replay for that).

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), alpha (α, the
newest interval's weight in the Fisher average), interval (steps per interval), epsilon (ε,
default 0.1 as the course's damping), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count, check_number
from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, fits, trainable
from .steps import PathIntegral


@STRATEGIES.register("rwalk", "Riemannian walk: moving-average Fisher + path score (Chaudhry 2018)")
class RWalk(QuadraticPenalty):
    """Ω = F (moving average over all training) + s (KL-normalised path score, averaged)."""

    search_space = {"lam": (1e2, 1e3, 1e4, 1e5)}

    default_merge = "latest"

    def __init__(self, lam: float = 10000.0, alpha: float = 0.9, interval: int = 50,
                 epsilon: float = 0.1, merge: str | None = None, gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        self.alpha = check_number("alpha", alpha, 0.0, inclusive=False, high=1.0)
        self.interval = check_count("interval", interval)
        self.epsilon = check_number("epsilon", epsilon, 0.0, inclusive=False)
        self.fisher_: Params = {}
        self.score_: Params = {}
        self.task_score_: Params = {}
        self._integral = PathIntegral()
        self._path: Params = {}
        self._squares: Params = {}
        self._mark: Params = {}
        self._reset_interval({})

    def _reset_interval(self, params: Params) -> None:
        """Start an interval: zero its path sum and squared-gradient sum, mark θ(t₁) (in the
        buffers of the last interval where the shapes still fit)."""
        self._count = 0
        path, squares, mark = self._path, self._squares, self._mark
        self._path, self._squares, self._mark = {}, {}, {}
        for n, p in params.items():
            if n in mark and fits(mark[n], p):
                self._path[n], self._squares[n] = path[n].zero_(), squares[n].zero_()
                self._mark[n] = mark[n].copy_(p.detach())
            else:
                self._path[n], self._squares[n] = torch.zeros_like(p), torch.zeros_like(p)
                self._mark[n] = p.detach().clone()

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        params = trainable(model)
        self.task_score_ = {n: torch.zeros_like(p) for n, p in params.items()}
        self._reset_interval(params)
        return model

    def on_task_gradient(self, name: str, param: torch.Tensor) -> None:
        path, squares = self._path.get(name), self._squares.get(name)
        if path is None or path.shape != param.shape:
            return
        self._integral.before_step(name, param, path)  # Σ −g·Δθ over the interval (first half)
        squares.addcmul_(param.grad, param.grad)  # Σ g² over the interval

    def after_step(self, model: nn.Module) -> None:
        self._integral.after_step()  # Σ −g·Δθ over the interval (second half)
        self._count += 1
        if self._count >= self.interval:
            self._close_interval(model)

    def _close_interval(self, model: nn.Module) -> None:
        """Eq. 10 over the interval just ended, then the EWC++ update of F with its mean g²."""
        if self._count == 0:
            return
        params = trainable(model)
        for n, path in self._path.items():
            p = params.get(n)
            if p is None or p.shape != path.shape:
                continue
            mean_square = self._squares[n].div_(self._count)
            fisher = self.fisher_.get(n)
            if fisher is None or fisher.shape != p.shape:
                fisher = self.fisher_[n] = mean_square.clone()
            moved = p.detach() - self._mark[n]
            normaliser = moved.square_().mul_(fisher).mul_(0.5).add_(self.epsilon)
            self.task_score_[n].add_(path.div_(normaliser).clamp_min_(0))
            fisher.mul_(1 - self.alpha).add_(mean_square, alpha=self.alpha)
        self._reset_interval(params)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        self._close_interval(model)  # the task's last, shorter interval
        omega = {}
        for n, p in trainable(model).items():
            new = self.task_score_.get(n, torch.zeros_like(p))
            old = self.score_.get(n)
            self.score_[n] = new if old is None or old.shape != new.shape else (old + new) / 2
            fisher = self.fisher_.get(n, torch.zeros_like(p))
            omega[n] = (fisher + self.score_[n]) if fisher.shape == p.shape else self.score_[n]
        return omega
