"""``--hparams``: a named preset of the methods' values (``course``, ``tuned``, ``fast``) or a best-parameters
file written by ``lifelong tune``, which ``lifelong run`` and ``lifelong compare`` read.

The file is JSON::

    {"format": "lifelong-hparams", "version": 1,
     "strategies": {"ewc": {"strategy_options": {"lam": 1000.0}, "train": {"lr": 0.001},
                            "metric": "acc", "score": 0.91, ...how it was chosen...}}}

Each strategy's ``strategy_options`` are its hyper-parameters and ``train`` the train options
chosen with them (only those tuned: ``lr`` where the search varied it); the other keys record
the search (protocol, seeds, every trial's scores) and are not read back.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .errors import LifelongError
from .results import atomic_write

HPARAMS_FORMAT, HPARAMS_VERSION = "lifelong-hparams", 1


def read_hparams(path: str | Path) -> dict[str, dict[str, Any]]:
    """strategy → its entry, from a best-parameters file; one-line errors for a missing,
    unreadable or malformed file."""
    from .strategies.importance import HYPERPARAMETER_PRESETS

    path = Path(path)
    hint = f"give a preset ({', '.join(HYPERPARAMETER_PRESETS)}) or a file written by `lifelong tune`"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LifelongError(f"hparams file {path} not found; {hint}") from None
    except IsADirectoryError:
        raise LifelongError(f"hparams {path} is a folder; name its best.json (written by `lifelong tune`)"
                            ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LifelongError(f"hparams file {path} is not valid JSON ({exc}); {hint}") from None
    except OSError as exc:
        raise LifelongError(f"hparams file {path} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or data.get("format") != HPARAMS_FORMAT:
        raise LifelongError(f"hparams file {path} is not a best-parameters file (no \"format\": "
                            f"\"{HPARAMS_FORMAT}\"); {hint}")
    strategies = data.get("strategies")
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    if not isinstance(strategies, dict):
        raise LifelongError(f"hparams file {path}: \"strategies\" must map a strategy to its values")
    for name, entry in strategies.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("strategy_options", {}), dict)
                and isinstance(entry.get("train", {}), dict)):
            raise LifelongError(f"hparams file {path}: the entry of {name!r} must hold tables "
                                "strategy_options and train")
        stray = sorted(set(entry.get("train", {})) - train_keys)
        if stray:
            raise LifelongError(f"hparams file {path}: {name}'s train option {stray[0]!r} is not one "
                                f"(known: {', '.join(sorted(train_keys))})")
    return strategies


def hparams_for(hparams: str, strategy: str, required: bool = True) -> tuple[dict, dict]:
    """(strategy options, train options) that ``hparams`` — a preset name or a best-parameters
    file — gives ``strategy``. A file without ``strategy``: a one-line error when ``required``
    (``lifelong run``), else nothing (a comparison's other methods keep their defaults)."""
    from .strategies.importance import HYPERPARAMETER_PRESETS, hyperparameter_preset

    if not isinstance(hparams, str) or not hparams:
        raise LifelongError(f"hparams must be a preset name or a file path, got {hparams!r}")
    if hparams in HYPERPARAMETER_PRESETS:
        return hyperparameter_preset(hparams, strategy), {}
    if not hparams.endswith(".json") and not Path(hparams).exists():
        raise LifelongError(f"unknown hyper-parameter preset {hparams!r} and no file of that name; give a "
                            f"preset ({', '.join(HYPERPARAMETER_PRESETS)}) or a best.json written by "
                            "`lifelong tune`")
    entries = read_hparams(hparams)
    if strategy not in entries:
        if required:
            raise LifelongError(f"hparams file {hparams} has no values for {strategy!r} (it has "
                                f"{', '.join(entries) or 'none'}); tune it with `lifelong tune --strategy "
                                f"{strategy}` into the same --out, or leave out --hparams")
        return {}, {}
    entry = entries[strategy]
    return dict(entry.get("strategy_options", {})), dict(entry.get("train", {}))


def write_hparams(path: Path, strategy: str, entry: dict[str, Any]) -> None:
    """Add (or replace) ``strategy``'s entry, keeping the other strategies' (atomic write)."""
    entries = read_hparams(path) if path.exists() else {}
    entries[strategy] = entry
    data = {"format": HPARAMS_FORMAT, "version": HPARAMS_VERSION, "strategies": entries}
    atomic_write(path, json.dumps(data, indent=2) + "\n")
