"""Synaptic intelligence (SI).

Zenke, Poole and Ganguli, "Continual learning through synaptic intelligence", ICML 2017.
Along training on task μ each weight accumulates its contribution to the drop of the loss,
ω_k^μ = −∫ g_k(θ(t)) θ'_k(t) dt ≈ Σ_steps −g_k Δθ_k (the per-parameter share of the path
integral of the gradient, §2; a sum over optimiser steps); after the task,
Ω_k^μ = Σ_{ν<μ} ω_k^ν / ((Δ_k^ν)² + ξ) (Eq. 5) with Δ_k^ν the weight's total change over
task ν, and the loss is L_μ + c Σ_k Ω_k^μ (θ̃_k − θ_k)² (Eq. 4; our λ is the paper's c).
Merge "sum" (Eq. 5's sum over tasks).

Which gradient: g is the gradient of the task loss alone, without the penalty's own gradient
(the paper's g, as in its authors' code): ``.grad`` is read before the penalty adds its own
gradient 2λΩ(θ − θ*) (``steps.PathIntegral``), so no second backward pass is needed. Each task's
contribution ω/(Δ² + ξ) is clamped at 0, so Ω ≥ 0 (a negative Ω would reward drifting).

Hyper-parameters: lam (c, default from the documented search on rotated MNIST), xi (ξ, the
damping, default 0.1 as the course), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_number
from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, trainable
from .steps import PathIntegral


@STRATEGIES.register("si", "synaptic intelligence: path-integral importance (Zenke 2017)")
class SI(QuadraticPenalty):
    """Ω += max(0, ω / (Δθ² + ξ)) with ω the path integral of −g·dθ over the task."""

    search_space = {"lam": (1e2, 1e3, 1e4, 1e5)}

    default_merge = "sum"

    def __init__(self, lam: float = 10000.0, xi: float = 0.1, merge: str | None = None,
                 gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        self.xi = check_number("xi", xi, 0.0, inclusive=False)
        self.start_: Params = {}
        self.path_: Params = {}
        self._integral = PathIntegral()

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        params = trainable(model)
        self.start_ = {n: p.detach().clone() for n, p in params.items()}
        self.path_ = {n: torch.zeros_like(p) for n, p in params.items()}
        return model

    def on_task_gradient(self, name: str, param: torch.Tensor) -> None:
        path = self.path_.get(name)
        if path is not None and path.shape == param.shape:
            self._integral.before_step(name, param, path)  # the task gradient, before the penalty's

    def after_step(self, model: nn.Module) -> None:
        self._integral.after_step()  # ω += −g·Δθ

    def estimate(self, model: nn.Module, task: Task) -> Params:
        omega = {}
        for n, p in trainable(model).items():
            if n not in self.path_ or self.path_[n].shape != p.shape:
                omega[n] = torch.zeros_like(p)
                continue
            change = p.detach() - self.start_[n]
            omega[n] = (self.path_[n] / (change.pow(2) + self.xi)).clamp_min(0)
        return omega
