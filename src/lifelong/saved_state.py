"""Pieces shared by what saves a strategy's state (checkpoints, saved learners): checksums of
the JSON part, tensor sections and references, tensors that share memory, and the check that
per-parameter state fits the model."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import nn

from .strategies.base import Strategy, flatten_state


def json_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything in ``meta`` but its own ``meta_sha256``."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_strategy_shapes(strategy: Strategy, model: nn.Module) -> None:
    """Per-parameter state (importances, anchors, masks: dicts keyed by the model's parameter
    names, at any depth) must have the shapes of the restored model's parameters."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, (list, tuple)):
            value = dict(enumerate(value))
        for key, item in value.items() if isinstance(value, dict) else ():
            if set(value) <= set(shapes) and torch.is_tensor(item) and tuple(item.shape) != shapes[key]:
                raise ValueError(f"{path}/{key} has shape {list(item.shape)}, not {list(shapes[key])}")
            walk(item, f"{path}/{key}")

    for name, value in strategy.learned_state().items():
        walk(value, name)


def shared_aliases(strategy: Strategy) -> dict[str, str]:
    """Strategy tensors that are views of the very same memory as an earlier one (e.g. the
    shared labels of rotated tasks): saved once, shared again on restore, so memory accounting
    after a resume equals an uninterrupted run's."""
    found: dict[str, torch.Tensor] = {}
    for key, value in strategy.learned_state().items():
        flatten_state(value, key, found)
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


def section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (e.g. ``strategy/``), with the prefix taken off."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def tensor_refs(structure: Any) -> set[str]:
    """The tensor names a saved JSON structure refers to (``{"__tensor__": name}``)."""
    if isinstance(structure, dict):
        if "__tensor__" in structure:
            return {str(structure["__tensor__"])}
        return set().union(*(tensor_refs(v) for v in structure.values()))
    if isinstance(structure, list):
        return set().union(*(tensor_refs(v) for v in structure))
    return set()


def state_tensors(model: nn.Module, strategy: Strategy) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """``model/…`` and ``strategy/…`` tensors to save (a strategy tensor sharing another's memory
    saved once), the strategy's JSON structure, and those aliases."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    s_tensors, structure = strategy.state_dict()
    aliases = shared_aliases(strategy)
    tensors.update({f"strategy/{k}": v for k, v in s_tensors.items() if k not in aliases})
    return tensors, structure, aliases


def load_strategy_state(strategy: Strategy, structure: dict, aliases: dict, tensors: dict) -> None:
    """Load what ``state_tensors`` saved: aliases shared again, every tensor the structure names
    present (else a ValueError naming the first missing one)."""
    s_tensors = section(tensors, "strategy/")
    s_tensors.update({alias: s_tensors[target] for alias, target in aliases.items()})
    missing = sorted(tensor_refs(structure) - set(s_tensors))
    if missing:
        raise ValueError(f"lacks strategy tensor {missing[0]!r}")
    strategy.load_state_dict(s_tensors, structure)


def model_mismatch(model: nn.Module, saved: dict[str, torch.Tensor]) -> str | None:
    """The first parameter or buffer whose name or shape differs between ``model`` and ``saved``."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in saved.items()}
    diff = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
    return diff[0] if diff else None
