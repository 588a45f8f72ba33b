"""The path integral Σ_steps −g·Δθ of SI and RWalk, with g the task loss's gradient.

Each step adds −g·Δθ = g·θ_before − g·θ_after to a per-weight sum, in two halves:
``before_step`` runs from the penalty's ``on_task_gradient`` — after the backward pass, *before*
any penalty adds its own gradient — adds g·θ_before and keeps a reference to the tensor autograd
wrote into ``.grad``; ``after_step`` adds −g·θ_after once the optimiser has moved θ. So there is
no second backward pass, no subtraction of the penalty's gradient, no copy of g and no copy of
θ: two in-place multiply-adds over the weights per step. Penalties write the total gradient
into a buffer of their own that becomes ``.grad`` (``base.Penalty``), and optimisers do not edit
``.grad`` in place, so g stays the task gradient.

Rounding: the two halves are of size |g θ| where their sum is of size |g Δθ|, so each step's
term carries an error near 10⁻⁷ |θ| / |Δθ| of itself (10⁻⁴ for a weight of 0.05 moved by
5·10⁻⁵), random in sign, far below the step-to-step noise of −g·Δθ.
"""

from __future__ import annotations

import torch


class PathIntegral:
    """Adds −g·Δθ of every optimiser step to the sums the caller passes in."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # (θ, g, sum)

    def before_step(self, name: str, param: torch.Tensor, total: torch.Tensor) -> None:
        """While ``param.grad`` is the task gradient g: total += g·θ_before, and keep g.

        A half left open by a loop that skipped ``after_step`` is closed first with the current
        θ — the weights after the step it missed, or unchanged if there was no step (adds 0)."""
        if name in self._pending:
            _, grad, open_total = self._pending.pop(name)
            open_total.addcmul_(grad, param.detach(), value=-1.0)
        total.addcmul_(param.grad, param.detach())
        self._pending[name] = (param, param.grad, total)

    def after_step(self) -> None:
        """After the optimiser step: total −= g·θ_after for every weight of ``before_step`` (the
        parameters it was given: no walk over the model)."""
        pending, self._pending = self._pending, {}
        for param, grad, total in pending.values():
            total.addcmul_(grad, param.detach(), value=-1.0)
