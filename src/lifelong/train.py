"""The one training loop. It owns the optimiser and the batches and knows no method by name."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from .batches import iterate_batches
from .config import TrainConfig
from .data.augment import Augment, black, check_images, random_crop_flip
from .data.streams import Stream, Task
from .errors import LifelongError
from .evaluate import evaluate_both, evaluate_tasks
from .metrics import all_metrics
from .models.modes import eval_mode
from .strategies.base import Batch, Penalty, Strategy, TrainFunction, penalty_value

Progress = Callable[[dict[str, Any]], None]
"""Receives events: {"event": "task_start"|"epoch_end"|"task_end", "task", "epoch", ...}."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LifelongError("device 'cuda' asked for, but no CUDA GPU is visible; use --device cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise LifelongError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) "
                            "are visible; use --device cuda:0")
    return chosen


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LifelongError("the model has no trainable parameters (all frozen or none); nothing to train")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def train_epoch(
    model: nn.Module,
    strategy: Strategy,
    optimizer: torch.optim.Optimizer,
    task: Task,
    data: Batch,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
) -> float:
    """One pass over ``data`` through the strategy's hooks; returns the mean loss.

    A step (``strategies.base`` has the contract): the forward pass, the strategy's ``loss`` and
    ``extra_loss`` of the batch given the outputs, plus its ``penalty`` — added here, so no
    override can drop it; ``after_forward`` with the outputs; backward; ``read_gradient``; the
    penalty's own gradient; ``after_backward`` (gradient edits); the optimiser step; ``after_step``.
    With ``augment`` the forward pass and the losses see the augmented batch and ``after_forward``
    the batch as drawn (what memories store).
    """
    model.train()
    losses = []
    step = loss_function(strategy)
    # hooks the strategy leaves as the base class's no-ops are not called (nor their arguments made)
    after_forward, read_gradient, after_backward, after_step = (
        _overridden(strategy, name) for name in ("after_forward", "read_gradient", "after_backward",
                                                 "after_step"))
    for batch in iterate_batches(data, batch_size, generator, strategy.epoch_repeats(task)):
        seen = batch if augment is None else (augment(batch[0]), batch[1], batch[2])
        loss, outputs, penalty = step(model, seen, task)
        if after_forward is not None:
            after_forward(model, batch, outputs.detach(), task)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if read_gradient is not None:
            read_gradient(model)
        if type(penalty) is not float and isinstance(penalty, Penalty):
            penalty.add_gradient()
        if after_backward is not None:
            after_backward(model)
        optimizer.step()
        if after_step is not None:
            after_step(model)
        losses.append(loss.detach())
    # summed once, in step order (the same float32 sum as a running total; no op and no sync a step)
    return float(sum(losses)) / len(losses) if losses else 0.0


def _overridden(strategy: Strategy, name: str) -> Callable[..., Any] | None:
    """The strategy's bound hook ``name``, or None when it is ``Strategy``'s own no-op."""
    hook = getattr(strategy, name)
    return None if getattr(hook, "__func__", None) is getattr(Strategy, name) else hook


def _is_zero(term: Any) -> bool:
    """A term that adds nothing: the Python 0.0 (or 0) the base hooks return. Adding it to a
    tensor would cost an operation forward and backward and change no value."""
    return type(term) in (float, int) and term == 0


def step_loss(model: nn.Module, strategy: Strategy, batch: Batch, task: Task
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float | Penalty]:
    """What one step minimises: ``loss + extra_loss + penalty`` given the batch's outputs.
    Returns (that loss, the outputs, the penalty — whose gradient a ``Penalty`` adds itself)."""
    return loss_function(strategy)(model, batch, task)


def loss_function(strategy: Strategy) -> Callable[[nn.Module, Batch, Task], tuple[
        torch.Tensor, torch.Tensor, torch.Tensor | float | Penalty]]:
    """``step_loss`` for ``strategy``, made once an epoch: ``predict``, ``extra_loss`` and
    ``penalty`` left as ``Strategy``'s own are not called (the model's outputs, nothing added)."""
    predict, extra_loss, penalty_of = (_overridden(strategy, name)
                                       for name in ("predict", "extra_loss", "penalty"))
    score = strategy.loss

    def step(model: nn.Module, batch: Batch, task: Task):  # type: ignore[no-untyped-def]
        outputs = model(batch[0]) if predict is None else predict(model, batch[0], batch[2])
        loss = score(model, batch, outputs, task)
        if extra_loss is not None:
            extra = extra_loss(model, batch, outputs, task)
            if not _is_zero(extra):
                loss = loss + extra
        penalty = 0.0 if penalty_of is None else penalty_of(model)
        value = penalty_value(penalty)
        return (loss if _is_zero(value) else loss + value), outputs, penalty

    return step


def train_function(model: nn.Module, strategy: Strategy, task: Task, config: TrainConfig,
                   augmentation: Callable[[torch.Generator], Augment] | None = None) -> TrainFunction:
    """The loop's own training, lent to ``after_task`` (PackNet's and CPG's retraining): epochs
    over ``data`` through the strategy's hooks with a fresh optimiser, batches (and, with an
    ``augmentation`` made from a generator, their crops and flips) seeded by ``seed`` (``epochs``
    None: the run's epochs per task)."""

    def train(data: Batch, epochs: int | None, seed: int) -> None:
        optimizer = make_optimizer(model, config)
        generator = torch.Generator().manual_seed(seed)
        crop = augmentation(generator) if augmentation is not None else None
        for _ in range(config.epochs if epochs is None else epochs):
            train_epoch(model, strategy, optimizer, task, data, config.batch_size, generator, crop)

    return train


def model_size(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters()) + list(model.buffers())
    return {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "bytes": int(sum(p.numel() * p.element_size() for p in params)),
    }


@dataclass
class StreamProgress:
    """What a run has produced so far; enough to resume after the last finished task."""

    initial_accuracy: list[float] = field(default_factory=list)
    accuracy_matrix: list[list[float]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    task_times: list[float] = field(default_factory=list)
    memory_bytes: list[int] = field(default_factory=list)
    model_sizes: list[dict[str, int]] = field(default_factory=list)
    task_il_initial: list[float] = field(default_factory=list)
    task_il_matrix: list[list[float]] = field(default_factory=list)
    """A class-incremental run's accuracies with the outputs masked to each task's classes (the
    task identity given at test time), from the same forward passes; empty for other runs."""

    @property
    def tasks_done(self) -> int:
        return len(self.accuracy_matrix)

    def records_task_il(self) -> bool:
        """Whether the task-incremental matrix is being recorded (a checkpoint of an older
        lifelong, resumed, has none and goes on without it)."""
        return bool(self.task_il_initial) and len(self.task_il_matrix) == self.tasks_done


def _param_ids(model: nn.Module) -> list[int]:
    return [id(p) for p in model.parameters() if p.requires_grad]


def run_stream(
    stream: Stream,
    model: nn.Module,
    strategy: Strategy,
    config: TrainConfig,
    progress: Progress | None = None,
    on_task_end: Callable[[nn.Module, torch.optim.Optimizer, StreamProgress], None] | None = None,
    resume: StreamProgress | None = None,
    generator: torch.Generator | None = None,
    optimizer_state: dict[str, Any] | None = None,
    first_task: int = 0,
) -> tuple[nn.Module, StreamProgress]:
    """Train ``model`` on every task of ``stream`` in order under ``strategy``.

    Before training and after every task, every task of the stream is evaluated (the initial
    row R0 and the T×T matrix R); with ``config.eval_every_epoch`` the tasks seen so far are
    also evaluated after each epoch (the learning curve). Returns the (possibly grown) model
    and the progress record. ``resume`` continues after its last finished task; the caller
    restores model, strategy and RNG states first and passes the batch ``generator`` and, when
    the optimiser is kept across tasks, its ``optimizer_state`` (see ``lifelong.checkpoint``).

    ``first_task`` = k > 0 goes on with a strategy (and model) trained on the stream's first k
    tasks (``strategy.extend``): only tasks k… are trained, the initial row is the accuracy of the
    learner as given, and the matrix has a row per new task.
    """
    device = resolve_device(config.device)
    model = model.to(device)
    tasks = [_task_on(task, device) for task in stream.tasks]
    notify = progress or (lambda event: None)
    gen = generator or torch.Generator().manual_seed(config.seed)
    state = resume or StreamProgress()
    if resume is not None:  # the checkpoint has set the strategy up and loaded its state
        strategy.tasks_learned_ = state.tasks_done
    elif first_task:
        strategy.extend(stream, config)
    else:
        strategy.setup(stream, config)
    check_model_fits(model, strategy, tasks, stream.num_classes)
    augmentation = None
    if config.augments(stream.augment):
        check_images(tuple(stream.input_shape), f"stream {stream.name!r}'s inputs")
        augmentation = partial(random_crop_flip, fill=black(stream.meta))
    augment = augmentation(gen) if augmentation is not None else None
    strategy.lend_augmentation(augment)
    if resume is None and stream.scenario == "class":
        state.initial_accuracy, state.task_il_initial = evaluate_both(model, strategy, tasks)
    elif resume is None:
        state.initial_accuracy = evaluate_tasks(model, strategy, tasks)
    task_il = state.records_task_il()
    optimizer, ids = None, []
    if resume is not None and optimizer_state is not None and not config.fresh_optimizer:
        optimizer, ids = make_optimizer(model, config), _param_ids(model)
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise LifelongError(f"saved optimiser state does not fit the model: {exc}") from None
    for task in tasks[first_task + state.tasks_done :]:
        notify({"event": "task_start", "task": task.id, "name": task.name, "tasks": len(tasks)})
        start = time.perf_counter()
        model = strategy.before_task(model, task).to(device)
        if optimizer is None or config.fresh_optimizer or _param_ids(model) != ids:
            optimizer = make_optimizer(model, config)
            ids = _param_ids(model)
        data = strategy.train_data(task)
        for epoch in range(config.epochs):
            loss = train_epoch(model, strategy, optimizer, task, data, config.batch_size, gen, augment)
            if not math.isfinite(loss):  # the epoch's one sync, already paid for by float(total)
                raise diverged(task, epoch + 1, loss, config, strategy, state.tasks_done,
                               saved=on_task_end is not None)
            event = {"event": "epoch_end", "task": task.id, "epoch": epoch + 1,
                     "epochs": config.epochs, "loss": loss}
            if config.eval_every_epoch:
                seen = evaluate_tasks(model, strategy, tasks[: task.id + 1])
                point = {"task": task.id, "epoch": epoch + 1, "loss": loss,
                         "seen_mean": sum(seen) / len(seen), "accuracy": seen}
                state.curve.append(point)
                event["seen_mean"] = point["seen_mean"]
            notify(event)
        strategy.after_task(model, task, train_function(model, strategy, task, config, augmentation))
        strategy.tasks_learned_ = task.id + 1
        state.task_times.append(time.perf_counter() - start)
        if task_il:
            row, masked = evaluate_both(model, strategy, tasks)
            state.task_il_matrix.append(masked)
        else:
            row = evaluate_tasks(model, strategy, tasks)
        state.accuracy_matrix.append(row)
        state.memory_bytes.append(strategy.memory_bytes())
        state.model_sizes.append(model_size(model))
        notify({"event": "task_end", "task": task.id, "row": state.accuracy_matrix[-1]})
        if on_task_end is not None:
            on_task_end(model, optimizer, state)
    return model, state


def diverged(task: Task, epoch: int, loss: float, config: TrainConfig, strategy: Strategy,
             done: int, saved: bool) -> LifelongError:
    """The one line for a run whose loss became NaN or infinite: where, the likely cause, what is kept."""
    try:
        params = strategy.hyperparameters()
    except TypeError:
        params = {}
    flat = {f"{k}.{j}": w for k, v in params.items() if isinstance(v, dict) for j, w in v.items()}
    flat.update({k: v for k, v in params.items() if not isinstance(v, dict)})
    weights = ", ".join(f"{k}={v:g}" for k, v in flat.items()
                        if k.split(".")[-1] == "lam" and isinstance(v, (int, float)))
    cause = f"the learning rate (lr={config.lr:g})" + (f" or the penalty weight λ ({weights})" if weights
                                                        else "")
    kept = ("no task had finished before it" if not done else f"kept: the checkpoint after task {done}"
            if saved else f"{done} task(s) had finished before it (nothing saved: no output folder)")
    return LifelongError(f"task {task.name!r} diverged in epoch {epoch}: the mean loss is {loss}; "
                         f"{cause} is likely too large — lower it and rerun; {kept}")


@torch.no_grad()
def check_model_fits(model: nn.Module, strategy: Strategy, tasks: list[Task], num_classes: int) -> None:
    """One forward pass on two test examples of each task: a model that does not take the
    stream's inputs, returns something else than one tensor of logits, or gives another number of
    outputs than the stream has classes, is refused in one line before any training (not as a
    shape error deep in torch)."""
    with eval_mode(model):
        for task in tasks:
            x = task.x_test[:2]
            try:
                out = model(x)
                if torch.is_tensor(out):
                    out = strategy.logits(model, x, task.test_ids()[:2].to(x.device))
            except (RuntimeError, IndexError, ValueError, TypeError, AttributeError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise LifelongError(f"the model does not take task {task.name!r}'s inputs of shape "
                                    f"{tuple(x.shape[1:])}: {first}") from None
            if not torch.is_tensor(out):
                raise LifelongError(f"the model returns a {type(out).__name__}; lifelong needs one tensor "
                                    "of logits (wrap the model so forward returns only the logits)")
            if out.dim() != 2 or out.shape[1] != num_classes:
                raise LifelongError(f"the model gives outputs of shape {tuple(out.shape[1:])} per example, "
                                    f"but the stream has {num_classes} classes: give it exactly "
                                    f"{num_classes} outputs")


def summarize(state: StreamProgress) -> dict[str, float]:
    """Every registered metric the run's own records give (not those needing a reference run)."""
    return all_metrics(state.accuracy_matrix, state.initial_accuracy, curve=state.curve,
                       task_matrix=state.task_il_matrix if state.records_task_il() else None)


def _task_on(task: Task, device: torch.device) -> Task:
    if task.x_train.device == device:
        return task
    return Task(task.id, task.name, task.x_train.to(device), task.y_train.to(device),
                task.x_test.to(device), task.y_test.to(device), task.classes)
