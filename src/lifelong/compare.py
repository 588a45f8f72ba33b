"""``lifelong compare``: methods × benchmarks × seeds, run (or reused) into one report folder.

With no options it is the homework: rotated MNIST (0–80°) on the embedded digits, the
``homework`` protocol, naive (the baseline), EWC, MAS, SI, RWalk and SCP, plus joint as the
upper bound. A comparison is one TOML file (or the same keys as flags)::

    benchmark = "rotated-mnist"              # or benchmarks = ["rotated-mnist", {name = …, …}]
    strategies = ["naive", "ewc", {name = "ewc", label = "ewc λ=1e4", lam = 1e4}]
    seeds = [0, 1, 2]
    preset = "homework"                      # training protocol; [train] overrides it
    hparams = "course"                       # hyper-parameter preset of the regularisers
    [params.ewc]                             # per-strategy hyper-parameters
    lam = 100

and, for a study: ``scenarios = ["task", "domain", "class"]`` (every benchmark once per scenario,
reported side by side), ``reference = "joint"`` (the method intransigence is measured against;
default: the comparison's one ``joint``) and ``vary = ["stream"]`` (each seed also draws its own
stream: the benchmark's ``seed`` option and, where it has one, ``shuffle_order``).

The report folder holds ``comparison.json`` (what was compared), ``runs/<run_id>/`` (each
run, reused by id when the comparison is repeated), and the figures, tables and HTML page
written by :mod:`lifelong.report`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (
    PRESETS,
    SEED_LIMIT,
    RunConfig,
    check_out_folder,
    check_table,
    check_writable,
    make_train_config,
)
from .errors import LifelongError
from .results import COMPARISON_FILE, RESULT_FILE, RUNS_DIR, RunResult, atomic_write
from .search import assignment

DEFAULT_STRATEGIES = ("naive", "ewc", "mas", "si", "rwalk", "scp", "joint")
DEFAULT_LABELS = {"naive": "naive (baseline)"}
KEYS = {"benchmark", "benchmarks", "benchmark_options", "strategies", "params", "seeds", "seed",
        "preset", "train", "hparams", "model", "model_options", "scenarios", "reference", "vary"}
VARY = ("stream",)
"""What seeds may vary beyond the initial weights and batch order (``vary``)."""


@dataclass(frozen=True)
class Entry:
    """One benchmark or method of a comparison: a display label, a registry name, options, and
    (a method) train options of its own (those ``--hparams best.json`` tuned with it)."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedRun:
    benchmark: str
    method: str
    seed: int
    config: RunConfig

    @property
    def label(self) -> str:
        return f"{self.method} s{self.seed}"

    @property
    def stream_key(self) -> str:
        """Runs with the same key share one built stream (the benchmark and its options)."""
        return self.config.benchmark + json.dumps(self.config.benchmark_options, sort_keys=True,
                                                  default=str)


@dataclass(frozen=True)
class Comparison:
    benchmarks: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    seeds: tuple[int, ...] = (0,)
    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    """The method label intransigence is measured against (None: the one ``joint`` method)."""
    vary: tuple[str, ...] = ()
    """``("stream",)``: each seed also draws its own stream (the benchmark's ``seed`` option, and
    its ``shuffle_order`` where it has one: split MNIST's class order, rotated MNIST's angle order)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Validate the keys of a comparison file (see the module docstring)."""
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise LifelongError(f"unknown comparison key {unknown[0]!r}; known: {', '.join(sorted(KEYS))}")
        for key in ("train", "benchmark_options", "model_options", "params"):
            check_table(key, data.get(key) or {})
        for key in ("strategies", "benchmarks", "seeds"):
            if key in data and (not isinstance(data[key], list) or not data[key]):
                raise LifelongError(f"{key} must be a non-empty list, got {data[key]!r}; leave it out "
                                    "for the default")
        if "benchmark" in data and "benchmarks" in data:
            raise LifelongError("give either benchmark or benchmarks, not both")
        if "seed" in data and "seeds" in data:
            raise LifelongError("give either seed or seeds, not both")
        preset = data.get("preset") or "homework"
        if preset not in PRESETS:
            raise LifelongError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        train = {**PRESETS[preset], **(data.get("train") or {})}
        if "seed" in train:
            raise LifelongError("set seeds with `seeds = [...]` (or --seeds), not train.seed")
        make_train_config(train)  # validate now, not hours later
        seeds = data.get("seeds", [data["seed"]] if "seed" in data else [0])
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in seeds):
            raise LifelongError(f"seeds must be integers in [0, 2**63), got {seeds!r}")
        benchmarks = _entries(data.get("benchmarks") or [data.get("benchmark", "rotated-mnist")],
                              "benchmark", data.get("benchmark_options") or {})
        benchmarks = _scenario_entries(benchmarks, data.get("scenarios"))
        vary = data.get("vary") or []
        vary = [vary] if isinstance(vary, str) else vary
        if not isinstance(vary, list) or not set(vary) <= set(VARY):
            raise LifelongError(f"vary must list what seeds vary besides weights and batches: "
                                f"{' or '.join(VARY)}, got {vary!r}")
        if vary and any("seed" in b.options for b in benchmarks):
            raise LifelongError("vary = stream sets each run's benchmark seed to its own seed; drop the "
                                "benchmark option seed (or vary)")
        params = data.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            raise LifelongError("params must map a strategy name to a table of hyper-parameters")
        methods = _entries(data.get("strategies") or list(DEFAULT_STRATEGIES), "strategy", {},
                           params, data.get("hparams"), dict(data.get("train") or {}))
        from .strategies.combined import member_names

        members = {part for m in methods if "+" in m.name for part in member_names(m.name)}
        stray = sorted(set(params) - {m.name for m in methods} - members)
        if stray:
            raise LifelongError(f"params for {stray[0]!r}, which is not among the strategies compared "
                                f"({', '.join(m.name for m in methods)}); add it or drop its params")
        reference = data.get("reference")
        if reference is not None and reference not in [m.label for m in methods]:
            raise LifelongError(f"reference {reference!r} is not a method of this comparison; give one of "
                                f"{', '.join(m.label for m in methods)} (its label)")
        return cls(benchmarks, methods, tuple(dict.fromkeys(seeds)), data.get("model", "mlp"),
                   dict(data.get("model_options") or {}), train, reference, tuple(dict.fromkeys(vary)))

    def plan(self) -> list[PlannedRun]:
        """Every run, seed-major so that a partial comparison already has every method once.

        Each method's hyper-parameters are written out in full (defaults included), so a run's
        id — and whether a finished run is reused — changes when a default changes.
        """
        from .strategies import resolved_hyperparameters

        resolved = {m.label: resolved_hyperparameters(m.name, **m.options) for m in self.methods}
        runs = []
        for bench in self.benchmarks:
            for seed in self.seeds:
                options = self.stream_options(bench, seed)
                for method in self.methods:
                    config = RunConfig(
                        benchmark=bench.name, strategy=method.name, model=self.model,
                        benchmark_options=options, strategy_options=resolved[method.label],
                        model_options=self.model_options,
                        train=make_train_config({**self.train, **method.train, "seed": seed}))
                    runs.append(PlannedRun(bench.label, method.label, seed, config))
        return runs

    def stream_options(self, bench: Entry, seed: int) -> dict[str, Any]:
        """``bench``'s options for the runs of ``seed``: as given, or with ``vary = stream`` the
        seed as the benchmark's own and, where the benchmark takes it, ``shuffle_order``."""
        if "stream" not in self.vary:
            return bench.options
        from .registry import BENCHMARKS

        options = {**bench.options, "seed": seed}
        try:
            BENCHMARKS.check_options(bench.name, {"shuffle_order": True})
        except LifelongError:
            return options  # permuted MNIST: its seed already draws its permutations
        return {**options, "shuffle_order": True}

    def check_runnable(self, streams: dict[str, Any], executor: str) -> None:
        """The model fits every stream and, for local runs, the device exists: checked before
        anything is written, so a mistyped option cannot replace a finished comparison's plan."""
        from .models import make_model
        from .train import resolve_device

        for stream in streams.values():
            make_model(self.model, stream.input_shape, stream.num_classes, **self.model_options)
        if executor == "local":
            resolve_device(self.train.get("device", "auto"))

    def validate(self) -> None:
        """Unknown names and bad hyper-parameters fail now, in one line, before any training."""
        from .registry import BENCHMARKS, MODELS
        from .strategies import make_strategy

        MODELS.get(self.model)
        for bench in self.benchmarks:
            BENCHMARKS.get(bench.name)
        for method in self.methods:
            make_strategy(method.name, **method.options)


def _entries(items: Any, kind: str, shared: dict[str, Any], params: dict | None = None,
             hparams: str | None = None, explicit_train: dict[str, Any] | None = None) -> tuple[Entry, ...]:
    """The benchmarks or methods; a method's values from ``hparams`` (a preset, or a tuned file:
    its train options too, except those the comparison sets itself — a note on stderr says so
    where they differ) under its explicit ones."""
    from .hparams import hparams_for

    explicit_train = explicit_train or {}
    if isinstance(items, str) or not isinstance(items, list):
        items = [items]
    out: list[Entry] = []
    for item in items:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise LifelongError(f"each {kind} must be a name or a table with a `name`, got {item!r}")
        item = dict(item)
        name = item.pop("name")
        given = item.pop("label", None)
        label = str(given if given is not None else DEFAULT_LABELS.get(name, name) if kind == "strategy"
                    else name)
        options = {**shared, **item}
        train: dict[str, Any] = {}
        if kind == "strategy":
            preset, train = hparams_for(hparams, name, required=False) if hparams else ({}, {})
            note_overridden(name, hparams, {k: (v, explicit_train[k]) for k, v in train.items()
                                            if k in explicit_train and explicit_train[k] != v})
            train = {k: v for k, v in train.items() if k not in explicit_train}
            explicit = _explicit_options(name, item, params or {})
            options = {**preset, **explicit}
            if given is None and explicit:  # the report then says which λ (or other value) it shows
                label += " (" + ", ".join(assignment(k, v) for k, v in explicit.items()) + ")"
        out.append(Entry(label, name, options, train))
    labels = [e.label for e in out]
    duplicate = next((x for x in labels if labels.count(x) > 1), None)
    if duplicate is not None:
        raise LifelongError(f"{kind} label {duplicate!r} appears twice; give each a distinct `label` "
                            "(in a comparison TOML file: strategies = [{name = \"ewc\", lam = 100}, "
                            "{name = \"ewc\", lam = 1000}], see docs/compare.md)")
    return tuple(out)


def note_overridden(method: str, hparams: str | None, overridden: dict[str, tuple[Any, Any]]) -> None:
    """One line on stderr for each train option of a method's tuned file that the comparison's own
    (a flag or ``[train]``) replaces: the tuned value is then not the one the method runs with."""
    for key, (tuned, used) in overridden.items():
        flag = "--" + key.replace("_", "-")
        print(f"note: {method} runs with the comparison's {assignment(key, used)}, not the "
              f"{assignment(key, tuned)} of {hparams}; drop {flag} (or [train] {key}) to use the file's",
              file=sys.stderr)


def _scenario_entries(benchmarks: tuple[Entry, ...], scenarios: Any) -> tuple[Entry, ...]:
    """Each benchmark once per scenario of ``scenarios`` (None: as given), labelled
    ``split-mnist task-IL``, ``split-mnist class-IL``, …"""
    if scenarios is None:
        return benchmarks
    from .data.streams import SCENARIOS

    if isinstance(scenarios, str):
        scenarios = [scenarios]
    if not isinstance(scenarios, list) or not scenarios or not all(s in SCENARIOS for s in scenarios):
        raise LifelongError(f"scenarios must list some of {', '.join(SCENARIOS)}, got {scenarios!r}")
    if any("scenario" in b.options for b in benchmarks):
        raise LifelongError("give the scenario once: scenarios (--scenario A B) or the benchmark option "
                            "scenario, not both")
    if len(scenarios) == 1:
        return tuple(Entry(b.label, b.name, {**b.options, "scenario": scenarios[0]}) for b in benchmarks)
    return tuple(Entry(f"{b.label} {s}-IL", b.name, {**b.options, "scenario": s})
                 for b in benchmarks for s in dict.fromkeys(scenarios))


def _explicit_options(name: str, item: dict[str, Any], params: dict[str, dict]) -> dict[str, Any]:
    """The values a comparison gives strategy ``name`` (beyond presets): its ``params`` and its table's
    own keys; for a combination, ``member.key`` entries, taking a member's own ``params`` (``--param
    ewc.lam=…`` sets EWC's λ alone and in every combination) before the combination's."""
    from .strategies.combined import member_names

    if "+" not in name:
        return {**params.get(name, {}), **item}
    explicit: dict[str, Any] = {}
    for member in member_names(name):
        explicit.update({f"{member}.{k}": v for k, v in params.get(member, {}).items()})
    for key, value in {**params.get(name, {}), **item}.items():
        if isinstance(value, dict):
            explicit.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            explicit[key] = value
    return explicit


def write_plan(out: Path, runs: list[PlannedRun], comparison: Comparison) -> None:
    data = {
        "format": "lifelong-comparison", "version": 1,
        "benchmarks": [b.label for b in comparison.benchmarks],
        "methods": [m.label for m in comparison.methods], "seeds": list(comparison.seeds),
        "reference": comparison.reference, "vary": list(comparison.vary),
        "runs": [{"run_id": r.config.run_id(), "benchmark": r.benchmark, "method": r.method,
                  "strategy": r.config.strategy, "seed": r.seed} for r in runs],
    }
    atomic_write(out / COMPARISON_FILE, json.dumps(data, indent=2))


def check_comparison_folder(out: Path, runs: list[PlannedRun], replace: bool = False) -> None:
    """``out`` may take this comparison: it is not inside a run's folder, and a comparison already
    there plans no run this one drops (the same plan again, or one that adds runs, reuses what
    is finished) unless ``replace``. Refused in one line before anything is written."""
    from .checkpoint import CHECKPOINT_DIR
    from .report import read_plan

    for part in (out.absolute(), *out.absolute().parents):
        if (part / RESULT_FILE).is_file() or (part / CHECKPOINT_DIR).is_dir():
            raise LifelongError(f"--out {out} is inside the run folder {part}; give a comparison its own "
                                "folder")
    if replace or not (out / COMPARISON_FILE).exists():
        return
    try:
        old = read_plan(out / COMPARISON_FILE)
    except LifelongError:  # a damaged plan: its own message says to rewrite it
        return
    planned = {(r.benchmark, r.method, r.config.run_id()) for r in runs}
    dropped = [e for e in old if tuple(e) not in planned]
    if dropped:
        raise LifelongError(f"{out} holds another comparison ({len(dropped)} of its {len(old)} runs are not "
                            f"in this one, e.g. {dropped[0][1]} on {dropped[0][0]}); give another --out, or "
                            "--force to replace it")


def compare(
    comparison: Comparison,
    out: str | Path,
    jobs: int = 1,
    executor: str = "local",
    reuse: bool = True,
    display: Any = None,
    tensorboard: bool = False,
    report: bool = True,
    replace: bool | None = None,
) -> dict[str, RunResult]:
    """Run (or reuse) every planned run into ``out/runs`` and write the report into ``out``
    (``report=False``: only the runs; ``lifelong report OUT`` draws it later). Another comparison
    in ``out`` is refused unless ``replace`` (default: ``not reuse``, as ``--force`` does).

    Returns run_id → result of the runs that finished; raises a one-line ``LifelongError``
    naming the runs that failed (after writing the report of the others).
    """
    from .data.benchmarks import make_benchmark
    from .executors import check_executor, execute
    from .progress import TensorBoardLogger
    from .report import write_report

    out = check_out_folder(out)
    check_executor(executor, jobs)
    comparison.validate()
    runs = comparison.plan()
    streams: dict[str, Any] = {}
    for r in runs:  # one stream per benchmark (per seed too with vary = stream)
        if r.stream_key not in streams:
            streams[r.stream_key] = make_benchmark(r.config.benchmark, **r.config.benchmark_options)
    comparison.check_runnable(streams, executor)
    check_comparison_folder(out, runs, not reuse if replace is None else replace)
    check_writable(out)
    write_plan(out, runs, comparison)
    logger = TensorBoardLogger(out / "tensorboard") if tensorboard else None
    results, failures = execute(runs, out / RUNS_DIR, streams, jobs=jobs, executor=executor,
                                reuse=reuse, display=display, on_result=logger)
    if results and report:
        write_report(out)
    if failures:
        first = next(iter(failures.items()))
        raise LifelongError(f"{len(failures)} of {len(runs)} runs failed (first: {first[0]}: "
                            f"{first[1]}); finished runs are kept, rerun to retry")
    return results
