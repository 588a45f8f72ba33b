"""ResNet-18 for small images: the reduced one of the continual-learning papers, and the standard one.

``resnet18-reduced`` is the network of the GEM code (Lopez-Paz & Ranzato, "Gradient Episodic
Memory for Continual Learning", NeurIPS 2017, ``model/common.py``), reused by A-GEM (Chaudhry et
al., ICLR 2019) and DER (Buzzega et al., "Dark Experience for General Continual Learning",
NeurIPS 2020): He et al.'s ResNet-18 (CVPR 2016) for 32×32 images with BasicBlocks (two 3×3
convolutions, each followed by BatchNorm; a 1×1 convolution + BatchNorm on the shortcut where the
stride or the width changes), [2, 2, 2, 2] blocks of widths nf, 2nf, 4nf, 8nf at strides 1, 2, 2,
2, a first 3×3 convolution at stride 1 + BatchNorm + ReLU (no max-pooling), global average
pooling and one final ``nn.Linear(8·nf, classes)``, with base width nf = 20 (about 1.1M weights).
``resnet18`` is the same network with nf = 64: the usual CIFAR ResNet-18 (11.2M weights).

Convolutions have no bias (BatchNorm follows each). The input channels come from the stream; the
pooling is adaptive, so any (c, h, w) image is taken (the last stage sees ⌈h/8⌉ × ⌈w/8⌉ pixels).
The final Linear is the model's last ``nn.Linear`` module: its input (the pooled 8·nf features)
is what iCaRL reads as features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count, check_counts
from ..errors import LifelongError
from ..registry import MODELS

BLOCKS = (2, 2, 2, 2)
STRIDES = (1, 2, 2, 2)


def conv3x3(inputs: int, outputs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut is 1×1 conv + BN where
    the stride or the width changes, else the identity."""

    def __init__(self, inputs: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inputs, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != width:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, width, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images with base width ``nf`` (module docstring)."""

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, nf: int = 20,
                 name: str = "resnet18-reduced") -> None:
        super().__init__()
        input_shape = check_counts("input_shape", input_shape, prefix=name)
        if len(input_shape) != 3:
            raise LifelongError(f"{name} needs image inputs (channels, height, width), got shape "
                                f"{tuple(input_shape)}; use the mlp model for flat features")
        check_count("num_classes", num_classes, prefix=name)
        check_count("nf", nf, prefix=name)
        self.conv1 = conv3x3(input_shape[0], nf)
        self.bn1 = nn.BatchNorm2d(nf)
        layers, inputs = [], nf
        for i, (blocks, stride) in enumerate(zip(BLOCKS, STRIDES)):
            width = nf * 2**i
            layers.append(nn.Sequential(*[BasicBlock(inputs if b == 0 else width, width,
                                                     stride if b == 0 else 1) for b in range(blocks)]))
            inputs = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(inputs, num_classes)  # the last Linear: its input is the features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.pool(out).flatten(1))


@MODELS.register("resnet18-reduced", "reduced ResNet-18 of GEM, A-GEM and DER (base width nf=20, "
                                     "BatchNorm, ~1.1M weights)")
def make_resnet18_reduced(input_shape, num_classes, nf: int = 20) -> ResNet18:
    return ResNet18(input_shape, num_classes, nf, "resnet18-reduced")


@MODELS.register("resnet18", "ResNet-18 for 32×32 images (the usual CIFAR one: nf=64, 11.2M weights)")
def make_resnet18(input_shape, num_classes) -> ResNet18:
    return ResNet18(input_shape, num_classes, 64, "resnet18")
