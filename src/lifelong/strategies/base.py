"""The strategy contract: hyper-parameters in the constructor, a few no-op hooks, learned state.

The training loop (``lifelong.train``) owns the optimiser and the batches and knows no method by
name; a strategy only reacts through these hooks. Every hook is a no-op by default, so a method
overrides only what it needs:

=================================  ==============================================================
``setup(stream, config)``          once per run: remembers the stream's class mask and task count
``extend(stream, config)``         instead of ``setup`` when a trained strategy goes on to the
                                   later tasks of a longer stream (``fit(..., first_task=k)``)
``train_data(task)``               the tensors the loop iterates for this task (joint: all seen)
``epoch_repeats(task)``            passes over ``train_data`` per epoch (generative replay: one
                                   per task seen); default 1
``before_task(model, task)``       grow a column/head, snapshot θ_start; returns the model
``loss(model, batch, task)``       cross-entropy on the (masked) logits + ``penalty(model)``
``after_backward(model)``          edit gradients (GEM/A-GEM projection, PackNet masks, the
                                   quadratic penalty's gradient)
``after_step(model)``              path integrals (SI, RWalk)
``after_task(model, task)``        importance, anchors, memories, pruning, freezing
``predict(model, x, task_ids)``    only where the output depends on the task (PNN, PackNet)
``artifacts(model, task)``         files for the run directory after a task (sample grids)
``restore_model(model)``           on resume, rebuild grown structure before loading weights
=================================  ==============================================================

Learned state lives in attributes whose names end in ``_`` (scikit-learn's rule). Tensors,
dicts and lists of tensors, and JSON scalars there are saved and restored by ``state_dict`` /
``load_state_dict`` without pickling; a strategy holding anything else overrides both.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.streams import Stream, Task
from ..models.heads import mask_logits

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(inputs, labels, task ids) — task ids are per example, so mixed batches work."""

_SETUP_ATTRS = ("class_mask_", "num_tasks_", "task_aware_", "seed_", "task_names_", "tasks_learned_")


class Strategy:
    """Plain training: cross-entropy on the current task, no protection of the past."""

    name = "base"
    needs_task_identity = False
    """True for methods that route by task at test time (PNN, PackNet, CPG)."""

    # ----------------------------------------------------------------- setup
    def setup(self, stream: Stream, config: Any) -> None:
        """Called once before training; records what the hooks need to know of the stream."""
        self._check_scenario(stream)
        self._record_stream(stream, config)
        self.task_aware_ = stream.task_aware
        self.tasks_learned_ = 0
        self.seed_ = int(getattr(config, "seed", 0))

    def extend(self, stream: Stream, config: Any) -> None:
        """Called instead of ``setup`` when this strategy, trained on the first
        ``tasks_learned_`` tasks, goes on to learn the rest of ``stream``: the stream must begin
        with the tasks it learned (same names, scenario and classes per task). Records the longer
        stream's facts, keeps every learned state (importances, memories, columns, RNG states) and
        the seed. A strategy that sizes something by the stream overrides this."""
        from ..errors import LifelongError

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
        self._record_stream(stream, config)

    def _record_stream(self, stream: Stream, config: Any) -> None:
        """What ``setup`` and ``extend`` both record of the stream (and the run's config)."""
        self.class_mask_ = stream.class_mask()
        self.num_tasks_ = len(stream)
        self.task_names_ = [task.name for task in stream]
        self.config = config

    def _check_scenario(self, stream: Stream) -> None:
        from ..errors import LifelongError

        if self.needs_task_identity and not stream.task_aware:
            raise LifelongError(
                f"strategy {self.name!r} needs the task identity at test time to pick its "
                f"weights, but stream {stream.name!r} is {stream.scenario}-incremental; "
                "use scenario='task' (e.g. --scenario task)"
            )

    # ----------------------------------------------------------------- hooks
    def train_data(self, task: Task) -> Batch:
        return task.x_train, task.y_train, task.train_ids().to(task.x_train.device)

    def epoch_repeats(self, task: Task) -> int:
        """How many times one epoch passes over ``train_data(task)`` (shuffled together)."""
        return 1

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        return model

    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return model(x)

    def logits(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``predict`` with the multi-head mask of task-incremental streams applied."""
        return mask_logits(self.predict(model, x, task_ids), task_ids, self.class_mask_)

    def loss(self, model: nn.Module, batch: Batch, task: Task) -> torch.Tensor:
        x, y, t = batch
        return F.cross_entropy(self.logits(model, x, t), y) + self.penalty(model)

    def penalty(self, model: nn.Module) -> torch.Tensor | float:
        """A regulariser added to the loss: a differentiable term, or a plain value whose
        gradient ``after_backward`` adds to ``.grad`` (``QuadraticPenalty``: less memory traffic)."""
        return 0.0

    def after_backward(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module) -> None:
        pass

    def after_task(self, model: nn.Module, task: Task) -> None:
        pass

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
        """The constructor's arguments (public attributes not ending in ``_``)."""
        return {
            k: v for k, v in vars(self).items()
            if not k.endswith("_") and not k.startswith("_") and k != "config"
        }

    def _learned(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and k not in _SETUP_ATTRS}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, json) — the learned state, ready for safetensors and JSON."""
        tensors: dict[str, torch.Tensor] = {}
        structure = {k: _flatten(v, k, tensors) for k, v in self._learned().items()}
        storages: set[int] = set()
        for key, tensor in tensors.items():  # safetensors refuses tensors that share memory
            ptr = tensor.untyped_storage().data_ptr()
            if ptr in storages:
                tensors[key] = tensor.clone()
            storages.add(ptr)
        return tensors, structure

    def load_state_dict(self, tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> None:
        for key, value in structure.items():
            setattr(self, key, _unflatten(value, tensors))

    def memory_bytes(self) -> int:
        """Bytes of learned state kept between tasks (examples, importances, old weights)."""
        tensors: dict[str, torch.Tensor] = {}
        for key, value in self._learned().items():
            _flatten(value, key, tensors)
        unique = {t.untyped_storage().data_ptr(): t for t in tensors.values()}
        return int(sum(t.numel() * t.element_size() for t in unique.values()))


def _flatten(value: Any, path: str, out: dict[str, torch.Tensor]) -> Any:
    if torch.is_tensor(value):
        out[path] = value.detach()
        return {"__tensor__": path}
    if isinstance(value, dict):
        return {"__dict__": {str(k): _flatten(v, f"{path}/{k}", out) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_flatten(v, f"{path}/{i}", out) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"cannot save state {path!r} of type {type(value).__name__}; keep learned state as "
        "tensors, dicts/lists of tensors or JSON scalars, or override state_dict()"
    )


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {k: _unflatten(v, tensors) for k, v in value["__dict__"].items()}
        if "__list__" in value:
            return [_unflatten(v, tensors) for v in value["__list__"]]
    return value
