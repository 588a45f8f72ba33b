"""Sliced Cramér preservation (SCP).

Kolouri, Ketz, Soltoggio and Pilly, "Sliced Cramér synaptic consolidation for preserving deeply
learned representations", ICLR 2020, §3: the mean network output over the task's data
φ̄(θ) = 1/N Σ_n φ(x_n; θ), L random unit directions ξ_l, and the importance
Γ_i = 1/L Σ_l (∂⟨ξ_l, φ̄⟩/∂θ_i)² — one gradient per slice, squared, then averaged; the
penalty is λ Σ_i Γ_i (θ_i − θ*_i)², Γ summed over tasks (merge "sum").

Known deviation of the course's sample code: it averages the L projections before a single
backward pass, i.e. squares the gradient of the *mean* projection. We follow the paper.
Vectorised over slices: with J the (d × P) Jacobian of φ̄ (d backward passes, d = the number
of outputs, e.g. 10 — a loop over outputs, measured faster than ``is_grads_batched`` here) and
Ξ the (L × d) directions, Γ = 1/L Σ_l (ξ_lᵀJ)² = column-wise Jᵀ(ΞᵀΞ/L)J, so the L per-slice
gradients are never materialised and L costs nothing. The d backward passes dominate (about d
times a gradient over the same examples), so by default φ̄ and its Jacobian use a seeded subset
of 1,000 of the task's examples (``samples=None``: all of them). The directions are drawn from
a generator seeded by the run's seed and the task id, so runs (and resumed runs) repeat exactly.

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), slices (L),
samples (examples used, default 1,000; None: all the task's training data), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, trainable

CHUNK = 1000
"""Examples per forward pass (memory bound); the Jacobian is summed over chunks."""


@STRATEGIES.register("scp", "sliced Cramer preservation: sliced mean-output importance (Kolouri 2020)")
class SCP(QuadraticPenalty):
    """Ω = mean over random slices ξ of (∂⟨ξ, mean output⟩/∂θ)²."""

    search_space = {"lam": (3e2, 3e3, 3e4)}

    default_merge = "sum"

    def __init__(self, lam: float = 3000.0, slices: int = 100, samples: int | None = 1000,
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
        jac: list[torch.Tensor] | None = None  # rows: ∂(mean output)_k/∂θ, k = 1..d
        for start in range(0, x.shape[0], CHUNK):
            part = self.task_outputs(model, x[start:start + CHUNK], t[start:start + CHUNK])
            mean_part = part.sum(0) / x.shape[0]
            rows = [_flat_grad(mean_part[k], params) for k in range(mean_part.shape[0])]
            part_jac = torch.stack(rows)
            jac = part_jac if jac is None else jac + part_jac
        assert jac is not None
        xi = self.directions(jac.shape[0], task).to(device=jac.device, dtype=jac.dtype)
        metric = xi.T @ xi / self.slices  # (d, d) = ΞᵀΞ / L
        omega_flat = ((metric @ jac) * jac).sum(0)
        omega, offset = {}, 0
        for n, p in params.items():
            omega[n] = omega_flat[offset:offset + p.numel()].reshape(p.shape)
            offset += p.numel()
        return omega


def _flat_grad(output: torch.Tensor, params: Params) -> torch.Tensor:
    grads = torch.autograd.grad(output, list(params.values()), retain_graph=True,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for p, g in zip(params.values(), grads)])
