"""CPG: Hung et al. 2019, "Compacting, Picking and Growing for Unforgetting Continual Learning"
(NeurIPS 2019, arXiv:1910.06562) — a reference implementation (no library ships one).

One network whose weights are split among tasks (owner tensors of ``masks``). For task k
(Sec. 3, Algorithm 1):

* **Picking** — the weights of tasks < k are frozen; a learnable real-valued mask over them,
  thresholded to binary in the forward pass and trained straight through (as in Piggyback,
  Mallya et al. 2018, with its own Adam at ``mask_lr``), picks which of them task k reuses,
  while the still-free weights are trained for task k (the loop's epochs). ``mask_lr`` is
  Piggyback's 1e-4: from 1e-2 to the threshold 5e-3 takes about 5e-3 / mask_lr Adam steps, so
  on short protocols (a few dozen steps per task) the mask keeps nearly every old weight;
  1e-3 makes it pick, which helped on one seed and collapsed a task on another (see
  docs/resource-allocation.md).
* **Growing** — if the task's accuracy goal ``goal`` is not met after picking, every hidden
  layer gets ``grow`` × its original width in new units and the task trains again (at most
  ``max_grow`` times); a layer with no free weight left grows before the task starts. Without
  a ``goal`` the network therefore grows only when it must.
* **Compacting** — gradual pruning (Zhu & Gupta 2017: sparsity s_i = s_max (1 − (1 − i/n)³),
  i = 1..n) of the weights task k trained, each step retrained for ``compact_epochs`` (8 by
  default, chosen on validation data: with the homework's small Adam steps 1 epoch left split
  MNIST 1.6–2.1 points below each task alone; docs/resource-allocation.md); it stops
  at the last step whose accuracy is still ≥ a_k − ``tolerance``. The kept weights become task
  k's own (frozen); the pruned ones are released, zeroed, for later tasks.

Accuracy goals are measured on a held-out slice (``holdout``) of the task's TRAINING data, never
on its test set: a_k is that accuracy after picking (and growing). Task k then predicts with
    W_k = W ⊙ (owner = k) + W ⊙ pick_k ⊙ (owner < k)      (and its own output layer),
which later tasks never change: forgetting is zero by construction. Biases are trained with
the first task only; new units' biases are zero. Released weights are zeroed, and redrawn from
the default initialisation when the next task starts (as in ``packnet``). The pick mask is
fixed (binarised) during compacting, and — a simplification of the paper — the network grows
by a fraction of every hidden layer's width rather than by a searched number of filters.
A model with frozen parameters (``requires_grad=False``) is refused: CPG decides which weights
train, and would redraw, prune and grow a frozen layer. Models: chains of Linear/Conv2d layers
(``mlp``, ``cnn``); BatchNorm and residual models (``resnet18-reduced``) are refused in one line.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.func import functional_call

from ..checks import check_count, check_number
from ..data.streams import Task
from ..models.columns import check_chain, hidden_widths, parse_chain, refuse_frozen, widen
from ..registry import STRATEGIES
from .base import Batch, Strategy, TrainFunction
from .masks import (
    FREE,
    Freeze,
    batch_accuracy,
    keep_largest,
    layer_roles,
    lent_training,
    owned,
    pad_to,
    redraw_free,
    route_by_task,
    split_holdout,
)

PICK_THRESHOLD = 5e-3
"""Piggyback's threshold on the real-valued mask (initialised at ``mask_init`` = 1e-2)."""


@STRATEGIES.register("cpg", "CPG: compact each task's weights, pick old ones to reuse, grow if needed")
class CPG(Strategy):
    """Compacting, Picking and Growing (Hung et al. 2019). See the module docstring."""

    search_space = {"tolerance": (0.005, 0.01, 0.02)}

    needs_task_identity = True

    def __init__(self, holdout: float = 0.1, tolerance: float = 0.01, max_sparsity: float = 0.9,
                 prune_steps: int = 4, compact_epochs: int = 8, goal: float | None = None,
                 grow: float = 0.25, max_grow: int = 2, mask_lr: float = 1e-4,
                 mask_init: float = 1e-2) -> None:
        number, count = partial(check_number, prefix="cpg"), partial(check_count, prefix="cpg")
        number("holdout", holdout, inclusive=False, high=1.0, high_inclusive=False)
        number("tolerance", tolerance, high=1.0)
        number("max_sparsity", max_sparsity, high=1.0, high_inclusive=False)
        count("prune_steps", prune_steps)
        count("compact_epochs", compact_epochs, low=0)
        count("max_grow", max_grow, low=0)
        if goal is not None:  # an accuracy
            number("goal", goal, inclusive=False, high=1.0)
        number("grow", grow, inclusive=False)  # a fraction of each layer's width
        number("mask_lr", mask_lr, inclusive=False)
        number("mask_init", mask_init, inclusive=False)
        self.holdout, self.tolerance, self.goal = holdout, tolerance, goal
        self.max_sparsity, self.prune_steps, self.compact_epochs = max_sparsity, prune_steps, compact_epochs
        self.grow, self.max_grow = grow, max_grow
        self.mask_lr, self.mask_init = mask_lr, mask_init
        self.owner_: dict[str, torch.Tensor] = {}
        self.picks_: dict[str, dict[str, torch.Tensor]] = {}
        self.heads_: dict[str, dict[str, torch.Tensor]] = {}
        self.base_widths_: list[int] = []
        self.widths_: list[int] = []
        self.task_widths_: dict[str, list[int]] = {}
        self.log_: list[dict] = []
        self._freeze: Freeze | None = None
        self._scores: dict[str, torch.Tensor] | None = None
        self._score_optimizer: torch.optim.Optimizer | None = None
        self._grown: list[str] = []  # why the network grew during the current task

    # ----------------------------------------------------------------- data
    def train_data(self, task: Task) -> Batch:
        return split_holdout(super().train_data(task), self.holdout, self._seed(task, 0))[0]

    def held_out(self, task: Task) -> Batch:
        """The slice of the task's training data that measures the accuracy goals."""
        return split_holdout(super().train_data(task), self.holdout, self._seed(task, 0))[1]

    # ------------------------------------------------------------- picking
    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        refuse_frozen(model, "cpg")  # it would redraw, prune and grow a frozen layer's weights
        if not self.owner_:
            check_chain(model, parse_chain(model, "cpg"), task.x_train[:2], "cpg")
            weights, _, _ = layer_roles(model, "cpg")
            params = dict(model.named_parameters())
            self.owner_ = {n: torch.zeros_like(params[n], dtype=torch.int16) for n in weights}
            self.base_widths_ = self.widths_ = hidden_widths(model, "cpg")
        self._grown = []
        full = [n for n, owner in self.owner_.items() if not bool((owner == FREE).any())]
        if full:  # growing because it must: a layer has no free weight for the new task
            self._grow(model, task, f"no free weight left in {full[0]!r}")
        if task.id > 0:
            redraw_free(model, self.owner_, self._seed(task, 998))
            params = dict(model.named_parameters())
            self._scores = {n: torch.full_like(params[n], self.mask_init, requires_grad=True)
                            for n in self.owner_}
            self._score_optimizer = torch.optim.Adam(list(self._scores.values()), lr=self.mask_lr)
        self._set_trainable(model, task, {n: o == FREE for n, o in self.owner_.items()})
        return model

    def after_backward(self, model: nn.Module) -> None:
        if self._freeze is not None:
            self._freeze.after_backward()

    def after_step(self, model: nn.Module) -> None:
        if self._freeze is not None:
            self._freeze.after_step()
        if self._score_optimizer is not None:
            self._score_optimizer.step()
            self._score_optimizer.zero_grad(set_to_none=True)

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        held = self.held_out(task)
        accuracy, tries = batch_accuracy(self, model, held), 0
        while self.goal is not None and accuracy < self.goal and tries < self.max_grow:
            self._grow(model, task, f"held-out accuracy {accuracy:.3f} < goal {self.goal}")
            self._set_trainable(model, task, {n: o == FREE for n, o in self.owner_.items()})
            lent_training(train, "cpg")(self.train_data(task), None, self._seed(task, tries + 1))
            accuracy, tries = batch_accuracy(self, model, held), tries + 1
        picked = self._fix_picks(task)
        sparsity, kept, final = self._compact(model, task, held, accuracy - self.tolerance,
                                               lent_training(train, "cpg"))
        for n, keep in kept.items():
            self.owner_[n] = torch.where(keep, task.id + 1, self.owner_[n]).to(torch.int16)
        _, heads, _ = layer_roles(model, "cpg")
        params = dict(model.named_parameters())
        self.heads_[str(task.id)] = {n: params[n].detach().clone() for n in heads}
        self.task_widths_[str(task.id)] = list(self.widths_)
        free = sum(int((o == FREE).sum()) for o in self.owner_.values())
        self.log_.append({"task": task.id, "holdout_acc": accuracy, "goal": accuracy - self.tolerance,
                          "compacted_acc": final, "sparsity": sparsity, "picked": picked,
                          "grown": len(self._grown), "grew_because": list(self._grown),
                          "free_weights": free})
        self._freeze = None

    def _fix_picks(self, task: Task) -> float:
        """Binarise the learned pick mask; returns the fraction of old weights picked."""
        self._score_optimizer = None
        if self._scores is None:
            return 0.0
        picks = {n: (s.detach() > PICK_THRESHOLD) for n, s in self._scores.items()}
        self.picks_[str(task.id)] = picks
        self._scores = None
        old = [(picks[n], owned(o, 0, task.id - 1)) for n, o in self.owner_.items()]
        total = sum(int(m.sum()) for _, m in old)
        return sum(int((p & m).sum()) for p, m in old) / max(1, total)

    # ----------------------------------------------------------- compacting
    def _compact(self, model: nn.Module, task: Task, held: Batch, goal: float, train: TrainFunction
                 ) -> tuple[float, dict[str, torch.Tensor], float]:
        """Gradual pruning of the task's weights while the held-out accuracy stays ≥ ``goal``.

        Returns (sparsity reached, kept positions per layer, held-out accuracy at the end)."""
        params = dict(model.named_parameters())
        trained = {n: o == FREE for n, o in self.owner_.items()}
        best = ({n: p.detach().clone() for n, p in params.items()}, trained, 0.0)
        accuracy = batch_accuracy(self, model, held)
        for step, sparsity in enumerate(sparsity_schedule(self.max_sparsity, self.prune_steps), 1):
            kept = {n: keep_largest(params[n], trained[n], 1 - sparsity) for n in trained}
            with torch.no_grad():
                for n in trained:
                    params[n].masked_fill_(trained[n] & ~kept[n], 0.0)
            self._set_trainable(model, task, dict(kept))
            train(self.train_data(task), self.compact_epochs, self._seed(task, 100 + step))
            step_accuracy = batch_accuracy(self, model, held)
            if step_accuracy < goal:
                break
            values = {n: p.detach().clone() for n, p in params.items()}
            best, accuracy = (values, kept, sparsity), step_accuracy
        values, kept, sparsity = best
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(values[n])
        return sparsity, kept, accuracy

    # -------------------------------------------------------------- growing
    def _grow(self, model: nn.Module, task: Task, reason: str) -> None:
        """Add ``grow`` × the original width to every hidden layer (new weights are free)."""
        self._grown.append(reason)
        self.widths_ = [w + max(1, round(self.grow * b)) for w, b in zip(self.widths_, self.base_widths_)]
        widen(model, self.widths_, "cpg", torch.Generator().manual_seed(self._seed(task, 999)))
        params = dict(model.named_parameters())
        self.owner_ = {n: pad_to(o, params[n].shape, FREE) for n, o in self.owner_.items()}
        self.picks_ = {t: {n: pad_to(p, params[n].shape, False) for n, p in picks.items()}
                       for t, picks in self.picks_.items()}
        self.heads_ = {t: {n: pad_to(h, params[n].shape, 0.0) for n, h in head.items()}
                       for t, head in self.heads_.items()}
        if self._scores is not None:
            self._scores = {n: pad_to(s.detach(), params[n].shape, self.mask_init).requires_grad_(True)
                            for n, s in self._scores.items()}
            self._score_optimizer = torch.optim.Adam(list(self._scores.values()), lr=self.mask_lr)

    def restore_model(self, model: nn.Module) -> nn.Module:
        if self.widths_ and hidden_widths(model, "cpg") != self.widths_:
            widen(model, self.widths_, "cpg")
        return model

    # ------------------------------------------------------------ prediction
    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if not self.owner_:
            return model(x)
        return route_by_task(x, task_ids, lambda xs, t: self._forward_task(model, xs, t))

    def _forward_task(self, model: nn.Module, x: torch.Tensor, t: int) -> torch.Tensor:
        if t > self.tasks_learned_:  # a task not met yet: the live network
            return model(x)
        learning = t == self.tasks_learned_
        params = dict(model.named_parameters())
        effective = {}
        for n, owner in self.owner_.items():
            mask = (owner == FREE if learning else owner == t + 1).to(params[n].dtype)
            if t > 0:
                mask = mask + self._pick(n, t, learning) * owned(owner, 0, t - 1)
            effective[n] = params[n] * mask
        if not learning:
            effective.update(self.heads_[str(t)])
            effective = self._as_grown_then(model, effective, self.task_widths_[str(t)])
        return functional_call(model, effective, (x,))

    def _as_grown_then(self, model: nn.Module, effective: dict[str, torch.Tensor],
                       widths: list[int]) -> dict[str, torch.Tensor]:
        """Cut the layers back to the widths they had when the task was learned. Units grown
        later add exact zeros to an old task's sums; leaving them out keeps its computation —
        and so its logits — bit for bit what they were (the summation order stays the same)."""
        if widths == self.widths_:
            return effective
        chain = parse_chain(model, "cpg")
        params = dict(model.named_parameters())
        for i, (name, layer) in enumerate(zip(chain.names, chain.layers)):
            weight = effective.get(f"{name}.weight", params[f"{name}.weight"])
            rows = widths[i] if i < len(widths) else weight.shape[0]
            cols = weight.shape[1] if i == 0 else weight.shape[1] // self.widths_[i - 1] * widths[i - 1]
            effective[f"{name}.weight"] = weight[:rows, :cols].contiguous()
            if layer.bias is not None:
                effective[f"{name}.bias"] = effective.get(f"{name}.bias", layer.bias)[:rows].contiguous()
        return effective

    def _pick(self, name: str, t: int, learning: bool) -> torch.Tensor:
        """Task t's pick mask: binary; while it is learned, straight-through to the scores."""
        if learning and self._scores is not None:
            scores = self._scores[name]
            return (scores > PICK_THRESHOLD).to(scores.dtype) + scores - scores.detach()
        if str(t) in self.picks_:
            return self.picks_[str(t)][name].float()
        return torch.ones(())  # a task not started yet reads every old weight

    # ----------------------------------------------------------------- misc
    def _set_trainable(self, model: nn.Module, task: Task, own: dict[str, torch.Tensor]) -> None:
        _, heads, biases = layer_roles(model, "cpg")
        trainable: dict[str, bool | torch.Tensor] = {**own, **{n: True for n in heads}}
        if task.id == 0:
            trainable.update({n: True for n in biases})
        self._freeze = Freeze(model, trainable)

    def _seed(self, task: Task, phase: int) -> int:
        return int(getattr(self, "seed_", 0)) * 1009 + 7919 * task.id + phase


def sparsity_schedule(max_sparsity: float, steps: int) -> list[float]:
    """Zhu & Gupta 2017's gradual pruning: s_i = s_max (1 − (1 − i/n)³) for i = 1..n."""
    return [max_sparsity * (1 - (1 - i / steps) ** 3) for i in range(1, steps + 1)]

