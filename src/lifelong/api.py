"""The Python API: ``fit`` objects you built, or ``run`` a config of names into a directory."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from .config import RunConfig, TrainConfig
from .data.benchmarks import make_benchmark
from .data.streams import Stream
from .models import make_model
from .results import RunResult, atomic_write, environment, load_result, save_result
from .strategies import Strategy, make_strategy
from .train import Progress, resolve_device, run_stream, summarize


def fit(
    stream: Stream,
    model: nn.Module,
    strategy: Strategy,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    run_config: dict | None = None,
    run_dir: str | Path | None = None,
) -> tuple[nn.Module, RunResult]:
    """Train ``model`` on ``stream`` under ``strategy``; returns the model and its result.

    >>> stream = make_benchmark("rotated-mnist")
    >>> model = make_model("mlp", stream.input_shape, stream.num_classes)
    >>> model, result = fit(stream, model, make_strategy("naive"))   # doctest: +SKIP
    >>> result.metrics["acc"]                                           # doctest: +SKIP
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    def write_artifacts(model: nn.Module, optimizer, state) -> None:
        task = stream.tasks[state.tasks_done - 1]
        for name, data in strategy.artifacts(model, task).items():
            atomic_write(Path(run_dir) / name, data)

    model, state = run_stream(stream, model, strategy, config, progress=progress,
                              on_task_end=write_artifacts if run_dir is not None else None)
    device = str(resolve_device(config.device))
    result = RunResult(
        run_id=(RunConfig.from_dict(run_config).run_id() if run_config else "adhoc"),
        config=run_config or {"train": RunConfig(train=config).to_dict()["train"],
                              "strategy": strategy.name},
        task_names=[t.name for t in stream.tasks],
        initial_accuracy=state.initial_accuracy,
        accuracy_matrix=state.accuracy_matrix,
        metrics=summarize(state),
        curve=state.curve,
        task_times=state.task_times,
        wall_time=time.perf_counter() - started,
        memory_bytes=state.memory_bytes,
        model_sizes=state.model_sizes,
        environment=environment(device, config.seed),
    )
    return model, result


def build(config: RunConfig) -> tuple[Stream, nn.Module, Strategy]:
    """The stream, a freshly initialised model (seeded) and the strategy a config names."""
    stream = make_benchmark(config.benchmark, **config.benchmark_options)
    strategy = make_strategy(config.strategy, **config.strategy_options)
    torch.manual_seed(config.train.seed)
    model = make_model(config.model, stream.input_shape, stream.num_classes, **config.model_options)
    return stream, model, strategy


def run(
    config: RunConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    reuse: bool = True,
) -> RunResult:
    """Run a config of names; with ``out`` the result goes to ``out/<run_id>/``.

    A finished run found there (same config, same id) is loaded instead of retrained.
    """
    run_dir = Path(out) / config.run_id() if out is not None else None
    if reuse and run_dir is not None and (run_dir / "result.json").exists():
        return load_result(run_dir)
    stream, model, strategy = build(config)
    _, result = fit(stream, model, strategy, config.train, progress, config.to_dict(), run_dir)
    if run_dir is not None:
        save_result(result, run_dir)
    return result
