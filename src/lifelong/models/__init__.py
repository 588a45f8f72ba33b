"""Models: the homework MLP, a small CNN, ResNet-18s, multi-head masking; any user ``nn.Module`` works.

A new model is a new file in this folder with a factory ``(input_shape, num_classes, **options)``
decorated ``@MODELS.register("name", "one line")``: ``make_model`` finds it (the registry imports
the folder). ``MLP``, ``SmallCNN`` and ``ResNet18`` are re-exported here for convenience only.
"""

from __future__ import annotations

from torch import nn

from ..errors import LifelongError
from ..registry import MODELS
from .cnn import SmallCNN
from .heads import mask_logits
from .mlp import MLP
from .resnet import ResNet18


def make_model(name: str, input_shape, num_classes: int, **options) -> nn.Module:
    """Build a registered model for a stream's input shape and number of classes."""
    factory = MODELS.get(name)
    MODELS.check_options(name, options)
    try:
        return factory(input_shape, num_classes, **options)
    except TypeError as exc:
        raise LifelongError(f"bad option for model {name!r}: {exc}") from None


__all__ = ["MLP", "ResNet18", "SmallCNN", "make_model", "mask_logits"]
