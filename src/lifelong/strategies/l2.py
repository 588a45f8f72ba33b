"""L2: every weight equally important, Ω = 1.

The uniform-importance baseline used in the EWC paper (Kirkpatrick et al., PNAS 2017, Fig. 2A,
"L2"): λ Σ_i (θ_i − θ*_i)². Default merge "latest": the anchor is the weights after the
previous task (Ω stays 1); "sum"/"separate" make it stiffer with every task.

Hyper-parameters: lam (λ, default from the documented search on rotated MNIST), merge.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.streams import Task
from ..registry import STRATEGIES
from .importance import Params, QuadraticPenalty, trainable


@STRATEGIES.register("l2", "L2 penalty to the previous task's weights (uniform importance)")
class L2(QuadraticPenalty):
    """Ω = 1 for every trainable parameter."""

    search_space = {"lam": (0.03, 0.3, 3.0, 30.0)}

    default_merge = "latest"

    def __init__(self, lam: float = 0.3, merge: str | None = None, gamma: float = 1.0) -> None:
        super().__init__(lam, merge, gamma)

    def estimate(self, model: nn.Module, task: Task) -> Params:
        return {n: torch.ones_like(p) for n, p in trainable(model).items()}
