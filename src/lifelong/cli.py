"""The command line: a thin layer that parses, builds config dataclasses, runs, writes files."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .arguments import OneLineParser, add_compare_arguments, add_run_arguments, add_tune_arguments
from .errors import LifelongError
from .threads import note_if_busy, set_threads


def parse_value(text: str) -> Any:
    """``3`` → 3, ``1e-4`` → 1e-4, ``true`` → True, ``[1,2]`` or ``1,2`` → [1, 2], ``null`` or
    ``None`` → None; otherwise the string."""
    if text == "None":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:  # angles=0,45,90 → [0, 45, 90]
        try:
            return json.loads(f"[{text}]")
        except json.JSONDecodeError:
            pass
    return text


def parse_assignments(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LifelongError(f"{flag} expects KEY=VALUE, got {pair!r}")
        owner, dot, name = key.rpartition(".")  # a strategy's name keeps its hyphens (online-ewc.lam)
        out[owner + dot + name.replace("-", "_")] = parse_value(value)
    return out


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table."""
    cells = [columns] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:+.4f}" if v < 0 else f"{v:.4f}"
    return "" if v is None else str(v)


def summary_table(label: str, result: Any) -> str:
    """One run's line of the report's table (registered metrics, wall time, memory, parameters),
    as aligned text."""
    from .tables import columns, table_rows

    cols = columns()
    (row,) = table_rows({label: [result]})
    return format_table([{"strategy": label, **{c.title: c.cell(row) for c in cols}}],
                        ["strategy", *(c.title for c in cols)])


def build_run_config(args: argparse.Namespace):
    from .config import PRESETS, RunConfig, check_table, load_toml, make_train_config

    data: dict[str, Any] = load_toml(args.config) if args.config else {}
    for key in ("train", "benchmark_options", "strategy_options", "model_options"):
        check_table(key, data.get(key) or {})
    preset = data.pop("preset", None)
    preset = args.preset or preset
    if preset is not None and preset not in PRESETS:
        raise LifelongError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    train = dict(PRESETS[preset]) if preset else {}
    hparams = data.pop("hparams", None)
    hparams = args.hparams or hparams
    chosen: dict[str, Any] = {}
    if hparams:
        from .hparams import hparams_for

        name = args.strategy or data.get("strategy", "naive")
        chosen, tuned_train = hparams_for(hparams, "+".join(name) if isinstance(name, list) else name)
        train.update(tuned_train)  # the preset's, then the tuned values, then the file's and flags'
    train.update(data.pop("train", {}) or {})
    for flag in ("optimizer", "lr", "batch_size", "epochs", "seed", "device", "augment"):
        value = getattr(args, flag)
        if value is not None:
            train[flag] = value
    for flag in ("benchmark", "strategy", "model"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    for key, flag in (("benchmark_options", "bopt"), ("strategy_options", "param"),
                      ("model_options", "mopt")):
        data[key] = {**(data.get(key) or {}), **parse_assignments(getattr(args, flag), f"--{flag}")}
    if args.data is not None:
        data["benchmark_options"]["source"] = args.data
    if args.scenario is not None:
        data["benchmark_options"]["scenario"] = args.scenario
    data["strategy_options"] = {**chosen, **data["strategy_options"]}
    data["train"] = make_train_config(train)
    return RunConfig.from_dict(data)


def merge_shared_flags(data: dict[str, Any], args: argparse.Namespace) -> None:
    """The train, benchmark and model flags ``compare`` and ``tune`` share, over a file's tables."""
    train = dict(data.get("train") or {})
    for flag in ("optimizer", "lr", "batch_size", "epochs", "device", "augment"):
        if getattr(args, flag) is not None:
            train[flag] = getattr(args, flag)
    data["train"] = train
    bopt = {**(data.get("benchmark_options") or {}), **parse_assignments(args.bopt, "--bopt")}
    if args.data is not None:
        bopt["source"] = args.data
    if isinstance(args.scenario, list):  # compare: one or several, side by side
        data.pop("scenarios", None)
        data["scenarios"] = args.scenario
        bopt.pop("scenario", None)  # the flag overrides the file's
    elif args.scenario is not None:
        bopt["scenario"] = args.scenario
    data["benchmark_options"] = bopt
    data["model_options"] = {**(data.get("model_options") or {}), **parse_assignments(args.mopt, "--mopt")}


def build_comparison(args: argparse.Namespace):
    """The comparison a TOML file names, with the flags overriding it."""
    from .compare import Comparison
    from .config import check_table, load_toml

    data: dict[str, Any] = load_toml(args.config) if args.config else {}
    for key in ("train", "benchmark_options", "model_options", "params"):
        check_table(key, data.get(key) or {})
    for name, options in (data.get("params") or {}).items():
        check_table(f"params.{name}", options)
    if args.benchmark:
        data.pop("benchmark", None)
        data["benchmarks"] = args.benchmark
    if args.strategies:
        data["strategies"] = args.strategies
    if args.seeds:
        data.pop("seed", None)
        data["seeds"] = args.seeds
    for key in ("preset", "hparams", "model"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    merge_shared_flags(data, args)
    for key in ("reference", "vary"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    params = {k: dict(v) for k, v in (data.get("params") or {}).items()}
    for key, value in parse_assignments(args.param, "--param").items():
        strategy, dot, name = key.partition(".")
        if not dot or not name:
            raise LifelongError(f"--param for compare expects STRATEGY.KEY=VALUE, got {key!r}")
        params.setdefault(strategy, {})[name] = value
    data["params"] = params
    return Comparison.from_dict(data)


def build_tuning(args: argparse.Namespace):
    """The tuning a TOML file names, with the flags overriding it."""
    from .config import check_table, load_toml
    from .tuning import Tuning

    data: dict[str, Any] = load_toml(args.config) if args.config else {}
    for key in ("train", "benchmark_options", "model_options", "params", "grid"):
        check_table(key, data.get(key) or {})
    for key in ("strategy", "benchmark", "model", "preset", "protocol", "metric", "random", "search_seed",
                "tasks", "split_seed", "validation", "seeds"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    merge_shared_flags(data, args)
    data["params"] = {**(data.get("params") or {}), **parse_assignments(args.param, "--param")}
    data["grid"] = {**(data.get("grid") or {}), **parse_grid(args.grid)}
    return Tuning.from_dict(data)


def parse_grid(pairs: list[str] | None) -> dict[str, Any]:
    """``--grid lam=1,10,100`` → {"lam": [1, 10, 100]}; ``--grid lr=log:1e-4..1e-2`` keeps the
    range's text (``lifelong.search`` reads it)."""
    grid: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key or not text.strip(" ,"):
            raise LifelongError(f"--grid expects KEY=V1,V2,… (or KEY=LOW..HIGH with --random), got {pair!r}")
        key = key.replace("-", "_")
        if key in grid:
            raise LifelongError(f"--grid {key} is given twice; list all its values once: {key}=V1,V2,…")
        if ".." in text:
            grid[key] = text
        elif text.startswith("["):
            values = parse_value(text)
            if not isinstance(values, list):
                raise LifelongError(f"--grid {pair!r}: the values are not a list; write {key}=V1,V2,…")
            grid[key] = values
        else:
            pieces = text.split(",")
            if any(not piece.strip() for piece in pieces):
                raise LifelongError(f"--grid {pair!r} has an empty value; write {key}=V1,V2,…")
            grid[key] = [parse_value(piece.strip()) for piece in pieces]
    return grid


def cmd_tune(args: argparse.Namespace) -> int:
    from .progress import ComparisonProgress
    from .search import point_label
    from .tuning import tune

    tuning = build_tuning(args)
    threads = set_threads(args.threads, args.jobs)
    if args.executor == "local":
        note_if_busy(threads * args.jobs if args.jobs > 1 else threads)
    result = tune(tuning, args.out, jobs=args.jobs, executor=args.executor, reuse=not args.force,
                  display=ComparisonProgress())
    rows = [{"rank": i + 1, "values": point_label(t.values), f"mean {result.metric}": t.mean,
             **{f"seed {s}": v for s, v in zip(tuning.seeds, t.scores)}}
            for i, t in enumerate(result.ranking)]
    print(format_table(rows, list(rows[0])))
    print(f"best ({tuning.protocol} protocol, {result.metric} on validation data): "
          f"{point_label(result.best.values)}")
    print(f"best values: {result.best_file} (lifelong run/compare --hparams {result.best_file})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare
    from .progress import ComparisonProgress

    comparison = build_comparison(args)
    threads = set_threads(args.threads, args.jobs)
    if args.executor == "local":
        note_if_busy(threads * args.jobs if args.jobs > 1 else threads)
    compare(comparison, args.out, jobs=args.jobs, executor=args.executor, reuse=not args.force,
            display=ComparisonProgress(), tensorboard=args.tensorboard)
    print((Path(args.out) / "table.md").read_text())
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(args.folder))
    print(f"report: {Path(args.folder) / 'report.html'}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .report import write_plots

    for path in write_plots(args.folder):
        print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .api import run
    config = build_run_config(args)
    note_if_busy(set_threads(args.threads))
    from .progress import ProgressBar

    bar = ProgressBar(config.strategy, config.train.epochs)
    result = run(config, out=args.out, progress=bar, reuse=not args.force)
    print(summary_table(config.strategy, result))
    print(f"results: {args.out}/{result.run_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import BENCHMARKS, MODELS, STRATEGIES

    for title, reg in (("benchmarks", BENCHMARKS), ("models", MODELS), ("strategies", STRATEGIES)):
        print(f"{title}:")
        for name, text in reg.describe().items():
            print(f"  {name:<20} {text}")
        if reg is STRATEGIES:
            print(f"  {'a+b':<20} any of these combined, e.g. ewc+replay (--param ewc.lam=…; "
                  "docs/combinations.md)")
    from .metrics import METRICS

    print("metrics:")
    for m in METRICS:
        direction = "higher is better" if m.higher_is_better else "lower is better"
        reference = ", needs a reference run" if m.needs_reference else ""
        print(f"  {m.name:<20} {m.title}, {direction}{reference}: {m.meaning}")
    from .data.datasets import DATA_FORMATS

    print("data (--data PATH):")
    for name, text in DATA_FORMATS.items():
        print(f"  {name:<20} {text}")
    from .config import PRESETS

    print("presets:")
    for name, opts in PRESETS.items():
        print(f"  {name:<20} " + ", ".join(f"{k}={v}" for k, v in opts.items()))
    return 0


def make_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(prog="lifelong", description="Lifelong learning on PyTorch.")
    parser.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one strategy on one stream")
    p.add_argument("config", nargs="?",
                   help="a TOML file: benchmark, strategy, model, preset, hparams and the tables [train], "
                   "[strategy_options], [benchmark_options], [model_options]; flags override it")
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("list", help="list benchmarks, models, strategies, metrics and presets")
    p.set_defaults(func=cmd_list)
    add_compare_parser(sub)
    p = sub.add_parser("tune", help="choose hyper-parameters on validation data (not the test set)",
                       description="Grid or random search under the validation or first-tasks protocol; "
                       "writes OUT/best.json for --hparams. See docs/tuning.md.")
    add_tune_arguments(p)
    p.set_defaults(func=cmd_tune)
    for name, func, text in (("report", cmd_report, "redraw figures, tables and report.html"),
                             ("plot", cmd_plot, "redraw the figures only")):
        p = sub.add_parser(name, help=f"{text} from saved results (no training)")
        p.add_argument("folder", help="a comparison folder, a run directory or a folder of runs")
        p.set_defaults(func=func)
    return parser


def add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="run several methods (× benchmarks × seeds) into a report",
                       description="With no options: the homework (rotated MNIST 0-80°, naive, "
                       "EWC, MAS, SI, RWalk, SCP and joint). See docs/compare.md.")
    add_compare_arguments(p)
    p.set_defaults(func=cmd_compare)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit), handled as Ctrl-C is."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        return int(args.func(args) or 0)
    except LifelongError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("\ninterrupted; finished results are kept", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `lifelong list | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
