"""One quadratic penalty for every importance-based method: λ Σ_i Ω_i (θ_i − θ*_i)².

L2, EWC, online EWC, MAS, SI, RWalk and SCP differ only in how the importance Ω of a finished
task is estimated (each method's ``estimate``) and in how the Ω of several tasks are merged:

============  ======================================================================================
``separate``  one penalty per task, λ Σ_t Σ_i Ω_t,i (θ_i − θ*_t,i)² (EWC's paper)
``sum``       Ω ← Ω + Ω_t, anchor θ* = the weights after the latest task (SI, MAS)
``decay``     Ω ← γ Ω + Ω_t, latest anchor (online EWC)
``mean``      Ω ← ((k − 1) Ω + Ω_t) / k after the k-th task, latest anchor
``latest``    Ω ← Ω_t, latest anchor: the estimator carries its own history (RWalk, L2)
============  ======================================================================================

``separate`` is stored per task but evaluated as one quadratic: Σ_t Ω_t (θ − a_t)² equals
Ω (θ − ā)² + c with Ω = Σ_t Ω_t, ā = Σ_t Ω_t a_t / Ω and a constant c, so every rule costs the
same per step. Parameters are name→tensor dicts of the trainable parameters only, so heads and
columns may grow: a parameter absent from Ω (or whose shape changed) is not penalised.
Note the penalty has no ½ (EWC's paper writes λ/2): a paper's λ is twice ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.streams import Task
from ..errors import LifelongError
from .base import Batch, Strategy

Params = dict[str, torch.Tensor]
MERGE_RULES = ("separate", "sum", "decay", "mean", "latest")

HYPERPARAMETER_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "course": {  # the course's sample code; our formulas differ in places (docs/regularisation.md)
        "ewc": {"lam": 100.0},
        "mas": {"lam": 0.1},
        "si": {"lam": 1.0, "xi": 0.1},
        "rwalk": {"lam": 100.0},
        "scp": {"lam": 100.0, "slices": 100},
    },
    "tuned": {  # the defaults: reduced search on rotated MNIST (docs/regularisation.md)
        "l2": {"lam": 0.3},
        "ewc": {"lam": 1000.0},
        "online-ewc": {"lam": 1000.0},
        "mas": {"lam": 1.0},
        "si": {"lam": 10000.0, "xi": 0.1},
        "rwalk": {"lam": 10000.0},
        "scp": {"lam": 3000.0, "slices": 100},
    },
}


def hyperparameter_preset(preset: str, strategy: str) -> dict[str, Any]:
    """The hyper-parameters a named preset gives ``strategy`` ({} where it names none)."""
    if preset not in HYPERPARAMETER_PRESETS:
        known = ", ".join(HYPERPARAMETER_PRESETS)
        raise LifelongError(f"unknown hyper-parameter preset {preset!r}; known: {known}")
    return dict(HYPERPARAMETER_PRESETS[preset].get(strategy, {}))


def check_number(name: str, value: Any, low: float = 0.0, inclusive: bool = True,
                 high: float | None = None) -> float:
    """``value`` as a float if it lies in [low, high] (or (low, high]); else a LifelongError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if inclusive else value > low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high else "")
        raise LifelongError(f"hyper-parameter {name} must be a number {bound}, got {value!r}")
    return float(value)


def check_count(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " (or None for all)" if allow_none else ""
        raise LifelongError(f"hyper-parameter {name} must be a positive integer{extra}, got {value!r}")
    return value


def trainable(model: nn.Module) -> Params:
    """The trainable parameters by name (the live tensors)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


class QuadraticPenalty(Strategy):
    """Adds λ Σ Ω (θ − θ*)² to the loss; subclasses implement ``estimate(model, task)``."""

    default_merge = "sum"

    def __init__(self, lam: float, merge: str | None = None, gamma: float = 1.0) -> None:
        merge = self.default_merge if merge is None else merge
        if merge not in MERGE_RULES:
            raise LifelongError(f"unknown merge rule {merge!r}; choose one of {', '.join(MERGE_RULES)}")
        self.lam = check_number("lam", lam)
        self.merge = merge
        self.gamma = check_number("gamma", gamma, 0.0, inclusive=False, high=1.0)
        self.omega_: Params = {}
        self.anchor_: Params = {}
        self.offset_ = 0.0
        self.task_omegas_: list[Params] = []
        self.task_anchors_: list[Params] = []
        self.tasks_merged_ = 0

    # ------------------------------------------------------------ estimator
    def estimate(self, model: nn.Module, task: Task) -> Params:
        """The importance Ω_t of every trainable parameter after training on ``task``."""
        raise NotImplementedError

    def estimation_data(self, task: Task, samples: int | None = None) -> Batch:
        """The task's training data, or a seeded subset of ``samples`` examples."""
        x, y, t = Strategy.train_data(self, task)
        if samples is not None and samples < x.shape[0]:
            gen = torch.Generator().manual_seed(self.seed_ * 7919 + task.id)
            idx = torch.randperm(x.shape[0], generator=gen)[:samples].to(x.device)
            x, y, t = x[idx], y[idx], t[idx]
        return x, y, t

    def task_outputs(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's outputs with other tasks' heads zeroed (multi-head streams)."""
        out = self.predict(model, x, t)
        if self.class_mask_ is None:
            return out
        return out * self.class_mask_.to(out.device)[t].to(out.dtype)

    # ------------------------------------------------------------ penalty
    def penalty(self, model: nn.Module) -> torch.Tensor | float:
        if not self.omega_ or self.lam == 0:
            return 0.0
        terms = [
            _WeightedSquare.apply(p, self.omega_[n], self.anchor_[n])
            for n, p in trainable(model).items()
            if n in self.omega_ and self.omega_[n].shape == p.shape
        ]
        if not terms:
            return 0.0
        return self.lam * (torch.stack(terms).sum() + self.offset_)

    def penalty_gradient(self, name: str, param: torch.Tensor) -> torch.Tensor | None:
        """∂penalty/∂θ = 2λΩ(θ − θ*) for one parameter (None where it is not penalised)."""
        omega = self.omega_.get(name)
        if omega is None or omega.shape != param.shape or self.lam == 0:
            return None
        return 2.0 * self.lam * omega * (param.detach() - self.anchor_[name])

    # ------------------------------------------------------------ path integrals (SI, RWalk)
    def capture_step(self, model: nn.Module) -> None:
        """In ``after_backward``: remember θ before the step and the gradient of the task loss
        alone (the loss's gradient minus the penalty's own, 2λΩ(θ − θ*): no extra backward)."""
        self._step_grads: Params = {}
        self._step_start: Params = {}
        for n, p in trainable(model).items():
            if p.grad is None:
                continue
            g, omega = p.grad.detach(), self.omega_.get(n)
            if omega is None or omega.shape != p.shape or self.lam == 0:
                self._step_grads[n] = g.clone()
            else:  # g − 2λΩ(θ − θ*)
                diff = p.detach() - self.anchor_[n]
                self._step_grads[n] = torch.addcmul(g, omega, diff, value=-2.0 * self.lam)
            self._step_start[n] = p.detach().clone()

    def step_changes(self, model: nn.Module):
        """In ``after_step``: (name, task-loss gradient g, update Δθ) of every moved parameter."""
        params = trainable(model)
        for n, g in getattr(self, "_step_grads", {}).items():
            if n in params and params[n].shape == g.shape:  # Δθ = −(θ_start − θ), in place
                yield n, g, self._step_start[n].sub_(params[n].detach()).neg_()
        self._step_grads, self._step_start = {}, {}

    def after_task(self, model: nn.Module, task: Task) -> None:
        was_training = model.training
        model.eval()
        try:
            omega = {n: w.detach().float().clone() for n, w in self.estimate(model, task).items()}
        finally:
            model.train(was_training)
        anchor = {n: p.detach().clone() for n, p in trainable(model).items()}
        self.merge_importance(omega, anchor)

    def merge_importance(self, omega: Params, anchor: Params) -> None:
        """Fold one task's Ω_t and anchor into the penalty by the merge rule."""
        self.tasks_merged_ += 1
        if self.merge == "separate":
            self.task_omegas_.append(omega)
            self.task_anchors_.append(anchor)
            self.omega_, self.anchor_, self.offset_ = combine_penalties(
                self.task_omegas_, self.task_anchors_
            )
            return
        k, merged = self.tasks_merged_, {}
        for name, new in omega.items():
            old = self.omega_.get(name)
            if self.merge == "latest" or old is None or old.shape != new.shape:
                merged[name] = new
            elif self.merge == "sum":
                merged[name] = old + new
            elif self.merge == "decay":
                merged[name] = self.gamma * old + new
            else:  # mean
                merged[name] = ((k - 1) * old + new) / k
        self.omega_, self.anchor_, self.offset_ = merged, anchor, 0.0


class _WeightedSquare(torch.autograd.Function):
    """Σ Ω (θ − a)² with the backward 2Ω(θ − a) saved from the forward: fewer passes over
    memory than autograd's elementwise graph (the penalty runs on every training step)."""

    @staticmethod
    def forward(ctx, param, omega, anchor):
        diff = param.detach() - anchor
        weighted = diff * omega  # Ω(θ − a)
        ctx.save_for_backward(weighted)
        return torch.dot(weighted.reshape(-1), diff.reshape(-1))

    @staticmethod
    def backward(ctx, grad_output):
        (weighted,) = ctx.saved_tensors
        return weighted * (2.0 * grad_output), None, None


def combine_penalties(omegas: list[Params], anchors: list[Params]) -> tuple[Params, Params, float]:
    """Σ_t Ω_t (θ − a_t)² written as Ω (θ − ā)² + c: returns (Ω, ā, c)."""
    latest = anchors[-1]
    omega, anchor, offset = {}, {}, 0.0
    for name, a_last in latest.items():
        pairs = [(o[name].double(), a[name].double()) for o, a in zip(omegas, anchors)
                 if name in o and o[name].shape == a_last.shape]
        if len(pairs) == 1:
            omega[name], anchor[name] = pairs[0][0].float(), a_last
            continue
        total = sum(o for o, _ in pairs)
        moment = sum(o * a for o, a in pairs)
        mean = torch.where(total > 0, moment / total.clamp_min(1e-300), a_last.double())
        offset += float(sum((o * a * a).sum() for o, a in pairs) - (total * mean * mean).sum())
        omega[name], anchor[name] = total.float(), mean.float()
    return omega, anchor, max(offset, 0.0)


# ---------------------------------------------------------------- per-sample gradient statistics
SampleLosses = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def per_sample_gradient_stat(
    model: nn.Module, sample_losses: SampleLosses, data: Batch, reduce: str = "square",
    chunk: int = 500,
) -> Params:
    """Σ_n r(∂ℓ_n/∂θ) over the examples of ``data`` for every trainable parameter, with
    r = square or abs and ``sample_losses(x, y, t)`` the (n,) per-example losses.

    For ``nn.Linear`` layers the per-example weight gradient is the outer product g_n x_nᵀ of
    the output gradient and the input, so Σ_n (g_n x_nᵀ)² = (g²)ᵀ(x²) and Σ_n |g_n x_nᵀ| =
    |g|ᵀ|x|: one matrix product per layer from a forward hook. Any other model falls back to
    ``torch.func`` (vmap of grad). Both are exact; the model must not mix examples (eval mode).
    """
    if reduce not in ("square", "abs"):
        raise ValueError(f"reduce must be 'square' or 'abs', got {reduce!r}")
    fn = torch.square if reduce == "square" else torch.abs
    params = trainable(model)
    x, y, t = data
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    linear = _linear_owners(model, params)
    size = chunk if linear is not None else max(1, chunk // 20)
    for start in range(0, x.shape[0], size):
        part = (x[start:start + size], y[start:start + size], t[start:start + size])
        stats = _linear_stats(model, linear, params, sample_losses, part, fn) if linear else None
        if stats is None:
            linear, size = None, max(1, chunk // 20)
            stats = _func_stats(model, params, sample_losses, part, fn)
        for n, s in stats.items():
            totals[n] += s
    return totals


def _linear_owners(model: nn.Module, params: Params) -> dict[str, nn.Linear] | None:
    """The Linear modules owning every trainable parameter, or None if some other module does."""
    owners = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    for pname in params:
        module, _, leaf = pname.rpartition(".")
        if module not in owners or leaf not in ("weight", "bias"):
            return None
    return owners


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
