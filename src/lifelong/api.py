"""The Python API: ``fit`` objects you built, or ``run`` a config of names into a directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import nn

from .config import RunConfig, TrainConfig, check_out_folder, check_writable, make_train_config
from .data.benchmarks import make_benchmark
from .data.streams import Stream
from .errors import LifelongError
from .metrics import continued_metrics
from .models import make_model
from .results import (
    RunResult,
    WriteError,
    atomic_write,
    environment,
    load_result,
    save_result,
    validate_result,
)
from .strategies import Strategy, make_strategy, resolved_hyperparameters
from .train import Progress, resolve_device, run_stream, summarize


def fit(
    stream: Stream,
    model: nn.Module,
    strategy: Strategy,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    run_config: dict | None = None,
    run_dir: str | Path | None = None,
    checkpoint: bool = False,
    first_task: int = 0,
) -> tuple[nn.Module, RunResult]:
    """Train ``model`` on ``stream`` under ``strategy``; returns the model and its result.

    ``strategy`` may be a name and ``config`` a dict of train options. ``config.seed`` seeds the
    batch order; the model's initial weights, dropout and any sampling use torch's global RNG,
    which is the caller's: call ``torch.manual_seed`` first for identical numbers (``run`` does).

    With ``run_dir`` and ``checkpoint=True`` a checkpoint is written after every task and a
    checkpoint already there (for the same ``run_config``; without one, for the same train
    options, strategy, hyper-parameters, data and initial model) is resumed from its last task;
    the final numbers equal those of an uninterrupted run.

    ``first_task`` = k goes on learning: ``model`` and ``strategy`` were trained on k tasks (by an
    earlier ``fit``, or loaded with ``load_learner``) and ``stream`` holds those k tasks first,
    then the new ones. Only the new tasks are trained, under the strategy's learned state; the
    optimiser starts afresh. The result's ``initial_accuracy`` is the learner as given, its matrix
    has a row per new task, and its metrics are ``metrics.continued_metrics``.

    >>> stream = make_benchmark("rotated-mnist")
    >>> model = make_model("mlp", stream.input_shape, stream.num_classes)
    >>> model, result = fit(stream, model, make_strategy("naive"))   # doctest: +SKIP
    >>> result.metrics["acc"]                                           # doctest: +SKIP
    """
    from . import checkpoint as ckpt

    stream, model, strategy, config = _checked_arguments(stream, model, strategy, config)
    _check_first_task(strategy, stream, first_task, checkpoint and run_dir is not None)
    if run_config is None and checkpoint and run_dir is not None:
        run_config = _fingerprint(stream, model, strategy, config)
    run_config = run_config or {"train": RunConfig(train=config).to_dict()["train"],
                                "strategy": strategy.name}
    started = time.perf_counter()
    resumed = None
    if checkpoint and run_dir is not None and ckpt.has_checkpoint(run_dir):
        resumed = ckpt.restore(run_dir, run_config, stream, model, strategy, config)
        model = resumed.model
    generator = resumed.generator if resumed else torch.Generator().manual_seed(config.seed)
    before = resumed.elapsed if resumed else 0.0
    extra = {"resumed_after_task": resumed.progress.tasks_done} if resumed else {}
    extra["stream"] = stream.name  # named by its data: split-cifar10, rotated-fashion-mnist
    extra["scenario"] = stream.scenario
    if first_task:
        extra["first_task"] = first_task

    def on_task_end(model: nn.Module, optimizer, state) -> None:
        task = stream.tasks[first_task + state.tasks_done - 1]
        try:
            for name, data in strategy.artifacts(model, task).items():
                atomic_write(Path(run_dir) / name, data)
            if checkpoint:
                ckpt.save_checkpoint(run_dir, run_config, model, optimizer, strategy, state,
                                     generator, before + time.perf_counter() - started)
        except WriteError as exc:
            kept = (f"the checkpoint after task {state.tasks_done - 1} is kept (a rerun resumes there)"
                    if checkpoint and state.tasks_done > 1 else "no checkpoint was kept")
            raise WriteError(f"{str(exc).partition(';')[0]} after task {task.name!r}; {kept}") from None

    model, state = run_stream(
        stream, model, strategy, config, progress=progress,
        on_task_end=on_task_end if run_dir is not None else None,
        resume=resumed.progress if resumed else None, generator=generator,
        optimizer_state=resumed.optimizer_state if resumed else None, first_task=first_task,
    )
    device = str(resolve_device(config.device))
    result = RunResult(
        run_id=(RunConfig.from_dict(run_config).run_id() if "benchmark" in run_config else "adhoc"),
        config=run_config,
        task_names=[t.name for t in stream.tasks],
        initial_accuracy=state.initial_accuracy,
        accuracy_matrix=state.accuracy_matrix,
        metrics=(continued_metrics(state.accuracy_matrix, state.initial_accuracy, first_task)
                 if first_task else summarize(state)),
        curve=state.curve,
        task_times=state.task_times,
        wall_time=before + time.perf_counter() - started,
        memory_bytes=state.memory_bytes,
        model_sizes=state.model_sizes,
        environment=environment(device, config.seed),
        extra=extra,
        augment=config.augments(stream.augment),
        task_il_initial_accuracy=state.task_il_initial if state.records_task_il() else [],
        task_il_accuracy_matrix=state.task_il_matrix if state.records_task_il() else [],
    )
    return model, result


def _fingerprint(stream: Stream, model: nn.Module, strategy: Strategy, config: TrainConfig) -> dict:
    """What a checkpoint of objects (not a config of names) must match to be resumed: the train
    options, the strategy and its hyper-parameters, and digests of the stream's tensors and of the
    model's names, shapes and initial values — so another data set, model or λ never resumes it."""
    def add(digest, label: str, x: torch.Tensor) -> None:
        digest.update(f"{label}{x.dtype}{tuple(x.shape)}".encode())
        digest.update(x.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())

    data, weights = hashlib.sha256(), hashlib.sha256()
    for task in stream.tasks:
        for x in (task.x_train, task.y_train, task.x_test, task.y_test):
            add(data, f"{task.id}:{task.name}:{task.classes}", x)
    for name, value in model.state_dict().items():
        add(weights, name, value)
    options = json.loads(json.dumps(strategy.hyperparameters(), default=str))
    return {"train": RunConfig(train=config).to_dict()["train"], "strategy": strategy.name,
            "strategy_options": options, "model": type(model).__name__,
            "stream_sha256": data.hexdigest(), "model_sha256": weights.hexdigest()}


def _check_first_task(strategy: Strategy, stream: Stream, first_task: int, checkpoint: bool) -> None:
    """A trained strategy goes on only from the task after its last one (a fresh run would
    silently keep its old penalties, memories or columns); a fresh one starts at task 0."""
    learned = getattr(strategy, "tasks_learned_", 0)
    if isinstance(first_task, bool) or not isinstance(first_task, int) or first_task < 0:
        raise LifelongError(f"fit: first_task must be a task index (an integer ≥ 0), got {first_task!r}")
    if learned and first_task == 0:
        raise LifelongError(
            f"fit: this {strategy.name} strategy has learned {learned} task(s) already; pass "
            f"first_task={learned} to go on learning the stream's later tasks, or make a fresh strategy "
            "(make_strategy) for a new run")
    if first_task != learned:
        raise LifelongError(
            f"fit: first_task={first_task}, but the strategy has learned {learned} task(s); "
            f"pass first_task={learned} with a stream that holds those tasks first")
    if first_task and checkpoint:
        raise LifelongError("fit: checkpoints are for whole runs; going on from first_task > 0 takes "
                            "checkpoint=False (save the learner afterwards with save_learner)")
    if first_task >= len(stream):
        raise LifelongError(f"fit: first_task={first_task}, but the stream has only {len(stream)} tasks; "
                            "give a stream with the learned tasks first, then the new ones")


def _checked_arguments(stream, model, strategy, config):
    """``fit``'s arguments, or a one-line error naming the one of the wrong kind. A strategy may be
    given by name and a config as a dict of train options."""
    if isinstance(strategy, str):
        strategy = make_strategy(strategy)
    config = make_train_config(config) if isinstance(config, dict) else config or TrainConfig()
    for name, value, kind in (("stream", stream, Stream), ("model", model, nn.Module),
                              ("strategy", strategy, Strategy), ("config", config, TrainConfig)):
        if not isinstance(value, kind):
            raise LifelongError(f"fit: {name} must be a {kind.__name__}, got {type(value).__name__}")
    return stream, model, strategy, config


def build(config: RunConfig, stream: Stream | None = None) -> tuple[Stream, nn.Module, Strategy]:
    """The stream, a freshly initialised model (seeded) and the strategy a config names."""
    stream = stream or make_benchmark(config.benchmark, **config.benchmark_options)
    strategy = make_strategy(config.strategy, **config.strategy_options)
    torch.manual_seed(config.train.seed)
    model = make_model(config.model, stream.input_shape, stream.num_classes, **config.model_options)
    return stream, model, strategy


def run(
    config: RunConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    reuse: bool = True,
    stream: Stream | None = None,
) -> RunResult:
    """Run a config of names; with ``out`` the result goes to ``out/<run_id>/``.

    A finished run found there (same config, same id) is loaded instead of retrained, and an
    interrupted one resumes from its last checkpoint (``reuse=False`` starts afresh). ``stream``
    may pass the already built stream of ``config`` (saves rebuilding it for every run).
    """
    from . import checkpoint as ckpt

    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    if not isinstance(config, RunConfig):
        raise LifelongError(f"run: config must be a RunConfig or a dict, got {type(config).__name__}")
    built_by = None if stream is None else stream.benchmark or stream.name
    if stream is not None and built_by != config.benchmark:
        raise LifelongError(f"run: the stream given is of benchmark {built_by!r} but the config names "
                            f"{config.benchmark!r}; pass make_benchmark's stream of it (or none)")
    if out is not None:
        check_out_folder(out)
    config = dataclasses.replace(
        config, strategy_options=resolved_hyperparameters(config.strategy, **config.strategy_options))
    run_dir = Path(out) / config.run_id() if out is not None else None
    if run_dir is not None and (run_dir / "result.json").exists() and reuse:
        return validate_result(load_result(run_dir), config.to_dict(), run_dir)
    if out is not None:
        check_writable(out)  # before any training, not at the first checkpoint
    if run_dir is not None and not reuse:
        ckpt.remove_checkpoint(run_dir)
    built_stream, model, strategy = build(config, stream)
    _, result = fit(built_stream, model, strategy, config.train, progress, config.to_dict(),
                    run_dir, checkpoint=run_dir is not None)
    if run_dir is not None:
        save_result(result, run_dir)
        ckpt.remove_checkpoint(run_dir)
    return result
