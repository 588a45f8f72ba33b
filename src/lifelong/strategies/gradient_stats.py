"""Sums over examples of squared or absolute per-example gradients (EWC's Fisher, MAS).

For ``nn.Linear`` layers a per-example weight gradient is an outer product, so the sum over the
examples is one matrix product per layer; any other model falls back to ``torch.func``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import Batch
from .importance import Params, trainable

SampleLosses = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def per_sample_gradient_stat(
    model: nn.Module, sample_losses: SampleLosses, data: Batch, reduce: str = "square",
    chunk: int = 500, draw_labels: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Params:
    """Σ_n r(∂ℓ_n/∂θ) over the examples of ``data`` for every trainable parameter, with
    r = square or abs and ``sample_losses(x, y, t)`` the (n,) per-example losses.

    For ``nn.Linear`` layers the per-example weight gradient is the outer product g_n x_nᵀ of
    the output gradient and the input, so Σ_n (g_n x_nᵀ)² = (g²)ᵀ(x²) and Σ_n |g_n x_nᵀ| =
    |g|ᵀ|x|: one matrix product per layer from a forward hook. Any other model falls back to
    ``torch.func`` (vmap of grad). Both are exact; the model must not mix examples (eval mode).

    Labels drawn from the model (a true Fisher): with ``draw_labels(x, t) -> y`` given, the
    Linear shortcut calls ``sample_losses(x, None, t)``, which draws them from the logits of its
    own forward pass (no extra forward); the ``torch.func`` path, which cannot draw inside
    ``vmap``, gets labels from ``draw_labels`` chunk by chunk.
    """
    if reduce not in ("square", "abs"):
        raise ValueError(f"reduce must be 'square' or 'abs', got {reduce!r}")
    fn = torch.square if reduce == "square" else torch.abs
    params = trainable(model)
    x, y, t = data
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    linear = _linear_owners(model, params)
    size = chunk if linear is not None else max(1, chunk // 20)
    start = 0
    while start < x.shape[0]:
        xs, ts = x[start:start + size], t[start:start + size]
        ys = None if draw_labels is not None else y[start:start + size]
        stats = _linear_stats(model, linear, params, sample_losses, (xs, ys, ts), fn) if linear else None
        if stats is None:  # no shortcut: per-example gradients, in smaller chunks from here on
            linear = None
            if draw_labels is not None:
                ys = draw_labels(xs, ts)
            stats = _func_stats(model, params, sample_losses, (xs, ys, ts), fn)
        for n, s in stats.items():
            totals[n] += s
        start += xs.shape[0]
        size = size if linear is not None else max(1, chunk // 20)
    return totals


def _linear_owners(model: nn.Module, params: Params) -> dict[str, nn.Linear] | None:
    """The Linear modules owning every trainable parameter, or None if some other module does."""
    owners = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    return owners if outside_linear(owners, params) is None else None


def outside_linear(owners: dict[str, nn.Linear], params: Params) -> str | None:
    """The first parameter name that is not the weight or bias of one of ``owners``; None if none."""
    for pname in params:
        module, _, leaf = pname.rpartition(".")
        if module not in owners or leaf not in ("weight", "bias"):
            return pname
    return None


def _linear_stats(model, owners, params, sample_losses, data, fn) -> Params | None:
    records: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def recorder(name: str):
        def hook(module, inputs, output):
            records.setdefault(name, []).append((inputs[0].detach(), output))
        return hook

    handles = [m.register_forward_hook(recorder(n)) for n, m in owners.items()]
    try:
        losses = sample_losses(*data)
    finally:
        for h in handles:
            h.remove()
    used = [n for n, rec in records.items() if rec[0][1].requires_grad]
    if any(len(records[n]) != 1 or records[n][0][0].dim() != 2 for n in used):
        return None  # layer reused or applied over extra dimensions: no shortcut
    grads = torch.autograd.grad(losses.sum(), [records[n][0][1] for n in used], allow_unused=True)
    stats = {}
    for name, g in zip(used, grads):
        if g is None:
            continue
        inputs = records[name][0][0]
        if f"{name}.weight" in params:
            stats[f"{name}.weight"] = fn(g).T @ fn(inputs)
        if f"{name}.bias" in params:
            stats[f"{name}.bias"] = fn(g).sum(0)
    return stats


class _Call(nn.Module):
    def __init__(self, model: nn.Module, fn: SampleLosses) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x, y, t):
        return self.fn(x, y, t)


def _func_stats(model, params, sample_losses, data, fn) -> Params:
    from torch.func import functional_call, grad, vmap

    wrapper = _Call(model, sample_losses)
    detached = {f"model.{n}": p.detach() for n, p in params.items()}

    def one(p, x, y, t):
        return functional_call(wrapper, p, (x[None], y[None], t[None])).sum()

    grads = vmap(grad(one), in_dims=(None, 0, 0, 0))(detached, *data)
    return {n: fn(grads[f"model.{n}"]).sum(0) for n in params}
