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

from typing import Any

import torch
from torch import nn

from ..checks import check_choice, check_number
from ..data.streams import Task
from ..errors import LifelongError
from ..models.modes import eval_mode
from .base import Batch, Penalty, Strategy, TrainFunction
from .combined import member_names

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
    "fast": {  # less time for a little accuracy (docs/generative-replay.md, "Time against accuracy")
        "generative-replay": {"epoch": "task", "resample": "epoch", "generator_after_last": False,
                              "hidden": [256]},
    },
}


def hyperparameter_preset(preset: str, strategy: str) -> dict[str, Any]:
    """The hyper-parameters a named preset gives ``strategy`` ({} where it names none)."""
    if preset not in HYPERPARAMETER_PRESETS:
        known = ", ".join(HYPERPARAMETER_PRESETS)
        raise LifelongError(f"unknown hyper-parameter preset {preset!r}; known: {known}")
    if "+" in strategy:  # a combination: each member's values, as ``member.key``
        return {f"{member}.{k}": v for member in member_names(strategy)
                for k, v in hyperparameter_preset(preset, member).items()}
    return dict(HYPERPARAMETER_PRESETS[preset].get(strategy, {}))


def trainable(model: nn.Module) -> Params:
    """The trainable parameters by name (the live tensors)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def estimation_sample(strategy: Strategy, task: Task, samples: int | None = None) -> Batch:
    """The task's own training data (not a replay mix), or a subset of ``samples`` examples seeded
    by the run's seed and the task: what an importance estimate runs over."""
    x, y, t = Strategy.train_data(strategy, task)
    if samples is not None and samples < x.shape[0]:
        gen = torch.Generator().manual_seed(strategy.seed_ * 7919 + task.id)
        idx = torch.randperm(x.shape[0], generator=gen)[:samples].to(x.device)
        x, y, t = x[idx], y[idx], t[idx]
    return x, y, t


def buffer_like(param: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous scratch tensor with ``param``'s shape, dtype and device."""
    return torch.empty_like(param, memory_format=torch.contiguous_format)


def fits(buffer: torch.Tensor | None, param: torch.Tensor) -> bool:
    """Whether a scratch tensor still matches ``param`` (a grown layer or a moved model do not)."""
    return (buffer is not None and buffer.shape == param.shape and buffer.dtype == param.dtype
            and buffer.device == param.device)


class QuadraticPenalty(Strategy):
    """Adds λ Σ Ω (θ − θ*)² to the loss; subclasses implement ``estimate(model, task)``."""

    default_merge = "sum"

    def __init__(self, lam: float, merge: str | None = None, gamma: float = 1.0) -> None:
        self.lam = check_number("lam", lam)
        self.merge = check_choice("merge", self.default_merge if merge is None else merge, MERGE_RULES)
        self.gamma = check_number("gamma", gamma, 0.0, inclusive=False, high=1.0)
        self.omega_: Params = {}
        self.anchor_: Params = {}
        self.offset_ = 0.0
        self.task_omegas_: list[Params] = []
        self.task_anchors_: list[Params] = []
        self._derived: dict[str, tuple[torch.Tensor, ...]] = {}  # (Ω, θ*, √Ω, −√Ω θ*) per weight
        self._buffers: dict[str, list[torch.Tensor]] = {}  # reused every step

    # ------------------------------------------------------------ estimator
    def estimate(self, model: nn.Module, task: Task) -> Params:
        """The importance Ω_t of every trainable parameter after training on ``task``."""
        raise NotImplementedError

    def estimation_data(self, task: Task, samples: int | None = None) -> Batch:
        """The task's training data, or a seeded subset of ``samples`` examples."""
        return estimation_sample(self, task, samples)

    def task_outputs(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's outputs with other tasks' heads zeroed (multi-head streams)."""
        out = self.predict(model, x, t)
        if self.class_mask_ is None:
            return out
        return out * self.class_mask_.to(out.device)[t].to(out.dtype)

    # ------------------------------------------------------------ penalty
    def penalty(self, model: nn.Module) -> Penalty | float:
        """The value λ (Σ Ω (θ − θ*)² + c), without an autograd graph, and its gradient
        2λΩ(θ − θ*), which the loop adds after backward (``Penalty``).

        The penalty touches every weight on every step, so it is written for memory traffic.
        With r = √Ω kept beside Ω and s = −r θ*, one fused pass gives u = r θ + s = r (θ − θ*)
        into a buffer kept between steps; the value is λ u·u and the gradient 2λ r u, one more
        fused pass. (u has the rounding of r θ rather than of θ − θ*: a relative error of about
        10⁻⁷ |θ| / |θ − θ*|, far below the gradient's noise.)
        """
        if not self.omega_ or self.lam == 0:
            return 0.0
        total, pending = None, {}
        params = trainable(model)
        with torch.no_grad():
            for n, p in params.items():
                root_shift = self._root_shift(n, p)
                if root_shift is None:
                    continue
                root, shift = root_shift
                u = self._u_buffer(n, p)
                torch.addcmul(shift, root, p, out=u)  # r (θ − θ*)
                flat = u.reshape(-1)
                term = torch.dot(flat, flat)
                total = term if total is None else total + term
                pending[n] = (root, u)
        if total is None:
            return 0.0

        def write() -> None:  # .grad ← .grad + 2λ r u, written over u (u becomes .grad)
            for n, (root, u) in pending.items():
                p = params[n]
                if p.grad is None:
                    p.grad = torch.mul(root, u, out=u).mul_(2.0 * self.lam)
                else:
                    p.grad = torch.addcmul(p.grad, root, u, value=2.0 * self.lam, out=u)

        return Penalty(self.lam * (total + self.offset_), write)

    def read_gradient(self, model: nn.Module) -> None:
        """``on_task_gradient`` for every parameter with a gradient (the loss's alone); nothing
        (not even a walk over the parameters) where it is the no-op below (EWC, MAS, L2, SCP)."""
        if type(self).on_task_gradient is QuadraticPenalty.on_task_gradient:
            return
        for n, p in trainable(model).items():
            if p.grad is not None:
                self.on_task_gradient(n, p)

    def on_task_gradient(self, name: str, param: torch.Tensor) -> None:
        """Called for each parameter while ``.grad`` holds the loss's gradient alone, before any
        penalty's gradient joins it (SI and RWalk read it here). Default: nothing."""

    def _root_shift(self, name: str, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(√Ω, −√Ω θ*) for one parameter, rebuilt whenever Ω or θ* is replaced (None: not
        penalised)."""
        omega = self.omega_.get(name)
        if omega is None or omega.shape != param.shape:
            return None
        anchor = self.anchor_[name]
        cached = self._derived.get(name)
        if cached is None or cached[0] is not omega or cached[1] is not anchor:
            root = omega.to(param.dtype).sqrt()
            cached = self._derived[name] = (omega, anchor, root, -(root * anchor.to(param.dtype)))
        return cached[2], cached[3]

    def _u_buffer(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """A buffer shaped like ``param`` for u, reused from step to step (not learned state),
        and never ``param.grad`` itself: last step's u became ``.grad``, which the loop still holds
        (or zeroes in place), so two buffers alternate."""
        buffers = self._buffers.get(name)
        if buffers is None or not fits(buffers[0], param):
            buffers = self._buffers[name] = [buffer_like(param)]
        for buffer in buffers:
            if buffer is not param.grad:
                return buffer
        buffers.append(buffer_like(param))
        return buffers[-1]

    def penalty_gradient(self, name: str, param: torch.Tensor) -> torch.Tensor | None:
        """∂penalty/∂θ = 2λΩ(θ − θ*) for one parameter (None where it is not penalised)."""
        omega = self.omega_.get(name)
        if omega is None or omega.shape != param.shape or self.lam == 0:
            return None
        return 2.0 * self.lam * omega * (param.detach() - self.anchor_[name])

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        anchor = {n: p.detach().clone() for n, p in trainable(model).items()}
        with eval_mode(model):  # Ω in each parameter's own dtype (float32, or float64 models')
            omega = {n: w.detach().to(anchor[n].dtype if n in anchor else w.dtype).clone()
                     for n, w in self.estimate(model, task).items()}
        self.merge_importance(omega, anchor)

    def merge_importance(self, omega: Params, anchor: Params) -> None:
        """Fold one task's Ω_t and anchor into the penalty by the merge rule."""
        if self.merge == "separate":
            self.task_omegas_.append(omega)
            self.task_anchors_.append(anchor)
            self.omega_, self.anchor_, self.offset_ = combine_penalties(
                self.task_omegas_, self.task_anchors_
            )
            return
        k, merged = self.tasks_learned_ + 1, {}  # Ω_t of the k-th task learned
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


def combine_penalties(omegas: list[Params], anchors: list[Params]) -> tuple[Params, Params, float]:
    """Σ_t Ω_t (θ − a_t)² written as Ω (θ − ā)² + c: returns (Ω, ā, c)."""
    latest = anchors[-1]
    omega, anchor, offset = {}, {}, 0.0
    for name, a_last in latest.items():
        pairs = [(o[name].double(), a[name].double()) for o, a in zip(omegas, anchors)
                 if name in o and o[name].shape == a_last.shape]
        if len(pairs) == 1:
            omega[name], anchor[name] = pairs[0][0].to(a_last.dtype), a_last
            continue
        total = sum(o for o, _ in pairs)
        moment = sum(o * a for o, a in pairs)
        mean = torch.where(total > 0, moment / total.clamp_min(1e-300), a_last.double())
        offset += float(sum((o * a * a).sum() for o, a in pairs) - (total * mean * mean).sum())
        omega[name], anchor[name] = total.to(a_last.dtype), mean.to(a_last.dtype)
    return omega, anchor, max(offset, 0.0)
