"""BiC: bias correction (Wu et al., CVPR 2019, "Large Scale Incremental Learning").

A model trained on new data and a few exemplars of old classes favours the new classes: the last
layer's logits of the new classes come out too large. BiC keeps a class-balanced memory of
``buffer_size`` exemplars (random selection inside each class, ``memory.class_balanced_add``;
the paper uses iCaRL's herding), each class's exemplars split into a training part and a held-out
validation part (``val_fraction`` of them, the paper's 9:1; the held-out rows are the same ones
from task to task). With n old and m new classes, task t is learned in two stages:

1. The model trains on the new data ∪ the training exemplars (``train_data``: one shuffled set)
   with (eq. 4)

       L = λ·L_d + (1 − λ)·L_c,   λ = n / (n + m),
       L_d = Σ_{k≤n} −π̂_k(x) log π_k(x),  π̂_k = softmax_{k≤n}(ô/T),  π_k = softmax_{k≤n}(o/T)  (eq. 3)

   L_c the cross-entropy on every class, L_d the distillation of the old model's outputs ô on the
   old classes at temperature T (``temperature``, 2 as in the paper), averaged over the batch.
   For the new classes, as many examples per class as an old class holds out are held out too,
   so the validation set is balanced between old and new classes.
2. The model frozen, a bias layer on the new classes' logits (eq. 5)

       q_k = α·o_k + β  for the new classes k,   q_k = o_k  for the old classes,

   is fitted on the validation set with the cross-entropy of softmax(q) (eq. 6): two parameters,
   a convex problem, solved by L-BFGS from (α, β) = (1, 0) (``bias_steps`` iterations).

Every task's (α, β) is kept (``bias_``, one row per task, with ``new_classes_`` marking its
classes) and ``predict`` applies them all, in training and at test time, so the old model
distilled in the next task is the corrected one. The first task has no old classes: (1, 0).
The paper's scenario is class-incremental; in task- and domain-incremental streams the correction
stays the identity (each task's head has its own softmax / no class is new), and BiC is replay of
the training exemplars with distillation of the classes not in the current task. ``memory_bytes``
counts the exemplars, the old model and the (α, β) rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count, check_number
from ..data.streams import Task
from ..models.heads import mask_logits
from ..models.modes import eval_mode, outputs_of, snapshot
from ..registry import STRATEGIES
from .base import Batch, Strategy, TrainFunction
from .memory import Memory, SeededRandom, as_records, class_balanced_add, take


def bic_loss(logits: torch.Tensor, y: torch.Tensor, old_logits: torch.Tensor | None,
             old_classes: torch.Tensor, lam: float, temperature: float,
             ce_logits: torch.Tensor | None = None) -> torch.Tensor:
    """λ·L_d + (1 − λ)·L_c (eqs. 3-4): ``old_classes`` a (C,) boolean mask of the n old classes;
    L_c on ``ce_logits`` where given (the logits masked to each example's head), else ``logits``."""
    ce = F.cross_entropy(logits if ce_logits is None else ce_logits, y)
    if old_logits is None or not bool(old_classes.any()) or lam == 0:
        return ce
    new = F.log_softmax(logits[:, old_classes] / temperature, dim=1)
    old = F.softmax(old_logits[:, old_classes] / temperature, dim=1)
    return lam * -(old * new).sum(1).mean() + (1 - lam) * ce


def corrected(logits: torch.Tensor, bias: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Eq. 5 for every task k: its classes' logits α_k·o + β_k (``bias`` (K, 2), ``classes``
    (K, C) boolean); a class of no task is unchanged."""
    if bias.shape[0] == 0:
        return logits
    mask = classes.to(logits.dtype)
    bias = bias.to(logits.dtype)
    scale = 1 + ((bias[:, 0:1] - 1) * mask).sum(0)
    return logits * scale + (bias[:, 1:2] * mask).sum(0)


def fit_bias(logits: torch.Tensor, y: torch.Tensor, new: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """(α, β) minimising the cross-entropy of ``logits`` with α·o + β on the ``new`` classes
    (eq. 6), by L-BFGS from (1, 0), in float64."""
    o = logits.detach().double()
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, device=o.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=1, max_iter=steps, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        q = torch.where(new.to(o.device), params[0] * o + params[1], o)
        loss = F.cross_entropy(q, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return params.detach().float().cpu()


@STRATEGIES.register("bic", "BiC: exemplars, distillation and a bias-correction layer on the new classes' "
                            "logits fitted on held-out exemplars (Wu et al. 2019)")
class BiC(SeededRandom, Strategy):
    """Replay with distillation, and an (α, β) correction of each task's new classes."""

    search_space = {"temperature": (1.0, 2.0, 4.0)}

    predict_routes_by_task = False  # predict corrects the shared outputs; it does not pick weights by task

    def __init__(self, buffer_size: int = 1000, val_fraction: float = 0.1, temperature: float = 2.0,
                 bias_steps: int = 100) -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.val_fraction = check_number("val_fraction", val_fraction, high=1.0, high_inclusive=False)
        self.temperature = check_number("temperature", temperature, inclusive=False)
        self.bias_steps = check_count("bias_steps", bias_steps)
        self.memory_: Memory = {}
        self.old_model_: dict[str, torch.Tensor] = {}
        self.bias_ = torch.zeros(0, 2)
        self.new_classes_ = torch.zeros(0, 0, dtype=torch.bool)
        self._held_out: torch.Tensor | None = None

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 7103)
        self.num_classes_ = stream.num_classes
        self.class_incremental_ = stream.scenario == "class"

    # ----------------------------------------------------------------- data
    def held_out_count(self, n: int) -> int:
        """How many of a class's ``n`` examples are held out for validation (at least one of two)."""
        return 0 if n < 2 or self.val_fraction == 0 else max(1, round(n * self.val_fraction))

    def exemplar_split(self) -> torch.Tensor:
        """True for the validation exemplars: in each class, the rows of smallest keys (the ones a
        shrinking share keeps, so a held-out row stays held out)."""
        y, key = self.memory_["y"], self.memory_["key"]
        val = torch.zeros_like(y, dtype=torch.bool)
        for c in y.unique().tolist():
            rows = (y == c).nonzero().squeeze(1)
            val[rows[torch.argsort(key[rows])[: self.held_out_count(len(rows))]]] = True
        return val

    def corrects(self) -> bool:
        """Whether this task's (α, β) is fitted: class-incremental, with old classes stored."""
        return self.class_incremental_ and bool(self.memory_)

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        """Hold out as many examples of each new class as an old class holds out (class-incremental)."""
        self._held_out = torch.zeros_like(task.y_train, dtype=torch.bool)
        if self.corrects():
            val = self.exemplar_split()
            per_class = round(float(val.sum()) / max(1, len(self.memory_["y"].unique())))
            order = torch.randperm(task.y_train.shape[0], generator=self.rng()).to(task.y_train.device)
            for c in task.y_train.unique().tolist():
                rows = order[task.y_train[order] == c]
                self._held_out[rows[:per_class]] = True
        return model

    def train_data(self, task: Task) -> Batch:
        """The task's examples but the held-out ones, and the training exemplars."""
        x, y, t = Strategy.train_data(self, task)
        keep = ~self._held_out if self._held_out is not None else torch.ones_like(y, dtype=torch.bool)
        if not self.memory_:
            return x[keep], y[keep], t[keep]
        stored = take(self.memory_, (~self.exemplar_split()).nonzero().squeeze(1))
        return (torch.cat([x[keep], stored["x"]]), torch.cat([y[keep], stored["y"]]),
                torch.cat([t[keep], stored["t"]]))

    # ----------------------------------------------------------------- outputs and loss
    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """The model's logits with every learned task's (α, β) on its classes (eq. 5)."""
        return corrected(model(x), self.bias_.to(x.device), self.new_classes_.to(x.device))

    def old_classes(self, task: Task, device: torch.device) -> torch.Tensor:
        seen = self.new_classes_.any(0) if self.new_classes_.shape[0] else torch.zeros(0, dtype=torch.bool)
        old = torch.zeros(self.num_classes_, dtype=torch.bool)
        old[: seen.shape[0]] = seen
        old[list(task.classes)] = False
        return old.to(device)

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        """λ·distillation on the old classes + (1 − λ)·cross-entropy (eq. 4), λ = n / (n + m)."""
        x, y, t = batch
        old = self.old_classes(task, outputs.device)
        n, m = int(old.sum()), len(task.classes)
        old_logits = None
        if self.old_model_ and n:
            raw = outputs_of(model, self.old_model_, x)
            with torch.no_grad():
                old_logits = corrected(raw, self.bias_.to(x.device), self.new_classes_.to(x.device))
        return bic_loss(outputs, y, old_logits, old, n / (n + m), self.temperature,
                        mask_logits(outputs, t, self.class_mask_))

    # ----------------------------------------------------------------- after the task
    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        """Fit this task's (α, β) on the validation set, then update the exemplars and the old model."""
        new = torch.zeros(self.num_classes_, dtype=torch.bool)
        new[list(task.classes)] = True
        row = torch.tensor([1.0, 0.0])
        if self.corrects() and self._held_out is not None:
            val = take(self.memory_, self.exemplar_split().nonzero().squeeze(1))
            held = self._held_out
            x = torch.cat([val["x"], task.x_train[held]])
            y = torch.cat([val["y"], task.y_train[held]])
            t = torch.cat([val["t"], task.train_ids().to(y.device)[held]])
            with torch.no_grad(), eval_mode(model):
                logits = self.predict(model, x, t)
            row = fit_bias(logits, y, new.to(logits.device), self.bias_steps)
        self.bias_ = torch.cat([self.bias_, row.unsqueeze(0)])
        self.new_classes_ = torch.cat([self.new_classes_.reshape(-1, self.num_classes_), new.unsqueeze(0)])
        records = as_records(Strategy.train_data(self, task))
        self.memory_ = class_balanced_add(self.memory_, records, self.buffer_size, self.rng())
        self.old_model_ = snapshot(model)
        self._held_out = None
