"""``lifelong tune``: choose a method's hyper-parameters without looking at the test set.

A tuning searches a grid (or random points) of a strategy's hyper-parameters — its class's
``search_space`` by default, a user's values replacing or adding keys, train options such as
``lr`` where asked — under one of two protocols (docs/tuning.md):

* ``validation``: every task of the stream, each trained on its training data minus a
  stratified ``fraction`` and scored on that held-out part;
* ``first-tasks``: the same on the first ``tasks`` tasks only (Chaudhry et al. 2019, A-GEM,
  Sec. 5: choose on the first tasks, then run the whole stream with the values chosen).

The test split is never read: each trial's stream is ``make_benchmark``'s with the benchmark
option ``validation`` (``data.validation``), whose tasks hold no test tensors. A trial is a
normal run, so trials go through the comparison's executors (``--jobs``, ``--executor ray``)
into ``OUT/runs/<run_id>/`` and a rerun reuses finished trials and resumes interrupted ones.
Points are ranked by their score (a registered metric, ACC by default) averaged over the seeds;
the best is written to ``OUT/best.json``, which ``--hparams`` of ``run`` and ``compare`` reads.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_count, check_number
from .compare import PlannedRun
from .config import (
    PRESETS,
    SEED_LIMIT,
    RunConfig,
    check_out_folder,
    check_table,
    check_writable,
    make_train_config,
)
from .data.validation import DEFAULT_FRACTION, VALIDATION_OPTION
from .errors import LifelongError
from .hparams import read_hparams, write_hparams
from .results import RUNS_DIR, RunResult, metric_value
from .search import grid_points, normalise_space, point_label, random_points

PROTOCOLS = ("validation", "first-tasks")
DEFAULT_FIRST_TASKS = 3
"""A-GEM's protocol chooses on the first 3 tasks (Chaudhry et al. 2019, Sec. 5)."""
BEST_FILE = "best.json"
TUNABLE_TRAIN = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "fresh_optimizer",
                 "augment")
"""Train options a search may vary (not the seed, which a search averages over, nor the device)."""
KEYS = {"strategy", "benchmark", "benchmark_options", "model", "model_options", "preset", "train",
        "params", "grid", "seeds", "protocol", "validation", "tasks", "split_seed", "metric", "random",
        "search_seed"}


@dataclass(frozen=True)
class Trial:
    """One point of the search: its values and its score per seed (in seed order)."""

    values: dict[str, Any]
    scores: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)


@dataclass(frozen=True)
class TuneResult:
    """The ranking (best first) and where the best values were written."""

    strategy: str
    metric: str
    ranking: list[Trial]
    best_file: Path

    @property
    def best(self) -> Trial:
        return self.ranking[0]


@dataclass(frozen=True)
class Tuning:
    """What to tune and how; ``from_dict`` takes the keys of a tuning TOML file (docs/tuning.md)."""

    strategy: str
    benchmark: str = "rotated-mnist"
    benchmark_options: dict[str, Any] = field(default_factory=dict)
    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "homework"
    train: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    protocol: str = "validation"
    validation: float = DEFAULT_FRACTION
    tasks: int = DEFAULT_FIRST_TASKS
    split_seed: int = 0
    metric: str = "acc"
    random: int | None = None
    search_seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tuning:
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise LifelongError(f"unknown tuning key {unknown[0]!r}; known: {', '.join(sorted(KEYS))}")
        if not isinstance(data.get("strategy"), str):
            raise LifelongError("name the strategy to tune (--strategy NAME, or strategy = \"ewc\")")
        for key in ("train", "benchmark_options", "model_options", "params", "grid"):
            check_table(key, data.get(key) or {})
        if VALIDATION_OPTION in (data.get("benchmark_options") or {}):
            raise LifelongError("tune carves the validation split itself; set it with --validation, "
                                "--split-seed and --tasks, not the benchmark option")
        preset = data.get("preset") or "homework"
        if preset not in PRESETS:
            raise LifelongError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        if "seed" in (data.get("train") or {}):
            raise LifelongError("set seeds with `seeds = [...]` (or --seeds), not train.seed")
        make_train_config({**PRESETS[preset], **(data.get("train") or {})})
        seeds = data.get("seeds") or [0]
        if not isinstance(seeds, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in seeds):
            raise LifelongError(f"seeds must be a list of integers in [0, 2**63), got {seeds!r}")
        keys = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        tuning = cls(**{**keys, "preset": preset, "seeds": tuple(dict.fromkeys(seeds)),
                        **{k: dict(data.get(k) or {}) for k in ("benchmark_options", "model_options",
                                                                "params", "grid", "train")}})
        tuning.check()
        return tuning

    def check(self) -> None:
        """Protocol, metric and search options; the space's names and every point's values."""
        from .metrics import METRICS

        if self.protocol not in PROTOCOLS:
            raise LifelongError(f"unknown protocol {self.protocol!r}; choose {' or '.join(PROTOCOLS)}")
        check_number("validation", self.validation, inclusive=False, high=1, high_inclusive=False,
                     prefix="tuning option")
        check_count("tasks", self.tasks, prefix="tuning option")
        check_count("split_seed", self.split_seed, low=0, prefix="tuning option")
        check_count("search_seed", self.search_seed, low=0, prefix="tuning option")
        check_count("random", self.random, allow_none=True, prefix="tuning option")
        metric = METRICS.get(self.metric)
        if metric.needs_reference:
            raise LifelongError(f"metric {self.metric!r} needs a reference run, which a tuning does not "
                                "make; score by another (acc, bwt, forgetting, …)")
        self.points()  # every value builds: a typo fails now, not after hours of trials

    def space(self) -> dict[str, Any]:
        """The strategy's default search space, the user's keys replacing or adding values, less
        the hyper-parameters fixed by ``params`` or ``train`` (given once, not searched)."""
        from .strategies import make_strategy, search_space

        make_strategy(self.strategy, **self.params)
        known = list(_hyperparameter_names(self.strategy))
        for key in self.grid:
            name = key.removeprefix("train.")
            if key not in known and name not in TUNABLE_TRAIN:
                raise LifelongError(
                    f"{self.strategy} has no hyper-parameter {key!r} to tune; its hyper-parameters: "
                    f"{', '.join(known) or 'none'}; train options: {', '.join(TUNABLE_TRAIN)} "
                    "(train.KEY where the method has a KEY of its own)")
            fixed, key = (self.params, key) if key in known else (self.train, name)
            if key in fixed:
                raise LifelongError(f"{key} is both fixed ({key}={fixed[key]!r}) and searched; "
                                    "give it one way")
        space = {k: v for k, v in search_space(self.strategy).items() if k not in self.params}
        space = normalise_space({**space, **self.grid})
        if not space:
            raise LifelongError(f"{self.strategy} has no default search space; give the values to try, "
                                "e.g. --grid lr=1e-4,1e-3")
        return space

    def points(self) -> list[dict[str, Any]]:
        """The grid, or ``random`` seeded points of the space; each checked to build."""
        from .strategies import make_strategy

        space = self.space()
        points = (grid_points(space) if self.random is None
                  else random_points(space, self.random, self.search_seed))
        for point in points:
            options, train = self.split_point(point)
            make_strategy(self.strategy, **{**self.params, **options})
            make_train_config({**self.base_train, **train})
        return points

    @property
    def base_train(self) -> dict[str, Any]:
        """The preset's train options with the user's on top (the values not searched)."""
        return {**PRESETS[self.preset], **self.train}

    def benchmark_options_tuned(self) -> dict[str, Any]:
        """The benchmark's options plus the held-out split the trials are scored on."""
        tasks = self.tasks if self.protocol == "first-tasks" else None
        return {**self.benchmark_options,
                VALIDATION_OPTION: {"fraction": self.validation, "seed": self.split_seed, "tasks": tasks}}

    def plan(self) -> list[PlannedRun]:
        """One run per point and seed, seed-major (a partial search has every point once); the
        hyper-parameters written out in full, as a comparison's (a changed default retrains)."""
        from .strategies import resolved_hyperparameters

        points = self.points()
        benchmark_options = self.benchmark_options_tuned()
        runs = []
        for seed in self.seeds:
            for point in points:
                options, train = self.split_point(point)
                config = RunConfig(benchmark=self.benchmark, strategy=self.strategy, model=self.model,
                                   benchmark_options=benchmark_options,
                                   strategy_options=resolved_hyperparameters(
                                       self.strategy, **{**self.params, **options}),
                                   model_options=self.model_options,
                                   train=make_train_config({**self.base_train, **train, "seed": seed}))
                runs.append(PlannedRun(self.benchmark, point_label(point), seed, config))
        return runs

    def split_point(self, point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(strategy hyper-parameters, train options) of a point: a key is the method's when it
        has one of that name (EWC's ``batch_size``), else a train option; ``train.KEY`` always is."""
        known = set(_hyperparameter_names(self.strategy))
        train = {k.removeprefix("train."): v for k, v in point.items()
                 if k.startswith("train.") or k not in known}
        return {k: v for k, v in point.items() if k in known}, train

    def protocol_record(self) -> dict[str, Any]:
        record = {"name": self.protocol, "validation": self.validation, "split_seed": self.split_seed}
        return {**record, "tasks": self.tasks} if self.protocol == "first-tasks" else record




def _hyperparameter_names(strategy: str) -> list[str]:
    """A strategy's hyper-parameters; a combination's as ``member.key``."""
    from .strategies import make_strategy

    values = make_strategy(strategy).hyperparameters()
    if "+" not in strategy:
        return list(values)
    return [f"{member}.{key}" for member, options in values.items() for key in options]


def rank(tuning: Tuning, runs: list[PlannedRun], results: dict[str, RunResult]) -> list[Trial]:
    """Points with a result for every seed, best mean score first (ties: the earlier point)."""
    from .metrics import METRICS

    metric = METRICS.get(tuning.metric)
    points = {point_label(p): p for p in tuning.points()}
    scores: dict[str, list[float]] = {label: [] for label in points}
    for run in runs:
        result = results.get(run.config.run_id())
        if result is not None:
            scores[run.method].append(metric_value(result, metric))
    complete = [Trial(points[label], s) for label, s in scores.items() if len(s) == len(tuning.seeds)]
    sign = -1 if metric.higher_is_better else 1
    return sorted(complete, key=lambda t: sign * t.mean)


def tune(tuning: Tuning | dict, out: str | Path, jobs: int = 1, executor: str = "local",
         reuse: bool = True, display: Any = None, stream: Any = None) -> TuneResult:
    """Run (or reuse) every trial into ``out/runs``, rank the points and write ``out/best.json``
    (keeping other strategies' entries there). ``tuning`` may be a dict of a tuning file's keys.
    ``stream``: the benchmark's stream already built (in-process runs only; its test tensors are
    dropped unread). Raises a one-line error naming failed trials after writing the ranking of
    the points that finished.

    >>> result = tune({"strategy": "ewc", "grid": {"lam": [10, 1000]}}, "runs/tune")  # doctest: +SKIP
    >>> result.best.values, result.best.mean                                             # doctest: +SKIP
    """
    from .data.benchmarks import make_benchmark
    from .data.validation import validation_stream
    from .executors import check_executor, execute

    if isinstance(tuning, dict):
        tuning = Tuning.from_dict(tuning)
    if not isinstance(tuning, Tuning):
        raise LifelongError(f"tune: tuning must be a Tuning or a dict, got {type(tuning).__name__}")
    out = check_out_folder(out)
    check_executor(executor, jobs)
    runs = tuning.plan()
    held_out = tuning.benchmark_options_tuned()[VALIDATION_OPTION]
    if stream is None:
        stream = make_benchmark(tuning.benchmark, **tuning.benchmark_options_tuned())
    else:
        stream = validation_stream(stream, **held_out)
    best_file = out / BEST_FILE
    if best_file.exists():
        read_hparams(best_file)  # a damaged file is refused now, not after the search
    check_writable(out)
    streams = {run.stream_key: stream for run in runs}  # every trial shares the one held-out stream
    results, failures = execute(runs, out / RUNS_DIR, streams, jobs=jobs,
                                executor=executor, reuse=reuse, display=display)
    ranking = rank(tuning, runs, results)
    if ranking:
        write_hparams(best_file, tuning.strategy, _entry(tuning, ranking, failures))
    if failures:
        first = next(iter(failures.items()))
        raise LifelongError(f"{len(failures)} of {len(runs)} trials failed (first: {first[0]}: {first[1]}); "
                            "finished trials are kept, rerun to retry")
    return TuneResult(tuning.strategy, tuning.metric, ranking, best_file)


def _entry(tuning: Tuning, ranking: list[Trial], failures: dict[str, str]) -> dict[str, Any]:
    """best.json's entry: the best point, how it was found, every finished point's scores, and
    the trials that failed (the best is the best of the points that finished)."""
    options, train = tuning.split_point(ranking[0].values)
    return {"strategy_options": {**tuning.params, **options}, "train": train, "metric": tuning.metric,
            "score": ranking[0].mean, "seeds": list(tuning.seeds), "protocol": tuning.protocol_record(),
            "benchmark": tuning.benchmark, "benchmark_options": tuning.benchmark_options,
            "model": tuning.model, "model_options": tuning.model_options, "base_train": tuning.base_train,
            "trials": [{"values": t.values, "scores": t.scores, "mean": t.mean} for t in ranking],
            **({"failed": dict(failures)} if failures else {})}
