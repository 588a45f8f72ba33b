"""A checkpoint after every task, so an interrupted run resumes with identical numbers.

Layout inside a run directory::

    checkpoint/
      task-003.safetensors   every tensor: model/…, optim/…, strategy/…, rng/…
      latest.json            everything else, plus the SHA-256 of the tensor file it names

Both files are written atomically (temporary sibling, then rename) and ``latest.json`` is
written last, so it is the commit point: a crash leaves the previous checkpoint intact.
Nothing is ever unpickled; ``latest.json`` is validated against the run's config and the
tensors against the model's names and shapes before anything is loaded, so a corrupt or
foreign checkpoint is a one-line ``LifelongError`` and is never trusted.
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
from .results import atomic_write
from .strategies.base import Strategy
from .train import StreamProgress

FORMAT, VERSION = "lifelong-checkpoint", 1
CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"
_TENSOR_FILE = re.compile(r"^task-\d{3,}\.safetensors$")


@dataclass
class Resumed:
    """What ``restore`` hands back to the loop: continue after ``progress.tasks_done``."""

    model: nn.Module
    progress: StreamProgress
    generator: torch.Generator
    optimizer_state: dict[str, Any] | None
    elapsed: float


def save_checkpoint(
    run_dir: str | Path,
    config: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    strategy: Strategy,
    progress: StreamProgress,
    generator: torch.Generator,
    elapsed: float = 0.0,
) -> Path:
    """Write the state after ``progress.tasks_done`` tasks; returns the checkpoint folder."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model.state_dict().items()}
    s_tensors, s_structure = strategy.state_dict()
    aliases = _aliases(strategy)
    tensors.update({f"strategy/{k}": v for k, v in s_tensors.items() if k not in aliases})
    opt_structure = _flatten_optimizer(optimizer.state_dict(), tensors) if optimizer else None
    tensors["rng/generator"] = generator.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    blob = safetensors.torch.save(
        {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    )
    name = f"task-{progress.tasks_done:03d}.safetensors"
    atomic_write(folder / name, blob)
    np_state = np.random.get_state()
    meta = {
        "format": FORMAT, "version": VERSION, "config": config, "tasks_done": progress.tasks_done,
        "tensors_file": name, "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "progress": asdict(progress), "strategy": s_structure, "strategy_aliases": aliases,
        "optimizer": opt_structure,
        "python_random": _jsonable(random.getstate()),
        "numpy_random": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "elapsed": elapsed,
    }
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
    where = f"checkpoint in {folder}"
    fix = f"delete {folder} to restart this run from scratch"
    try:
        meta = json.loads((folder / LATEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LifelongError(f"{where} is unreadable ({exc}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LifelongError(f"{where} is not a lifelong checkpoint; {fix}")
    if meta.get("version") != VERSION:
        raise LifelongError(f"{where} has version {meta.get('version')!r}, expected {VERSION}; {fix}")
    if meta.get("config") != config:
        raise LifelongError(f"{where} belongs to another configuration (foreign); {fix}")
    name = meta.get("tensors_file")
    if not isinstance(name, str) or not _TENSOR_FILE.match(name):
        raise LifelongError(f"{where} names a bad tensor file {name!r}; {fix}")
    try:
        blob = (folder / name).read_bytes()
    except OSError as exc:
        raise LifelongError(f"{where} is incomplete ({exc}); {fix}") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise LifelongError(f"{where} is corrupt (checksum mismatch in {name}); {fix}")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise LifelongError(f"{where} is corrupt ({type(exc).__name__}); {fix}") from None
    return meta, tensors


def restore(
    run_dir: str | Path,
    config: dict[str, Any],
    stream: Stream,
    model: nn.Module,
    strategy: Strategy,
    train: TrainConfig,
) -> Resumed:
    """Bring strategy, model and RNGs back to the end of the last finished task.

    Order: ``strategy.setup`` → ``strategy.load_state_dict`` → ``strategy.restore_model`` →
    ``model.load_state_dict`` (strict, shapes checked first) → RNG states.
    """
    meta, tensors = read_checkpoint(run_dir, config)
    fix = f"delete {Path(run_dir) / CHECKPOINT_DIR} to restart this run"
    try:
        progress = StreamProgress(**meta["progress"])
    except (TypeError, KeyError):
        raise LifelongError(f"checkpoint in {run_dir} has a malformed progress record; {fix}") from None
    n = progress.tasks_done
    fits = 1 <= n <= len(stream) and len(progress.initial_accuracy) == len(stream)
    if not fits or meta.get("tasks_done") != n:
        raise LifelongError(f"checkpoint in {run_dir} does not fit this {len(stream)}-task stream; {fix}")
    strategy.setup(stream, train)
    s_tensors = _section(tensors, "strategy/")
    aliases = meta.get("strategy_aliases") or {}
    if not isinstance(aliases, dict) or not set(aliases.values()) <= set(s_tensors):
        raise LifelongError(f"checkpoint in {run_dir} has malformed tensor aliases; {fix}")
    s_tensors.update({alias: s_tensors[target] for alias, target in aliases.items()})
    missing = sorted(_tensor_refs(meta.get("strategy")) - set(s_tensors))
    if missing or not isinstance(meta.get("strategy"), dict):
        raise LifelongError(f"checkpoint in {run_dir} lacks strategy tensor {missing[:1]}; {fix}")
    strategy.load_state_dict(s_tensors, meta["strategy"])
    model = strategy.restore_model(model)
    _load_model(model, _section(tensors, "model/"), run_dir, fix)
    generator = torch.Generator()
    try:
        generator.set_state(tensors["rng/generator"])
        torch.set_rng_state(tensors["rng/torch"])
        random.setstate(_tupled(meta["python_random"]))
        np_state = meta["numpy_random"]
        np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise LifelongError(f"checkpoint in {run_dir} has bad RNG states ({exc}); {fix}") from None
    cuda = [tensors[f"rng/cuda/{i}"] for i in range(torch.cuda.device_count()) if f"rng/cuda/{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    optimizer_state = None
    if meta.get("optimizer") is not None:
        optimizer_state = _unflatten_optimizer(meta["optimizer"], _section(tensors, "optim/"))
    return Resumed(model, progress, generator, optimizer_state, float(meta.get("elapsed", 0.0)))


def _aliases(strategy: Strategy) -> dict[str, str]:
    """Strategy tensors that are views of the very same memory as an earlier one (e.g. the
    shared labels of rotated tasks): saved once, shared again on restore, so memory accounting
    after a resume equals an uninterrupted run's."""
    from .strategies.base import _flatten

    found: dict[str, torch.Tensor] = {}
    for key, value in strategy._learned().items():
        _flatten(value, key, found)
    first: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    for key, t in found.items():
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                 tuple(t.stride()), t.dtype)
        if ident in first:
            aliases[key] = first[ident]
        else:
            first[ident] = key
    return aliases


def _load_model(model: nn.Module, saved: dict[str, torch.Tensor], run_dir, fix: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in saved.items()}
    if expected != got:
        diff = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        raise LifelongError(
            f"checkpoint in {run_dir} does not match the model ({diff[0]!r} differs); {fix}"
        )
    model.load_state_dict(saved, strict=True)


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _tensor_refs(structure: Any) -> set[str]:
    if isinstance(structure, dict):
        if "__tensor__" in structure:
            return {str(structure["__tensor__"])}
        return set().union(*(_tensor_refs(v) for v in structure.values()))
    if isinstance(structure, list):
        return set().union(*(_tensor_refs(v) for v in structure))
    return set()


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
    return {"state": flat, "param_groups": _jsonable(state["param_groups"])}


def _unflatten_optimizer(structure: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict:
    def value(v: Any) -> Any:
        return tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v

    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()}
              for g in structure["param_groups"]]
    state = {int(pid): {k: value(v) for k, v in entries.items()}
             for pid, entries in structure["state"].items()}
    return {"state": state, "param_groups": groups}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
