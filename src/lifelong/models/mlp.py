"""The homework's multilayer perceptron."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_count, check_counts
from ..registry import MODELS


class MLP(nn.Module):
    """Flatten → [Linear → ReLU] × len(hidden) → Linear. The homework: 784-1024-512-256-10."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        hidden: Sequence[int] = (1024, 512, 256),
    ) -> None:
        super().__init__()
        input_shape = check_counts("input_shape", input_shape, allow_empty=False, prefix="mlp")
        check_count("num_classes", num_classes, prefix="mlp")
        sizes = [math.prod(input_shape), *check_counts("hidden", hidden, prefix="mlp")]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@MODELS.register("mlp", "multilayer perceptron, hidden 1024-512-256 by default (the homework)")
def make_mlp(input_shape, num_classes, hidden: Sequence[int] = (1024, 512, 256)) -> MLP:
    return MLP(input_shape, num_classes, hidden)
