"""A checkpoint after every task, so an interrupted run resumes with identical numbers.

Layout inside a run directory::

    checkpoint/
      task-003.safetensors   every tensor: model/…, optim/…, strategy/…, rng/…
      latest.json            everything else, the SHA-256 of the tensor file it names and
                             the SHA-256 of its own canonical JSON (``meta_sha256``)

Both files are written atomically (temporary sibling, then rename) and ``latest.json`` is
written last, so it is the commit point: a crash leaves the previous checkpoint intact.
Nothing is ever unpickled; ``latest.json`` is validated against its checksum and the run's
config, every field against its expected form, the tensors against the model's names and
shapes, and the strategy state against the attributes of a fresh strategy (and per-parameter
tensors against the parameters' shapes), so a corrupt or foreign checkpoint is a one-line
``LifelongError`` and is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from .config import TrainConfig
from .data.streams import Stream
from .errors import LifelongError
from .registry import NAME_PATTERN
from .results import accuracy_problem, atomic_write, curve_problem, finite_number, task_il_problem
from .saved_state import (
    check_strategy_shapes,
    json_digest,
    load_strategy_state,
    model_mismatch,
    section,
    state_tensors,
)
from .strategies.base import Strategy
from .train import StreamProgress

FORMAT, VERSION = "lifelong-checkpoint", 3  # 3: strategy state per the open core (memory_, member/)
CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"
_TENSOR_FILE = re.compile(r"^task-\d{3,}\.safetensors$")
_LEARNED = re.compile(rf"({NAME_PATTERN}/)?[A-Za-z]\w*_")  # a learned attribute (member/ in a combination)


@dataclass
class Resumed:
    """What ``restore`` hands back to the loop: continue after ``progress.tasks_done``."""

    model: nn.Module
    progress: StreamProgress
    generator: torch.Generator
    optimizer_state: dict[str, Any] | None
    elapsed: float


def save_checkpoint(run_dir: str | Path, config: dict[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None, strategy: Strategy,
                    progress: StreamProgress, generator: torch.Generator, elapsed: float = 0.0) -> Path:
    """Write the state after ``progress.tasks_done`` tasks; returns the checkpoint folder."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    tensors, s_structure, aliases = state_tensors(model, strategy)
    opt_structure = _flatten_optimizer(optimizer.state_dict(), tensors) if optimizer else None
    tensors["rng/generator"] = generator.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    blob = safetensors.torch.save({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()})
    name = f"task-{progress.tasks_done:03d}.safetensors"
    atomic_write(folder / name, blob)
    np_state = np.random.get_state()
    meta = {
        "format": FORMAT, "version": VERSION, "config": config, "tasks_done": progress.tasks_done,
        "tensors_file": name, "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "progress": asdict(progress), "strategy": s_structure, "strategy_aliases": aliases,
        "optimizer": opt_structure, "python_random": random.getstate(),
        "numpy_random": [np_state[0], np_state[1].tolist(), *np_state[2:]], "elapsed": elapsed,
    }
    meta = json.loads(json.dumps(meta))  # exactly what a reader will see
    meta["meta_sha256"] = json_digest(meta)
    atomic_write(folder / LATEST, json.dumps(meta))
    for old in folder.glob("task-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_DIR / LATEST).exists()


def remove_checkpoint(run_dir: str | Path) -> None:
    shutil.rmtree(Path(run_dir) / CHECKPOINT_DIR, ignore_errors=True)


def read_checkpoint(run_dir: str | Path, config: dict[str, Any]) -> tuple[dict, dict]:
    """(meta, tensors) of a checkpoint written for ``config``; validated, never executed."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    try:
        meta = json.loads((folder / LATEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(folder, f"unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _damaged(folder, "not a lifelong checkpoint")
    if meta.get("version") != VERSION:
        raise LifelongError(f"checkpoint in {folder} has version {meta.get('version')!r}, this lifelong "
                            f"reads {VERSION}; {_fix(folder)}")
    if meta.get("meta_sha256") != json_digest(meta):
        raise _damaged(folder, "corrupt: checksum mismatch")
    if meta.get("config") != config:
        raise LifelongError(f"checkpoint in {folder} belongs to another configuration (foreign); "
                            f"{_fix(folder)}")
    name = meta.get("tensors_file")
    if not isinstance(name, str) or not _TENSOR_FILE.match(name):
        raise _damaged(folder, f"names a bad tensor file {name!r}")
    try:
        blob = (folder / name).read_bytes()
    except OSError as exc:
        raise _damaged(folder, f"incomplete: {exc.strerror or exc}", name) from None
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise _damaged(folder, "corrupt: checksum mismatch", name)
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise _damaged(folder, f"corrupt: {type(exc).__name__}", name) from None
    return meta, tensors


def restore(run_dir: str | Path, config: dict[str, Any], stream: Stream, model: nn.Module,
            strategy: Strategy, train: TrainConfig) -> Resumed:
    """Bring strategy, model and RNGs back to the end of the last finished task.

    Order: ``strategy.setup`` → ``strategy.load_state_dict`` → ``strategy.restore_model`` →
    ``model.load_state_dict`` (strict, shapes checked first) → RNG states. Every field is
    checked on the way; anything malformed is a one-line ``LifelongError``.
    """
    meta, tensors = read_checkpoint(run_dir, config)
    folder = Path(run_dir) / CHECKPOINT_DIR
    progress = _parse(folder, "progress record", lambda: _progress(meta, len(stream)))
    strategy.setup(stream, train)
    expected = {k: _kind(v) for k, v in strategy.learned_state().items()}
    _parse(folder, "strategy state", lambda: _load_strategy(strategy, meta, tensors, expected))
    model = _parse(folder, "strategy state", lambda: strategy.restore_model(model))
    _load_model(model, section(tensors, "model/"), folder)
    _parse(folder, "strategy state", lambda: check_strategy_shapes(strategy, model))
    generator = torch.Generator()
    _parse(folder, "RNG states", lambda: _set_rngs(meta, tensors, generator))
    optimizer_state = None
    if meta.get("optimizer") is not None:
        optimizer_state = _parse(folder, "optimizer state", lambda: _unflatten_optimizer(
            meta["optimizer"], section(tensors, "optim/")))
    elapsed = meta.get("elapsed", 0.0)
    if not finite_number(elapsed, 0):
        raise _damaged(folder, f"bad elapsed time {elapsed!r}")
    return Resumed(model, progress, generator, optimizer_state, float(elapsed))


def _fix(folder: Path) -> str:
    return f"delete {folder} (or rerun with --force) to restart this run from scratch"


def _damaged(folder: Path, problem: str, file: str = LATEST) -> LifelongError:
    problem = " ".join(problem.split())  # one line, whatever the exception said
    return LifelongError(f"checkpoint file {folder / file} is damaged ({problem[:300]}); {_fix(folder)}")


_BAD = (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OverflowError)


def _parse(folder: Path, what: str, step: Any) -> Any:
    """``step()``, with the errors a malformed field raises turned into one ``LifelongError``."""
    try:
        return step()
    except LifelongError:
        raise
    except _BAD as exc:
        raise _damaged(folder, f"bad {what}: {type(exc).__name__}: {exc}") from None


def _progress(meta: dict[str, Any], tasks: int) -> StreamProgress:
    progress = StreamProgress(**meta["progress"])
    n = len(progress.accuracy_matrix) if isinstance(progress.accuracy_matrix, list) else 0
    problem = (accuracy_problem(progress.initial_accuracy, progress.accuracy_matrix, tasks, n)
               or curve_problem(progress.curve, tasks)
               or task_il_problem(progress.task_il_initial, progress.task_il_matrix, tasks, n))
    if problem or not 1 <= n <= tasks or meta.get("tasks_done") != n:
        raise ValueError(problem or f"{n} tasks done does not fit this {tasks}-task stream")
    if not all(isinstance(x, list) and len(x) == n for x in
               (progress.task_times, progress.memory_bytes, progress.model_sizes)):
        raise ValueError(f"task times, memory sizes and model sizes are not {n} long")
    return progress


def _kind(value: Any) -> str | None:
    """What a learned attribute holds, as far as a restored one must agree (None: anything)."""
    if torch.is_tensor(value) or type(value) in (int, float):
        return "number or tensor"
    return {dict: "dict", list: "list", tuple: "list", str: "str", bool: "bool"}.get(type(value))


def _load_strategy(strategy: Strategy, meta: dict, tensors: dict, expected: dict[str, str | None]) -> None:
    """Check the saved state has every learned attribute the fresh strategy has, each of the
    same kind, then load it."""
    structure = meta["strategy"]
    if not all(isinstance(k, str) and _LEARNED.fullmatch(k) for k in structure):
        raise ValueError("a saved attribute is not learned state (name_)")
    absent = sorted(set(expected) - set(structure))
    if absent:
        raise ValueError(f"lacks {absent[0]!r} of strategy {strategy.name!r}")
    load_strategy_state(strategy, structure, meta.get("strategy_aliases") or {}, tensors)
    restored = {k: _kind(v) for k, v in strategy.learned_state().items()}
    wrong = [k for k, kind in expected.items() if kind and restored[k] != kind]
    if wrong:
        raise ValueError(f"{wrong[0]!r} holds a {restored[wrong[0]]}, not a {expected[wrong[0]]}")


def _set_rngs(meta: dict[str, Any], tensors: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    generator.set_state(tensors["rng/generator"])
    torch.set_rng_state(tensors["rng/torch"])
    random.setstate(_tupled(meta["python_random"]))
    kind, keys, *rest = meta["numpy_random"]
    if not (kind == "MT19937" and isinstance(keys, list) and len(keys) == 624 and len(rest) == 3):
        raise ValueError("numpy_random is not a saved MT19937 state")
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    cuda = [tensors[f"rng/cuda/{i}"] for i in range(torch.cuda.device_count()) if f"rng/cuda/{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _load_model(model: nn.Module, saved: dict[str, torch.Tensor], folder: Path) -> None:
    differs = model_mismatch(model, saved)
    if differs:
        raise LifelongError(f"checkpoint in {folder} does not match the model ({differs!r} differs); "
                            f"{_fix(folder)}")
    model.load_state_dict(saved, strict=True)


def _flatten_optimizer(state: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, Any]:
    flat: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        flat[str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                out[f"optim/{pid}/{key}"] = value
                flat[str(pid)][key] = {"__tensor__": f"{pid}/{key}"}
            else:
                flat[str(pid)][key] = value
    return {"state": flat, "param_groups": state["param_groups"]}


def _unflatten_optimizer(structure: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict:
    def value(v: Any) -> Any:
        return tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v

    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()}
              for g in structure["param_groups"]]
    state = {int(pid): {k: value(v) for k, v in entries.items()}
             for pid, entries in structure["state"].items()}
    return {"state": state, "param_groups": groups}


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
