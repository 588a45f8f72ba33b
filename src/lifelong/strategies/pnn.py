"""Progressive Neural Networks: Rusu et al. 2016, arXiv:1606.04671.

Every task gets a new *column*, a freshly initialised copy of the base network (the library's
``mlp``, ``cnn`` or any chain of Linear/Conv2d blocks). Column k's layer i receives, besides
its own layer i−1, the hidden layer i−1 of every earlier column through a non-linear lateral
adapter (Sec. 2, eq. 2; see ``lifelong.models.columns``). When task k starts, every earlier
column and its adapters are frozen (``requires_grad=False``; the loop rebuilds its optimiser
because the trainable parameters changed), so the outputs of earlier tasks cannot change:
forgetting is zero by construction. Task t is answered by column t, whose output layer is its
own classifier; the model grows by one column (and its adapters) per task, which the result's
``model_sizes`` shows. A model with frozen parameters is refused: column 0 is the model itself and
trains for task 0, so PNN cannot keep a frozen layer fixed.

Differences from the paper: the paper's experiments are reinforcement learning; here each
column is trained with the loop's supervised loss. The first column *is* the model given to the
strategy (its initial weights); later columns are drawn from a generator seeded by the run's
seed and the column index, so a resumed run rebuilds exactly the same network. Models: chains of
Linear/Conv2d layers (``mlp``, ``cnn``); BatchNorm and residual models (``resnet18-reduced``) are
refused in one line.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_number
from ..data.streams import Task
from ..models.columns import ProgressiveNet, check_chain, parse_chain, refuse_frozen
from ..registry import STRATEGIES
from .base import Strategy
from .masks import route_by_task


@STRATEGIES.register("pnn", "progressive networks: a column per task, lateral adapters, old columns frozen")
class PNN(Strategy):
    """A column per task with lateral adapters from earlier columns (Rusu et al. 2016).

    ``adapter_ratio``: width of the adapters' projection V as a fraction of the width of the
    layer it reads (1.0 = the paper's choice, as many units/channels as one column's layer).
    """

    needs_task_identity = True

    def __init__(self, adapter_ratio: float = 1.0) -> None:
        check_number("adapter_ratio", adapter_ratio, inclusive=False, high=1.0, prefix="pnn")
        self.adapter_ratio = adapter_ratio
        self.columns_ = 0

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        if not isinstance(model, ProgressiveNet):
            refuse_frozen(model, "pnn")  # column 0 is the model itself: it trains for task 0
            check_chain(model, parse_chain(model, "pnn"), task.x_train[:2], "pnn")
            model = ProgressiveNet(model, self.adapter_ratio)
        for param in model.parameters():  # freeze every earlier column and its adapters
            param.requires_grad_(False)
        while len(model.columns) <= task.id:
            model.add_column(self._generator(len(model.columns)))
        self.columns_ = len(model.columns)
        return model

    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(model, ProgressiveNet):  # before the first task: the base network
            return model(x)
        last = len(model.columns) - 1
        return route_by_task(x, task_ids, lambda xs, t: model.forward_column(xs, min(t, last)))

    def restore_model(self, model: nn.Module) -> nn.Module:
        """Rebuild ``columns_`` columns around a fresh base model, ready for its saved weights."""
        if self.columns_ == 0 or isinstance(model, ProgressiveNet):
            return model
        net = ProgressiveNet(model, self.adapter_ratio)
        for k in range(self.columns_):
            net.add_column(self._generator(k))
        for column in list(net.columns)[:-1]:
            column.requires_grad_(False)
        return net

    def _generator(self, column: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(getattr(self, "seed_", 0)) * 1009 + column)
