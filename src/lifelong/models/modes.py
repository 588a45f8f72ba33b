"""Running a model in eval mode for a moment, and giving it back in the mode it was in; the
outputs of an earlier copy of its weights (the previous model that LwF, iCaRL, BiC and generative
replay distil or ask)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` — BatchNorm's running statistics and no Dropout inside; the
    model's own mode (training or not) restored after, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's parameters and buffers, by name: the model as it is now."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {name: t.detach().clone() for name, t in state.items()}


@torch.no_grad()
def outputs_of(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The outputs on ``x`` of ``model`` with ``weights`` (a ``snapshot``) in place of its own, in
    eval mode and without gradients: an earlier model answering as at test time."""
    with eval_mode(model):
        return torch.func.functional_call(model, weights, (x,))
