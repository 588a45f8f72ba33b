"""Running a model in eval mode for a moment, and giving it back in the mode it was in; running it
without changing its buffers (BatchNorm's running statistics); the outputs of an earlier copy of
its weights (the previous model that LwF, iCaRL, BiC and generative replay distil or ask).

The rule every strategy follows with BatchNorm: a *training* forward (the loop's, a replayed
batch's) runs in training mode and updates the running statistics; a *statistics* computation
(importances, GEM's and A-GEM's memory gradients, a teacher's outputs, exemplar features) leaves
them as they were — in eval mode (``eval_mode``) where the method's paper or code computes it as
at test time, in training mode under ``statistics_kept`` where it computes it as a training step
(GEM and A-GEM's memory gradients, whose reference code runs the memories in training mode)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` — BatchNorm's running statistics and no Dropout inside; every
    submodule's own mode (training or not: a BatchNorm the user keeps in eval mode stays so)
    restored after, also when the block raises."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def statistics_kept(model: nn.Module) -> Iterator[nn.Module]:
    """``with statistics_kept(model):`` — forwards inside may normalise with their batch's
    statistics (training mode), but the model's buffers (BatchNorm's running mean, variance and
    batch count) are put back as they were after the block, also when it raises."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


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
