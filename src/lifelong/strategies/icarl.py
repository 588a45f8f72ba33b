"""iCaRL: incremental classifier and representation learning (Rebuffi, Kolesnikov, Sperl & Lampert,
CVPR 2017).

* Representation (Alg. 3): every step trains on the incoming batch joined by a batch of exemplars
  (``replay_batch_size``, default the run's batch size) with binary cross-entropy on the sigmoid of
  every seen class's output: the current task's classes have one-hot targets, the classes of
  earlier tasks have the previous network's sigmoid outputs q = σ(old logits) as targets
  (distillation). Summed over those classes, averaged over the examples (``icarl_loss``). Outputs
  of classes not seen yet are left out, as the paper's network has none for them.
  When the run augments its batches (the authors train with random crops and flips), the
  exemplars are augmented afresh as the incoming batch is, and the distillation targets are the
  previous network's outputs on those same augmented inputs.
* Exemplars (Alg. 4, 5): after each task the memory of ``buffer_size`` examples in all is shared
  equally among the classes seen (m = K / classes); each class is ranked by herding on its
  L2-normalised features and keeps its first m picks, so an old class shrinks to its first picks
  (``memory.herding_add``). K = 2000 for CIFAR-100 in the paper; the default 500 gives MNIST-sized
  streams (10 classes) 50 exemplars per class, the paper's order of magnitude (20 per class).
* Classifier (Alg. 1): nearest mean of exemplars. After each task the class means
  μ_y = mean of φ(p) over class y's exemplars, φ the L2-normalised features, re-normalised (§2.1:
  "the results of any operation on feature vectors, e.g. averages, are also re-normalised"), are
  kept as learned state; ``predict`` gives the scores −‖φ(x) − μ_y‖ (classes without exemplars:
  very low), so the library's argmax is y* = argmin_y ‖φ(x) − μ_y‖. It does so only with the
  model in eval mode and while the means belong to the current network: the loop trains through
  ``predict`` (training mode: the network's outputs), and ``before_task`` drops the means, so the
  learning curve during a task shows the network's own outputs.

Features, for any ``nn.Module``: the input of its last ``nn.Linear`` layer (in ``model.modules()``
order), read by a forward pre-hook; a model without one is refused. Scenarios: class-incremental
is the paper's; in task-incremental streams the NME scores are masked to the task's classes like
any logits; in domain-incremental streams (classes repeat) a class seen again is re-herded from
its stored exemplars and its new examples together, and the current task's classes are trained
with one-hot targets, so distillation only acts on classes absent from the current task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..errors import LifelongError
from ..models.modes import eval_mode, outputs_of, snapshot
from ..registry import STRATEGIES
from .base import Batch, Strategy, TrainFunction
from .memory import Memory, SeededRandom, as_records, herding_add, joined, sample, take, tensor_bytes


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear`` layer, whose input is iCaRL's feature vector."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise LifelongError(f"icarl reads features at the input of the model's last nn.Linear layer, "
                            f"but {type(model).__name__} has none; give the model a linear output layer")
    return layers[-1]


def outputs_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs on ``x`` and its features (the last Linear layer's input, flattened)."""
    seen: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    try:
        outputs = model(x)
    finally:
        handle.remove()
    return outputs, seen[-1].flatten(1)


def icarl_loss(logits: torch.Tensor, y: torch.Tensor, old_logits: torch.Tensor | None,
               new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Alg. 3: mean over examples of Σ_{c∈new} BCE(σ(g_c), δ_{c=y}) + Σ_{c∈old} BCE(σ(g_c), σ(g_c^old));
    ``new`` and ``old`` are boolean masks over the classes."""
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    if old_logits is not None:
        target = torch.where(old, torch.sigmoid(old_logits), target)
    columns = new | old
    bce = F.binary_cross_entropy_with_logits(logits[:, columns], target[:, columns], reduction="none")
    return bce.sum(1).mean()


def nme_scores(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """−‖φ(x) − μ_y‖ per class (Alg. 1), φ the normalised features; NaN means (no exemplars): very low."""
    distance = torch.cdist(F.normalize(features, dim=1), means.to(features))
    return torch.nan_to_num(-distance, nan=torch.finfo(distance.dtype).min / 4)


@STRATEGIES.register("icarl", "iCaRL: herded exemplars, sigmoid distillation and the nearest-mean-of-"
                              "exemplars classifier (Rebuffi et al. 2017)")
class ICaRL(SeededRandom, Strategy):
    """iCaRL (see the module docstring)."""

    search_space = {"replay_batch_size": (32, 64, 128, 256)}

    predict_routes_by_task = False
    """Its ``predict`` is a classifier on the shared network, not routing: it combines with others."""

    def __init__(self, buffer_size: int = 500, replay_batch_size: int | None = None) -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)  # K, exemplars in all
        self.replay_batch_size = check_count("replay_batch_size", replay_batch_size, allow_none=True)
        self.memory_: Memory = {}
        self.old_model_: dict[str, torch.Tensor] = {}
        self.learned_classes_: torch.Tensor | None = None
        self.class_means_: torch.Tensor | None = None

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 2017)
        self.learned_classes_ = torch.zeros(stream.num_classes, dtype=torch.bool)

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        last_linear(model)  # refused here, before any training, when there are no features
        self.class_means_ = None  # they belong to the previous network
        return model

    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Training mode, or no class means yet: the network's outputs; else the NME scores."""
        if model.training or self.class_means_ is None:
            return model(x)
        return nme_scores(outputs_and_features(model, x)[1], self.class_means_)

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        """``icarl_loss`` on the batch joined by a batch of exemplars (in a forward pass of their own)."""
        x, y, _ = batch
        if self.memory_:
            old = sample(self.memory_, self.replay_batch_size or getattr(self.config, "batch_size", len(y)),
                         self.rng())
            replayed = self.augmented(old["x"])
            x, y = torch.cat([x, replayed]), torch.cat([y, old["y"]])
            outputs = torch.cat([outputs, self.predict(model, replayed, old["t"])])
        new = torch.zeros_like(self.learned_classes_)
        new[list(task.classes)] = True
        old_classes = (self.learned_classes_ & ~new).to(outputs.device)
        old_logits = None
        if self.old_model_ and bool(old_classes.any()):
            old_logits = outputs_of(model, self.old_model_, x)
        return icarl_loss(outputs, y, old_logits, new.to(outputs.device), old_classes)

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        """Alg. 4/5: herd the task's classes (with their stored exemplars, if a class comes back),
        share the budget; then the class means of the new network (Alg. 1) and its snapshot."""
        records = as_records((task.x_train, task.y_train, task.train_ids().to(task.x_train.device)))
        rest = self.memory_
        if self.memory_:
            again = torch.isin(self.memory_["y"], records["y"].unique())
            stored = {k: v for k, v in take(self.memory_, again.nonzero().squeeze(1)).items() if k != "rank"}
            records = joined(stored, records)
            rest = take(self.memory_, (~again).nonzero().squeeze(1)) if not bool(again.all()) else {}
        self.memory_ = herding_add(rest, records, self.features(model, records["x"]), self.buffer_size)
        self.class_means_ = self.means(self.features(model, self.memory_["x"]), self.memory_["y"])
        self.learned_classes_ = self.learned_classes_.clone()
        self.learned_classes_[list(task.classes)] = True
        self.old_model_ = snapshot(model)

    def features(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The features of ``x`` in eval mode, without gradients, in batches."""
        size = max(256, getattr(self.config, "batch_size", 256))
        with torch.no_grad(), eval_mode(model):
            return torch.cat([outputs_and_features(model, x[i:i + size])[1] for i in range(0, len(x), size)])

    def means(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(C, d) re-normalised means of the normalised features per class; NaN rows: no exemplars."""
        phi = F.normalize(features, dim=1)
        sums = phi.new_zeros(len(self.learned_classes_), phi.shape[1]).index_add_(0, y, phi)
        counts = torch.bincount(y, minlength=len(self.learned_classes_))
        means = F.normalize(sums, dim=1)
        return means.masked_fill((counts == 0).unsqueeze(1).to(means.device), float("nan"))

    def memory_bytes(self) -> int:
        """The exemplars (with their herding ranks), the previous network and the class means."""
        return tensor_bytes(self.memory_, self.old_model_, self.class_means_, self.learned_classes_)
