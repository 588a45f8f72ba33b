"""Gradient Episodic Memory (Lopez-Paz & Ranzato, NeurIPS 2017, "Gradient Episodic Memory for
Continual Learning").

GEM (§3 of the paper) keeps an episodic memory M_k of ``memory_per_task`` examples of every
finished task k. At every step it computes the gradient g_k of the loss on each past task's
memory and asks that the update increase none of those losses: ⟨g, g_k⟩ ≥ 0 for all k < t
(eq. 7). When the new gradient g violates a constraint, it is replaced by the closest gradient
that violates none (eq. 8), a QP in primal form

    min_z ½ zᵀz − gᵀz  s.t.  G z ≥ 0,     G = (g_1, …, g_{t−1})ᵀ,

solved through its dual — one variable per past task — (eq. 10–11)

    min_v ½ vᵀ G Gᵀ v + gᵀ Gᵀ v  s.t.  v ≥ 0,     g̃ = Gᵀ v* + g.

We solve the dual exactly with our own active-set solver (``qp.solve_nonneg_qp``).

Margin γ (``margin``): the paper says that "adding a small constant γ ≥ 0 to v*" favours
backward transfer. We implement it as the authors' code does, as the bound v ≥ γ in the dual
(i.e. v* = γ + u* with u ≥ 0), rather than adding γ after solving: the bound keeps every
constraint ⟨g̃, g_k⟩ ≥ 0 satisfied, while adding γ afterwards can break them when two past
tasks' gradients conflict with each other. ``eps`` adds eps·I to G Gᵀ as the authors' code
does (1e-3): it loosens each constraint to ⟨g̃, g_k⟩ ≥ −eps·v*_k but keeps v* bounded when the
past gradients are nearly collinear (neighbouring rotations). On the 20-task rotated-MNIST
protocol eps=1e-3 gave ACC 0.88 / BWT +0.04 and eps=0 (exact constraints) 0.82 / −0.03 (see
docs/episodic-memory.md). With eps=0 a singular G Gᵀ is handled by least squares.

Memory: the paper stores examples of each task (its code: a ring buffer of the last m seen);
we store ``m`` examples drawn uniformly from the task's training data when the task ends —
with one shuffled epoch these have the same distribution. In task-incremental streams the
memory losses use the masked (multi-head) logits of each memory's own task.

Speed: the past tasks' gradients are computed together in one batched pass
(``torch.func.vmap`` of ``grad`` over the T per-task losses); ``memory_grads="per_task"`` runs
the original one-backward-per-task loop instead (benchmarks/gem_protocol.py compares them).
A model with BatchNorm is refused in batched mode before training, with a one-line error that
asks for ``memory_grads="per_task"``: batch statistics would mix the tasks' padding rows into
the memory losses, and the running statistics cannot be updated inside ``vmap``. Per task, each
memory's forward runs in training mode (batch statistics), as in the authors' code, but the
running statistics are put back afterwards (``statistics_kept``): the memories are seen at every
step, and would otherwise weigh in the running statistics far more than the data. Dropout works
in both modes: the batched pass draws a different mask for every task, as the loop does.
``memory_bytes`` counts the stored examples and the (T × parameters) gradient matrix GEM
needs at every step (the authors' code keeps it allocated as ``self.grads``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count, check_number
from ..data.streams import Task
from ..errors import LifelongError
from ..models.modes import statistics_kept
from ..registry import STRATEGIES
from .base import Strategy, TrainFunction
from .importance import trainable
from .memory import SeededRandom, append_task_memory, as_records, tensor_bytes
from .qp import solve_nonneg_qp

GRAD_MODES = ("batched", "per_task")


class _Logits(nn.Module):
    """``strategy.logits(model, x, t)`` as a module, so ``functional_call`` can swap weights."""

    def __init__(self, strategy: Strategy, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.strategy = strategy

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.strategy.logits(self.model, x, t)


def batch_statistics(module: nn.Module) -> bool:
    """Whether ``module`` normalises with statistics of the batch or keeps running ones (BatchNorm;
    InstanceNorm with ``track_running_stats``): its training-mode forward cannot be vmapped."""
    norm = nn.modules.batchnorm
    return isinstance(module, norm._BatchNorm) or (
        isinstance(module, norm._NormBase) and bool(module.track_running_stats))


def flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    """The gradients in ``p.grad`` as one vector (zeros where a parameter has none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])


def write_grad(params: list[torch.Tensor], vector: torch.Tensor) -> None:
    """Copy ``vector`` back into the parameters' ``.grad``."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p).clone()
        offset += n


@STRATEGIES.register("gem", "Gradient Episodic Memory: project gradients so no past task's "
                            "memory loss increases (Lopez-Paz & Ranzato 2017)")
class GEM(SeededRandom, Strategy):
    """GEM: per-task episodic memories and a QP projection of every conflicting gradient."""

    search_space = {"margin": (0.0, 0.1, 0.5, 1.0)}


    def __init__(self, memory_per_task: int = 256, margin: float = 0.5, eps: float = 1e-3,
                 memory_grads: str = "batched") -> None:
        check_number("margin", margin)
        check_number("eps", eps)
        self.memory_per_task = check_count("memory_per_task", memory_per_task)
        self.margin = margin
        self.eps = eps
        self.memory_grads = check_choice("memory_grads", memory_grads, GRAD_MODES)
        self.memory_: dict[str, torch.Tensor] = {}
        self.grad_row_bytes_ = 0

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 4001)

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        if self.memory_grads == "batched":
            norms = [name for name, module in model.named_modules() if batch_statistics(module)]
            if norms:
                raise LifelongError(
                    f"gem's batched memory gradients (memory_grads='batched', the default) cannot run "
                    f"the {type(model.get_submodule(norms[0])).__name__} layer {norms[0]!r}: it "
                    "normalises with batch or running statistics shared across the memories; "
                    "pass memory_grads='per_task'"
                )
        return super().before_task(model, task)

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        records = as_records(self.train_data(task))
        self.memory_ = append_task_memory(self.memory_, records, self.memory_per_task, self.rng())
        self.grad_row_bytes_ = sum(p.numel() * p.element_size() for p in trainable(model).values())

    # ------------------------------------------------------------ memory gradients
    def memory_gradients(self, model: nn.Module) -> torch.Tensor:
        """The (T, parameters) matrix G of the loss gradients on each stored task's memory, in the
        model's mode (training, as the authors' code), its BatchNorm running statistics kept."""
        with statistics_kept(model):
            if self.memory_grads == "per_task":
                return self._gradients_per_task(model)
            return self._gradients_batched(model)

    def _gradients_batched(self, model: nn.Module) -> torch.Tensor:
        named = list(trainable(model).items())
        wrapper = _Logits(self, model)
        params = {f"model.{n}": p.detach() for n, p in named}

        def task_loss(params, x, y, t, valid):
            logits = torch.func.functional_call(wrapper, params, (x, t))
            losses = F.cross_entropy(logits, y, reduction="none")
            return (losses * valid).sum() / valid.sum()

        m = self.memory_
        grads = torch.func.vmap(torch.func.grad(task_loss), in_dims=(None, 0, 0, 0, 0),
                                randomness="different")(  # dropout: a mask per task, as per_task
            params, m["x"], m["y"], m["t"], m["valid"].to(m["x"].dtype))
        return torch.cat([grads[f"model.{n}"].reshape(m["y"].shape[0], -1) for n, _ in named], 1)

    def _gradients_per_task(self, model: nn.Module) -> torch.Tensor:
        params = list(trainable(model).values())
        rows = []
        for k in range(self.memory_["y"].shape[0]):  # one forward and backward per past task
            valid = self.memory_["valid"][k]
            x, y, t = (self.memory_[f][k][valid] for f in ("x", "y", "t"))
            loss = F.cross_entropy(self.logits(model, x, t), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(grads, params)]))
        return torch.stack(rows)

    # ------------------------------------------------------------ projection
    def project(self, g: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """g unchanged when ⟨g, g_k⟩ ≥ 0 for every past task k, else Gᵀv* + g (the dual QP)."""
        if not bool(((G @ g) < 0).any()):
            return g
        P = G @ G.T + self.eps * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
        v = solve_nonneg_qp(P, G @ g, lower=self.margin)
        return G.T @ v + g

    def after_backward(self, model: nn.Module) -> None:
        if not self.memory_:
            return
        params = list(trainable(model).values())
        G = self.memory_gradients(model)
        g = flat_grad(params)
        projected = self.project(g, G)
        if projected is not g:
            write_grad(params, projected)

    def memory_bytes(self) -> int:
        """Stored examples (inputs, labels, task ids, valid mask) + the T×P gradient matrix."""
        tasks = self.memory_["y"].shape[0] if self.memory_ else 0
        return tensor_bytes(self.memory_) + tasks * self.grad_row_bytes_
