"""A small convolutional network for 28×28 (or any small) images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_count, check_counts
from ..errors import LifelongError
from ..registry import MODELS


class SmallCNN(nn.Module):
    """Two conv(3×3)–ReLU–maxpool blocks, then a hidden linear layer and the output layer."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        super().__init__()
        input_shape = check_counts("input_shape", input_shape, prefix="cnn")
        if len(input_shape) != 3:
            raise LifelongError(f"cnn needs image inputs (c, h, w), got shape {tuple(input_shape)}")
        check_count("num_classes", num_classes, prefix="cnn")
        channels = check_counts("channels", channels, prefix="cnn")
        check_count("hidden", hidden, prefix="cnn")
        c, h, w = input_shape
        fit = min(h, w).bit_length() - 1  # each block halves the image: 2**blocks pixels a side
        if len(channels) > fit:
            raise LifelongError(f"cnn channels {channels} make {len(channels)} conv-pool blocks, but a "
                                f"{h}×{w} image has room for at most {fit} (each block halves it)")
        blocks: list[nn.Module] = []
        for out in channels:
            blocks += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = out, h // 2, w // 2
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("cnn", "small CNN: two conv-pool blocks (32, 64 channels) and a 256-unit layer")
def make_cnn(input_shape, num_classes, channels: Sequence[int] = (32, 64), hidden: int = 256):
    return SmallCNN(input_shape, num_classes, channels, hidden)
