"""What one optimiser step did to each weight: the task loss's gradient g and the move Δθ.

SI and RWalk integrate −g·Δθ along training. ``StepTracker.capture`` runs in ``after_backward``
*before* the quadratic penalty adds its gradient, so g is the task loss's gradient alone, read
straight from ``.grad`` (no second backward pass, no subtraction); ``moves`` runs in
``after_step``. Everything lives in buffers reused from step to step: a step costs three copies
and one subtraction over the weights.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .importance import buffer_like, fits, trainable


class StepTracker:
    """Per parameter: g (the task gradient) and θ before the step, in reusable buffers."""

    def __init__(self) -> None:
        self._grad: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._captured: list[str] = []

    def capture(self, model: nn.Module) -> None:
        """In ``after_backward``, before the penalty's gradient is added: copy g and θ."""
        self._captured = []
        for n, p in trainable(model).items():
            if p.grad is None:
                continue
            grad, before = self._grad.get(n), self._before.get(n)
            if not fits(grad, p):
                grad, before = self._grad[n], self._before[n] = buffer_like(p), buffer_like(p)
            grad.copy_(p.grad)
            before.copy_(p.detach())
            self._captured.append(n)

    def moves(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """In ``after_step``: (name, g, θ_before − θ_after) for every captured parameter.

        The third tensor is −Δθ, so −g·Δθ is ``g * back``; it is a buffer overwritten by the
        next step, use it before then.
        """
        params = trainable(model)
        captured, self._captured = self._captured, []
        for n in captured:
            p = params.get(n)
            if p is not None and p.shape == self._before[n].shape:
                yield n, self._grad[n], self._before[n].sub_(p.detach())
