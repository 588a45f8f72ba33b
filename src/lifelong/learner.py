"""Save a trained learner — the model and its strategy — and load it back to predict.

A folder holds two files, as a checkpoint does, and nothing is pickled::

    learner.safetensors   model/…, strategy/… and the task-incremental class mask
    learner.json          the strategy's name, hyper-parameters and state structure, the
                          model's class and shapes, the SHA-256 of the tensor file and of itself

``load_learner(folder, model)`` takes a freshly built model of the same architecture (as
``torch``'s ``load_state_dict`` does), rebuilds what the strategy grew (PNN's columns, PackNet's
masks, …) and returns ``(model, strategy)``: ``strategy.logits(model, x, task_ids)`` then gives
the same outputs as the learner that was saved. To go on learning new tasks, give ``fit`` a
stream with the learned tasks first, then the new ones, and ``first_task`` = the number learned:
``fit(stream, model, strategy, first_task=strategy.tasks_learned_)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from .errors import LifelongError
from .results import atomic_write
from .saved_state import (
    check_strategy_shapes,
    json_digest,
    load_strategy_state,
    model_mismatch,
    section,
    state_tensors,
)
from .strategies import Strategy, make_strategy

FORMAT, VERSION = "lifelong-learner", 2  # 2: strategy state per the open core (memory_, member/)
TENSORS, META = "learner.safetensors", "learner.json"


def save_learner(folder: str | Path, model: nn.Module, strategy: Strategy) -> Path:
    """Write ``model`` and ``strategy`` (after ``fit``) into ``folder``; returns the folder."""
    folder = Path(folder)
    if not getattr(strategy, "tasks_learned_", 0):
        raise LifelongError("save_learner: the strategy has not been trained yet (fit it first)")
    tensors, structure, aliases = state_tensors(model, strategy)
    if strategy.class_mask_ is not None:
        tensors["setup/class_mask"] = strategy.class_mask_
    blob = safetensors.torch.save({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()})
    meta = {
        "format": FORMAT, "version": VERSION, "strategy": strategy.name,
        "hyperparameters": strategy.hyperparameters(), "state": structure, "aliases": aliases,
        "setup": {"num_tasks": strategy.num_tasks_, "task_aware": strategy.task_aware_,
                  "seed": strategy.seed_, "task_names": strategy.task_names_,
                  "tasks_learned": strategy.tasks_learned_},
        "model": {"class": type(model).__name__,
                  "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}},
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
    }
    meta = json.loads(json.dumps(meta, default=list))
    meta["meta_sha256"] = json_digest(meta)
    atomic_write(folder / TENSORS, blob)
    atomic_write(folder / META, json.dumps(meta, indent=1))
    return folder


def load_learner(folder: str | Path, model: nn.Module) -> tuple[nn.Module, Strategy]:
    """The ``(model, strategy)`` saved in ``folder``, loaded into ``model`` (built as before)."""
    folder = Path(folder)
    meta, tensors = _read(folder)
    try:
        strategy = make_strategy(meta["strategy"], **meta["hyperparameters"])
        setup = meta["setup"]
        names = setup.get("task_names")  # absent in files of the first release: not checked then
        strategy.restore_setup({
            "class_mask_": tensors.get("setup/class_mask"), "num_tasks_": int(setup["num_tasks"]),
            "task_aware_": bool(setup["task_aware"]), "seed_": int(setup["seed"]), "config": None,
            "task_names_": None if names is None else [str(name) for name in names],
            "tasks_learned_": int(setup.get("tasks_learned", setup["num_tasks"]))})
        load_strategy_state(strategy, meta["state"], meta["aliases"], tensors)
        model = strategy.restore_model(model)
    except LifelongError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        raise _damaged(folder, f"bad strategy state: {type(exc).__name__}: {exc}") from None
    saved = section(tensors, "model/")
    differs = model_mismatch(model, saved)
    if differs:
        raise LifelongError(f"the learner in {folder} was saved from another model "
                            f"({meta['model']['class']}; {differs!r} differs); build the same "
                            "architecture and load again")
    model.load_state_dict(saved, strict=True)
    try:
        check_strategy_shapes(strategy, model)
    except ValueError as exc:
        raise _damaged(folder, f"bad strategy state: {exc}") from None
    return model, strategy


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if folder.is_file():
        raise LifelongError(f"{folder} is a file; give load_learner the folder save_learner wrote "
                            f"({folder.parent}), not one of its files")
    try:
        meta = json.loads((folder / META).read_text())
        blob = (folder / TENSORS).read_bytes()
    except FileNotFoundError:
        raise LifelongError(f"no saved learner in {folder} (it needs {META} and {TENSORS}); "
                            "give the folder save_learner wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(folder, f"unreadable: {type(exc).__name__}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _damaged(folder, "not a saved lifelong learner")
    if meta.get("version") != VERSION:
        raise LifelongError(f"the learner in {folder} has version {meta.get('version')!r}; this lifelong "
                            f"reads {VERSION} (older releases kept strategy state under other names): "
                            "train and save it again with this release")
    if meta.get("meta_sha256") != json_digest(meta):
        raise _damaged(folder, f"checksum mismatch in {META}")
    if meta.get("tensors_sha256") != hashlib.sha256(blob).hexdigest():
        raise _damaged(folder, f"checksum mismatch in {TENSORS}")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise _damaged(folder, f"corrupt tensors: {type(exc).__name__}") from None
    return meta, tensors


def _damaged(folder: Path, problem: str) -> LifelongError:
    problem = " ".join(problem.split())[:300]
    return LifelongError(f"the learner in {folder} is damaged ({problem}); save it again")
