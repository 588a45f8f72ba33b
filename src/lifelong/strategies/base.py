"""The strategy contract: hyper-parameters in the constructor, a few no-op hooks, learned state.

The training loop (``lifelong.train``) owns the optimiser and the batches and knows no method by
name; a strategy only reacts through these hooks. Every hook is a no-op by default, so a method
overrides only what it needs. One training step of the loop, in this order:

1. ``outputs = predict(model, x, task_ids)`` — the forward pass of the incoming batch
2. ``loss(model, batch, outputs, task)`` — how the batch is scored (default: cross-entropy on
   the task-masked outputs; replay mixes stored examples in)
   ``+ extra_loss(model, batch, outputs, task)`` — terms added to it (LwF's distillation)
   ``+ penalty(model)`` — a regulariser on the weights; *the loop* adds it, no override drops it
3. ``after_forward(model, batch, outputs, task)`` — memories are filled here (outputs detached).
   When the run augments its batches, steps 1–2 see the augmented batch and this hook the batch
   as drawn (un-augmented, what a memory stores) with the outputs of its augmented version
4. backward; ``read_gradient(model)`` — the loss's own gradient, before any penalty's joins it
   (SI's and RWalk's path integrals read it); then the penalty's gradient is added
5. ``after_backward(model)`` — edit the total gradient (GEM/A-GEM projections, PackNet masks)
6. optimiser step; ``after_step(model)`` — path integrals (SI, RWalk)

Around the tasks: ``setup(stream, config)`` once per run (``extend`` instead when a trained
strategy goes on to a longer stream), ``train_data(task)`` / ``epoch_repeats(task)`` (the tensors
an epoch passes over, and how often), ``before_task(model, task) -> model`` (grow a column,
snapshot θ), ``after_task(model, task, train)`` (importance, anchors, memories, pruning;
``train(data, epochs, seed)`` is the loop's own training, lent to methods that retrain inside a
task), ``artifacts(model, task)`` (files for the run folder), ``restore_model(model)`` (rebuild
grown structure on resume) and ``logits(model, x, task_ids)`` (prediction at test time).

Augmentation: before training, the loop calls ``lend_augmentation(augment)`` with the function
that augments the run's training batches (None when the run does not augment), as it lends
``train`` to ``after_task``; a method that replays stored inputs passes them through
``augmented(x)`` so they are augmented as the incoming batch is (``lifelong.data.augment``).

Identity: a strategy's name is its registry key (``@STRATEGIES.register("name", ...)``); its
hyper-parameters are its constructor's parameters, each kept in the attribute of the same name
(scikit-learn's ``get_params`` rule); learned state lives in attributes whose names end in ``_``.
Tensors, dicts and lists of tensors, and JSON scalars there are saved and restored by
``state_dict`` / ``load_state_dict`` without pickling; a strategy holding anything else overrides
both. Several strategies combine into one (``lifelong.strategies.combined``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import Augment
from ..data.streams import Stream, Task
from ..errors import LifelongError
from ..models.heads import mask_logits
from ..registry import STRATEGIES

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(inputs, labels, task ids) — task ids are per example, so mixed batches work."""

TrainFunction = Callable[[Batch, "int | None", int], None]
"""``train(data, epochs, seed)``: the loop's own epochs over ``data`` through the strategy's hooks,
with a fresh optimiser and a batch order seeded by ``seed`` (lent to ``after_task``; ``epochs``
None: the run's epochs per task)."""

SETUP_ATTRS = ("class_mask_", "num_tasks_", "task_aware_", "seed_", "task_names_", "tasks_learned_")
"""Facts of the stream a strategy records in ``setup``: not learned state (not saved with it)."""


class Penalty:
    """A penalty computed without autograd: its value, and how to add its gradient to ``.grad``.

    The loop adds ``value`` to the loss and, after ``backward`` and ``read_gradient``, calls
    ``add_gradient()``, which adds ∂value/∂θ. It replaces ``.grad`` by a new tensor rather than
    editing it in place, so a reference to the loss's own gradient (SI, RWalk) stays valid.
    Penalties of several strategies combine with ``Penalty.total``.
    """

    def __init__(self, value: torch.Tensor | float, add_gradient: Callable[[], None]) -> None:
        self.value = value
        self.writes = [add_gradient]

    def add_gradient(self) -> None:
        for write in self.writes:
            write()

    def __float__(self) -> float:
        return float(self.value)

    @staticmethod
    def total(terms: list[torch.Tensor | float | Penalty]) -> torch.Tensor | float | Penalty:
        """The sum of several strategies' penalties (values added, gradients added in order)."""
        value: torch.Tensor | float = 0.0
        for term in terms:
            value = value + penalty_value(term)
        manual = [t for t in terms if isinstance(t, Penalty)]
        if not manual:
            return value
        combined = Penalty(value, lambda: None)
        combined.writes = [write for t in manual for write in t.writes]
        return combined


def penalty_value(term: torch.Tensor | float | Penalty) -> torch.Tensor | float:
    """What a penalty adds to the loss."""
    return term.value if isinstance(term, Penalty) else term


class Strategy:
    """Plain training: cross-entropy on the current task, no protection of the past."""

    needs_task_identity = False
    """True for methods that route by task at test time (PNN, PackNet, CPG)."""
    search_space: dict[str, tuple] = {}
    """The values ``lifelong tune`` tries by default, hyper-parameter → values (its grid); empty
    for a method without one to tune (naive, joint, A-GEM: the memory is the protocol's budget)."""
    tasks_learned_ = 0
    """How many tasks the strategy has learned: the loop sets it after each task (and on resume)."""
    augmentation: Augment | None = None
    """The run's augmentation of training inputs, lent by the loop (``lend_augmentation``)."""

    @property
    def name(self) -> str:
        """The registry key (``@STRATEGIES.register``); an unregistered class's own name."""
        return STRATEGIES.name_of(type(self)) or type(self).__name__

    # ----------------------------------------------------------------- setup
    def setup(self, stream: Stream, config: Any) -> None:
        """Called once before training; records what the hooks need to know of the stream."""
        self._check_scenario(stream)
        self.record_stream(stream, config)
        self.task_aware_ = stream.task_aware
        self.tasks_learned_ = 0
        self.seed_ = int(getattr(config, "seed", 0))

    def extend(self, stream: Stream, config: Any) -> None:
        """Called instead of ``setup`` when this strategy, trained on the first
        ``tasks_learned_`` tasks, goes on to learn the rest of ``stream``: the stream must begin
        with the tasks it learned (same names, scenario and classes per task). Records the longer
        stream's facts, keeps every learned state (importances, memories, columns, RNG states) and
        the seed. A strategy that sizes something by the stream overrides this."""
        done = self.tasks_learned_
        self._check_scenario(stream)
        if stream.task_aware != self.task_aware_:
            raise LifelongError(
                f"the strategy learned a {'task' if self.task_aware_ else 'domain/class'}-incremental "
                f"stream but {stream.name!r} is {stream.scenario}-incremental; continue on the same scenario")
        if len(stream) <= done:
            raise LifelongError(f"the stream has {len(stream)} tasks but the strategy learned {done} "
                                "already; give the stream with the new tasks after the learned ones")
        names = [task.name for task in stream][:done]
        if self.task_names_ is not None and names != self.task_names_[:done]:
            raise LifelongError(
                f"the stream's first {done} tasks are {names} but the strategy learned "
                f"{self.task_names_[:done]}; give the learned tasks first, in order, then the new ones")
        mask = stream.class_mask()
        if mask is not None and not torch.equal(mask[:done].cpu(), self.class_mask_[:done].cpu()):
            raise LifelongError("the stream's first tasks hold other classes than the tasks the strategy "
                                "learned; give the learned tasks first, with the same classes")
        self.record_stream(stream, config)

    def record_stream(self, stream: Stream, config: Any) -> None:
        """What ``setup`` and ``extend`` both record of the stream (and the run's config)."""
        self.class_mask_ = stream.class_mask()
        self.num_tasks_ = len(stream)
        self.task_names_ = [task.name for task in stream]
        self.config = config

    def restore_setup(self, facts: dict[str, Any]) -> None:
        """Set the stream's facts ``setup`` records (``SETUP_ATTRS`` and ``config``) from saved
        values, for a strategy loaded without its stream (``load_learner``)."""
        for key, value in facts.items():
            setattr(self, key, value)

    def _check_scenario(self, stream: Stream) -> None:
        if self.needs_task_identity and not stream.task_aware:
            raise LifelongError(
                f"strategy {self.name!r} needs the task identity at test time to pick its "
                f"weights, but stream {stream.name!r} is {stream.scenario}-incremental; "
                "use scenario='task' (e.g. --scenario task)"
            )

    # ----------------------------------------------------------------- data
    def train_data(self, task: Task) -> Batch:
        """The tensors one epoch passes over (joint: every task seen; CPG: minus a held-out part)."""
        return task.x_train, task.y_train, task.train_ids().to(task.x_train.device)

    def epoch_repeats(self, task: Task) -> int:
        """How many times one epoch passes over ``train_data(task)`` (shuffled together)."""
        return 1

    def lend_augmentation(self, augment: Augment | None) -> None:
        """Called by the loop before training: the function that augments the run's training
        batches, or None when the run does not augment (kept for ``augmented``; not state)."""
        self.augmentation = augment

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """Stored inputs ``x`` augmented as the run's batches are (unchanged when it does not
        augment): replayed examples go through this."""
        return x if self.augmentation is None else self.augmentation(x)

    # ----------------------------------------------------------------- outputs
    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """The model's outputs; overridden only where they depend on the task (PNN, PackNet)."""
        return model(x)

    def logits(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``predict`` with the multi-head mask of task-incremental streams applied."""
        return mask_logits(self.predict(model, x, task_ids), task_ids, self.class_mask_)

    # ----------------------------------------------------------------- the step
    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        return model

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        """How the batch is scored, given the model's ``outputs`` for it (``predict``):
        cross-entropy on the task-masked outputs."""
        _, y, t = batch
        return F.cross_entropy(mask_logits(outputs, t, self.class_mask_), y)

    def extra_loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor,
                   task: Task) -> torch.Tensor | float:
        """Terms added to ``loss`` that depend on the batch (LwF's distillation). Default: none."""
        return 0.0

    def penalty(self, model: nn.Module) -> torch.Tensor | float | Penalty:
        """A regulariser on the weights, added by the loop: a differentiable term, or a ``Penalty``
        whose gradient the loop adds after ``backward`` (``QuadraticPenalty``: less memory
        traffic than autograd)."""
        return 0.0

    def after_forward(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> None:
        """After the forward pass, with the batch and its (detached) outputs: fill memories here."""

    def read_gradient(self, model: nn.Module) -> None:
        """After backward, ``.grad`` holds the gradient of the loss alone (no penalty's yet): read it
        here (SI, RWalk); do not edit it."""

    def after_backward(self, model: nn.Module) -> None:
        """Edit the gradient (loss and penalties) before the optimiser step."""

    def after_step(self, model: nn.Module) -> None:
        pass

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        """After the task's epochs: importance, anchors, memories, pruning. ``train`` is the loop's
        own training (``TrainFunction``) for methods that retrain inside a task."""

    def artifacts(self, model: nn.Module, task: Task) -> dict[str, bytes]:
        """Files (name → bytes) to write into the run directory after ``task``, e.g. a PNG
        grid of generated samples. Default: none."""
        return {}

    def restore_model(self, model: nn.Module) -> nn.Module:
        """On resume: after ``load_state_dict`` and before the model's weights are loaded,
        rebuild any structure the strategy grew (PNN columns, CPG units). Default: unchanged."""
        return model

    # ----------------------------------------------------------------- state
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's parameters and their values (scikit-learn's ``get_params`` rule):
        each parameter of ``__init__`` is kept in the attribute of the same name."""
        params = inspect.signature(type(self).__init__).parameters
        names = [k for k, p in params.items() if k != "self"
                 and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        missing = [k for k in names if not hasattr(self, k)]
        if missing:
            raise TypeError(f"{type(self).__name__} keeps no attribute {missing[0]!r} for its constructor "
                            f"parameter of that name; store each hyper-parameter as self.{missing[0]}")
        return {k: getattr(self, k) for k in names}

    def learned_state(self) -> dict[str, Any]:
        """The learned state: public attributes ending in ``_`` but the stream's facts."""
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and k not in SETUP_ATTRS}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, json) — the learned state, ready for safetensors and JSON."""
        tensors: dict[str, torch.Tensor] = {}
        structure = {k: flatten_state(v, k, tensors) for k, v in self.learned_state().items()}
        storages: set[int] = set()
        for key, tensor in tensors.items():  # safetensors refuses tensors that share memory
            ptr = tensor.untyped_storage().data_ptr()
            if ptr in storages:
                tensors[key] = tensor.clone()
            storages.add(ptr)
        return tensors, structure

    def load_state_dict(self, tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> None:
        for key, value in structure.items():
            setattr(self, key, unflatten_state(value, tensors))

    def memory_bytes(self) -> int:
        """Bytes of learned state kept between tasks (examples, importances, old weights)."""
        tensors: dict[str, torch.Tensor] = {}
        for key, value in self.learned_state().items():
            flatten_state(value, key, tensors)
        unique = {t.untyped_storage().data_ptr(): t for t in tensors.values()}
        return int(sum(t.numel() * t.element_size() for t in unique.values()))


def flatten_state(value: Any, path: str, out: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON with its tensors moved into ``out`` under their paths."""
    if torch.is_tensor(value):
        out[path] = value.detach()
        return {"__tensor__": path}
    if isinstance(value, dict):
        return {"__dict__": {str(k): flatten_state(v, f"{path}/{k}", out) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"__list__": [flatten_state(v, f"{path}/{i}", out) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"cannot save state {path!r} of type {type(value).__name__}; keep learned state as "
        "tensors, dicts/lists of tensors or JSON scalars, or override state_dict()"
    )


def unflatten_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``flatten_state``."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {k: unflatten_state(v, tensors) for k, v in value["__dict__"].items()}
        if "__list__" in value:
            return [unflatten_state(v, tensors) for v in value["__list__"]]
    return value
