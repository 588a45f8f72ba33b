"""PackNet: Mallya & Lazebnik 2018, "PackNet: Adding Multiple Tasks to a Single Network by
Iterative Pruning" (CVPR 2018, arXiv:1711.05769).

One fixed network is packed with tasks one after another (Sec. 3, Fig. 1):

1. *train* task t on the weights still free (the loop's epochs); the weights of tasks < t are
   used but frozen (gradient mask). The free weights, zeroed when released, are first redrawn
   from the default initialisation (our choice: with the homework's small Adam steps, weights
   trained from zero barely move and later tasks learn little);
2. *prune*: in every layer, release the fraction ``prune`` of the free weights task t trained
   with the smallest magnitude (set to zero; free again for later tasks) — the rest are task
   t's. A free weight that never got a gradient during the task (from an input pixel that is
   zero in all of its images, or into a unit that never fires) is released as well: its
   magnitude is only its random initialisation, and kept it would be frozen as task t's
   without serving it, taking capacity from (and feeding noise into) later tasks;
3. *retrain* (``retrain_epochs``, 30 by default) with only task t's kept weights trainable;
4. *freeze* task t's weights for good.

Prediction for task t uses the weights of tasks ≤ t only (binary masks from the owner tensors
of ``lifelong.strategies.masks``) and task t's own output layer (the paper's per-task
classifiers), so the answers for old tasks cannot change: forgetting is zero by construction.
The network's size never changes; the masks (2 bytes per weight) and heads count as memory.

Biases are not pruned: trained with the first task, then fixed (as in the paper). With
``prune`` = p, task t keeps the fraction 1 − p of the free weights it trained ((1 − p) pᵗ of each
layer when every weight trains); when a layer has no free weight left a clear error says so.
A model with frozen parameters (``requires_grad=False``) is refused: PackNet decides which
weights train, and would prune (zero) the weights of a frozen layer, which never get a gradient.
Models: chains of Linear/Conv2d layers (``mlp``, ``cnn``; Conv2d weights are pruned like Linear
ones). BatchNorm models (``resnet18-reduced``, ``resnet18``) are refused in one line: the paper
keeps BatchNorm per task, which is not implemented here (``models.columns``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..checks import check_count, check_number
from ..data.streams import Task
from ..errors import LifelongError
from ..models.columns import check_chain, parse_chain, refuse_frozen
from ..registry import STRATEGIES
from .base import Strategy, TrainFunction
from .masks import FREE, Freeze, keep_largest, layer_roles, lent_training, owned, redraw_free, route_by_task


@STRATEGIES.register("packnet", "PackNet: prune and freeze a share of one network per task")
class PackNet(Strategy):
    """Iterative magnitude pruning packs tasks into one network (Mallya & Lazebnik 2018).

    ``prune``: fraction of the still-free weights released after each task (paper: 0.5–0.75).
    ``retrain_epochs``: epochs of retraining the kept weights after pruning. The default, 30,
    was chosen on validation data carved from the training sets (docs/resource-allocation.md):
    with the homework's small Adam steps a pruned share recovers far more slowly than a dense
    network learns, and 2–10 epochs left split MNIST 1–2.6 points below each task alone.
    """

    search_space = {"prune": (0.5, 0.75, 0.9)}

    needs_task_identity = True

    def __init__(self, prune: float = 0.75, retrain_epochs: int = 30) -> None:
        check_number("prune", prune, inclusive=False, high=1.0, high_inclusive=False, prefix="packnet")
        self.prune = prune
        self.retrain_epochs = check_count("retrain_epochs", retrain_epochs, low=0, prefix="packnet")
        self.owner_: dict[str, torch.Tensor] = {}
        self.heads_: dict[str, dict[str, torch.Tensor]] = {}
        self._freeze: Freeze | None = None

    # --------------------------------------------------------------- step 1: train
    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        refuse_frozen(model, "packnet")  # it would prune (zero) and redraw a frozen layer's weights
        weights, heads, biases = layer_roles(model, "packnet")
        if not self.owner_:
            check_chain(model, parse_chain(model, "packnet"), task.x_train[:2], "packnet")
            params = dict(model.named_parameters())
            self.owner_ = {n: torch.zeros_like(params[n], dtype=torch.int16) for n in weights}
        full = [n for n in weights if not bool((self.owner_[n] == FREE).any())]
        if full:
            raise LifelongError(
                f"packnet has no free weights left in layer {full[0]!r} for task {task.name!r}: "
                f"each task keeps {1 - self.prune:.0%} of the weights still free; raise prune "
                f"(now {self.prune}) to leave more for later tasks, or use a wider model"
            )
        if task.id > 0:
            redraw_free(model, self.owner_, int(getattr(self, "seed_", 0)) * 1009 + task.id)
        trainable = {n: self.owner_[n] == FREE for n in weights}
        self._freeze = Freeze(model, self._with_heads(trainable, heads, biases, task))
        return model

    def after_backward(self, model: nn.Module) -> None:
        if self._freeze is not None:
            self._freeze.after_backward()

    def after_step(self, model: nn.Module) -> None:
        if self._freeze is not None:
            self._freeze.after_step()

    # ------------------------------------------------- steps 2–4: prune, retrain, freeze
    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        weights, heads, biases = layer_roles(model, "packnet")
        params = dict(model.named_parameters())
        assert self._freeze is not None
        kept = {}
        with torch.no_grad():
            for n in weights:  # step 2: prune the smallest trained free weights, layer by layer
                free = self.owner_[n] == FREE
                kept[n] = keep_largest(params[n], free & self._freeze.trained[n], 1 - self.prune)
                params[n].masked_fill_(free & ~kept[n], 0.0)
        self._freeze = Freeze(model, self._with_heads(dict(kept), heads, biases, task))
        if self.retrain_epochs:  # step 3: retrain the kept weights
            seed = int(getattr(self, "seed_", 0)) * 1009 + 500 + task.id
            lent_training(train, "packnet")(self.train_data(task), self.retrain_epochs, seed)
        for n in weights:  # step 4: they are task t's for good
            self.owner_[n] = torch.where(kept[n], task.id + 1, self.owner_[n]).to(torch.int16)
        self.heads_[str(task.id)] = {n: params[n].detach().clone() for n in heads}
        self._freeze = None

    def _with_heads(self, trainable: dict, heads: list[str], biases: list[str], task: Task) -> dict:
        """The output layer is the task's own; biases train with the first task only."""
        trainable.update({n: True for n in heads})
        if task.id == 0:
            trainable.update({n: True for n in biases})
        return trainable

    # --------------------------------------------------------------- prediction
    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if self.tasks_learned_ == 0:
            return model(x)
        return route_by_task(x, task_ids, lambda xs, t: self._forward_task(model, xs, t))

    def _forward_task(self, model: nn.Module, x: torch.Tensor, t: int) -> torch.Tensor:
        if t >= self.tasks_learned_:  # the task being trained (or not met yet): the live network
            return model(x)
        params = dict(model.named_parameters())
        masked = {n: params[n] * owned(owner, 0, t) for n, owner in self.owner_.items()}
        return functional_call(model, {**masked, **self.heads_[str(t)]}, (x,))
