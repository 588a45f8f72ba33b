"""Dark Experience Replay (DER) and DER++: Buzzega, Boschini, Porrello, Abati & Calderara,
"Dark Experience for General Continual Learning: a Strong, Simple Baseline", NeurIPS 2020.

DER keeps, in a reservoir memory (Vitter's algorithm R), each example's input together with the
logits z the network gave it when it was seen, and matches the current network's logits on
stored inputs to them (Sec. 3.1, eq. 3, with h_θ the logits):

    L = E_{(x,y)~D_t}[ℓ(y, f_θ(x))] + α · E_{(x',z')~M}[‖z' − h_θ(x')‖²₂]

DER++ also replays the stored labels (Sec. 3.2, eq. 5), on a second, independent draw from the
memory:

    L_DER++ = L_DER + β · E_{(x'',y'')~M}[ℓ(y'', f_θ(x''))]

Which logits are stored: the outputs of the step's own forward pass (``after_forward``; the
authors' code stores them the same way), unmasked, over every output. With augmentation on (the
paper augments stream and buffer examples alike), the stored input is the example as drawn,
un-augmented, and the stored logits are those of the augmented version the step trained on; a
replayed input gets a fresh crop and flip (``Rehearsal.draw``), as in the authors' code. The
norm is the paper's squared L2 norm of the logit difference, summed over the outputs and averaged
over the replayed batch; the authors' code takes ``mse_loss`` (also averaged over the outputs),
so its α is C (the number of outputs) times ours. ℓ is the cross-entropy on the task-masked
logits (each stored example with its own task's head in task-incremental streams). Each draw has
``replay_batch_size`` examples (default: the run's batch size, as the paper's minibatch equal to
the batch size); ``buffer_size`` counts examples. The paper tunes α and β per benchmark and
buffer (its appendix); the defaults α = β = 0.5 are middle values of those searches, a starting
point to tune on validation data, not a published setting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count, check_number
from ..data.streams import Task
from ..registry import STRATEGIES
from .base import Batch
from .memory import Memory, as_records
from .rehearsal import Rehearsal


def logit_distance(logits: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """Eq. 3's ‖z' − h(x')‖²₂ averaged over the batch (summed over the outputs)."""
    return (logits - stored).pow(2).sum(dim=1).mean()


@STRATEGIES.register("der", "dark experience replay: match the logits stored with replayed inputs "
                            "(Buzzega 2020)")
class DER(Rehearsal):
    """α · the squared distance between the logits on stored inputs and those stored with them."""

    search_space = {"alpha": (0.1, 0.3, 0.5, 1.0)}

    seed_offset = 4005

    def __init__(self, alpha: float = 0.5, buffer_size: int = 500,
                 replay_batch_size: int | None = None) -> None:
        self.alpha = check_number("alpha", alpha)
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.replay_batch_size = check_count("replay_batch_size", replay_batch_size, allow_none=True)
        self.memory_: Memory = {}
        self.seen_ = 0

    def extra_loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor,
                   task: Task) -> torch.Tensor | float:
        """α · E‖z' − h(x')‖² on one draw from the memory (eq. 3)."""
        old = self.draw(batch[1].shape[0])
        if old is None:
            return 0.0
        return self.alpha * logit_distance(self.predict(model, old["x"], old["t"]), old["logits"])

    def after_forward(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> None:
        """The incoming batch joins the reservoir with the logits the network just gave it."""
        self.remember(as_records(batch, logits=outputs))


@STRATEGIES.register("derpp", "DER++: dark experience replay plus the stored labels, on a second "
                              "draw (Buzzega 2020)")
class DERpp(DER):
    """DER's logit term + β · cross-entropy on the labels of a second, independent draw (eq. 5)."""

    search_space = {"alpha": (0.1, 0.5, 1.0), "beta": (0.25, 0.5, 1.0)}

    seed_offset = 4006

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, buffer_size: int = 500,
                 replay_batch_size: int | None = None) -> None:
        super().__init__(alpha, buffer_size, replay_batch_size)
        self.beta = check_number("beta", beta)

    def extra_loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor,
                   task: Task) -> torch.Tensor | float:
        logits_term = super().extra_loss(model, batch, outputs, task)
        old = self.draw(batch[1].shape[0])
        if old is None:
            return logits_term
        return logits_term + self.beta * F.cross_entropy(self.replayed_logits(model, old), old["y"])
