"""Memory aware synapses (MAS).

Aljundi et al., "Memory Aware Synapses: Learning what (not) to forget", ECCV 2018:
Ω_ij = 1/N Σ_k ‖g_ij(x_k)‖ (Eq. 2) with g_ij(x_k) = ∂ ℓ2²(F(x_k; θ)) / ∂θ_ij, the gradient
of the squared ℓ2 norm of the network's output (the version the paper uses in its
experiments); the objective is L_n(θ) + λ Σ_ij Ω_ij (θ_ij − θ*_ij)² (Eq. 3), and Ω is
accumulated over tasks (merge "sum").
No labels are needed. The absolute value is taken per example, as in the paper (not of a
mini-batch gradient); it is exact and vectorised (|g|ᵀ|x| per linear layer, see
``gradient_stats.per_sample_gradient_stat``). Multi-head streams use the task's own outputs.

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), samples
(examples used, None: all the task's training data), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..registry import STRATEGIES
from .gradient_stats import per_sample_gradient_stat
from .importance import Params, QuadraticPenalty


@STRATEGIES.register("mas", "memory aware synapses: output-sensitivity importance (Aljundi 2018)")
class MAS(QuadraticPenalty):
    """Ω = mean over examples of |∂‖f(x)‖²/∂θ|."""

    search_space = {"lam": (0.1, 1.0, 10.0, 100.0)}

    default_merge = "sum"

    def __init__(self, lam: float = 1.0, samples: int | None = None, merge: str | None = None,
                 gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)
        self.samples = check_count("samples", samples, allow_none=True)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        x, y, t = self.estimation_data(task, self.samples)

        def squared_norm(xb: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return self.task_outputs(model, xb, tb).pow(2).sum(1)

        total = per_sample_gradient_stat(model, squared_norm, (x, y, t), "abs")
        return {n: s / x.shape[0] for n, s in total.items()}
