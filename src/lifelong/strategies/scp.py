"""Sliced Cramér preservation (SCP).

Kolouri, Ketz, Soltoggio and Pilly, "Sliced Cramér synaptic consolidation for preserving deeply
learned representations", ICLR 2020, §3: the mean network output over the task's data
φ̄(θ) = 1/N Σ_n φ(x_n; θ), L random unit directions ξ_l, and the importance
Γ_i = 1/L Σ_l (∂⟨ξ_l, φ̄⟩/∂θ_i)² — one gradient per slice, squared, then averaged; the
penalty is λ Σ_i Γ_i (θ_i − θ*_i)², Γ summed over tasks (merge "sum").

Known deviation of the course's sample code: it averages the L projections before a single
backward pass, i.e. squares the gradient of the *mean* projection. We follow the paper.
Vectorised: with J the (d × P) Jacobian of φ̄ (one batched backward over the d outputs) and
Ξ the (L × d) directions, Γ = 1/L Σ_l (ξ_lᵀJ)² = column-wise Jᵀ(ΞᵀΞ/L)J — the per-slice
gradients are never materialised. The directions are drawn from a generator seeded by the
run's seed and the task id, so runs (and resumed runs) repeat exactly.

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), slices (L),
samples (examples used, None: all the task's training data), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, check_count, trainable


@STRATEGIES.register("scp", "sliced Cramer preservation: sliced mean-output importance (Kolouri 2020)")
class SCP(QuadraticPenalty):
    """Ω = mean over random slices ξ of (∂⟨ξ, mean output⟩/∂θ)²."""

    name = "scp"
    default_merge = "sum"

    def __init__(self, lam: float = 3000.0, slices: int = 100, samples: int | None = None,
                 merge: str | None = None, gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        self.slices = check_count("slices", slices)
        self.samples = check_count("samples", samples, allow_none=True)

    def directions(self, dim: int, task: Task) -> torch.Tensor:
        """(slices, dim) random unit vectors, seeded by the run's seed and the task id."""
        gen = torch.Generator().manual_seed(self.seed_ * 15485863 + task.id)
        xi = torch.randn(self.slices, dim, generator=gen)
        return xi / xi.norm(dim=1, keepdim=True)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        x, _, t = self.estimation_data(task, self.samples)
        params = trainable(model)
        mean_output = self.task_outputs(model, x, t).mean(0)
        dim = mean_output.shape[0]
        eye = torch.eye(dim, device=mean_output.device, dtype=mean_output.dtype)
        jac = torch.autograd.grad(mean_output, list(params.values()), grad_outputs=eye,
                                  is_grads_batched=True, allow_unused=True)
        xi = self.directions(dim, task).to(mean_output.device)
        metric = xi.T @ xi / self.slices  # (d, d) = ΞᵀΞ / L
        omega = {}
        for (n, p), j in zip(params.items(), jac):
            if j is None:
                omega[n] = torch.zeros_like(p)
                continue
            flat = j.reshape(dim, -1)
            omega[n] = ((metric @ flat) * flat).sum(0).reshape(p.shape)
        return omega
