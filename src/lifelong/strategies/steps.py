"""What one optimiser step did to each weight: the task loss's gradient g and the move Δθ.

SI and RWalk integrate −g·Δθ along training. ``StepTracker.capture`` runs in the penalty's
``on_task_gradient``, *before* it adds its gradient, and keeps a reference to the tensor autograd
wrote into ``.grad``: g is the task loss's gradient alone, with no second backward pass, no
subtraction and no copy — the penalty, told by ``keeps_task_gradient``, writes the total
gradient into a buffer of its own that becomes ``.grad`` (optimisers do not edit ``.grad`` in
place). θ before the step is copied into a buffer reused from step to step; ``moves`` runs in
``after_step``. A step costs one copy and one subtraction over the weights.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .importance import buffer_like, fits, trainable


class StepTracker:
    """Per parameter: g (the task gradient, by reference) and θ before the step (a copy)."""

    def __init__(self) -> None:
        self._grad: dict[str, torch.Tensor] = {}  # this step's captured parameters
        self._before: dict[str, torch.Tensor] = {}

    def capture(self, name: str, param: torch.Tensor) -> None:
        """From ``on_task_gradient``, before the penalty's gradient is added: keep g, copy θ."""
        before = self._before.get(name)
        if not fits(before, param):
            before = self._before[name] = buffer_like(param)
        before.copy_(param.detach())
        self._grad[name] = param.grad

    def moves(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """In ``after_step``: (name, g, θ_before − θ_after) for every captured parameter.

        The third tensor is −Δθ, so −g·Δθ is ``g * back``; it is a buffer overwritten by the
        next step, use it before then.
        """
        params = trainable(model)
        grads, self._grad = self._grad, {}
        for n, g in grads.items():
            p = params.get(n)
            if p is not None and p.shape == self._before[n].shape:
                yield n, g, self._before[n].sub_(p.detach())
