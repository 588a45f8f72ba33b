"""Frozen configuration dataclasses, presets, and TOML loading with validation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_count, check_number
from .errors import LifelongError

OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How the one loop trains. The defaults are the homework's protocol (preset ``homework``).

    ``batch_size`` is below 2⁶³ (what torch takes); a batch larger than a task's data is that
    data, one batch per epoch. ``epochs`` per task is at most ``MAX_EPOCHS``. ``augment``: whether
    training batches get a random crop and flip (``lifelong.data.augment``); None takes the
    stream's default (``Stream.augment``: on for CIFAR, off for digits).
    """

    optimizer: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    fresh_optimizer: bool = True
    seed: int = 0
    device: str = "auto"
    eval_every_epoch: bool = True
    augment: bool | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise LifelongError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if not isinstance(self.device, str) or (
                self.device not in DEVICES and not self.device.startswith("cuda:")):
            raise LifelongError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        for name in ("batch_size", "epochs"):
            check_count(name, getattr(self, name), prefix="train option")
        if self.batch_size >= SEED_LIMIT:
            raise LifelongError(f"train option batch_size must be below 2**63 (what torch takes; a batch "
                                f"larger than the data is the whole data), got {self.batch_size}")
        if self.epochs > MAX_EPOCHS:
            raise LifelongError(f"train option epochs must be at most {MAX_EPOCHS} per task, "
                                f"got {self.epochs}")
        check_count("seed", self.seed, low=0, high=SEED_LIMIT, prefix="train option")
        check_number("lr", self.lr, inclusive=False, high=1e30, prefix="train option")
        check_number("momentum", self.momentum, high=1, high_inclusive=False, prefix="train option")
        check_number("weight_decay", self.weight_decay, high=1e30, prefix="train option")
        for name in ("fresh_optimizer", "eval_every_epoch"):
            if not isinstance(getattr(self, name), bool):
                raise LifelongError(f"train option {name} must be true or false, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise LifelongError(f"train option augment must be true or false (or left out for the "
                                f"stream's default), got {self.augment!r}")

    def augments(self, stream_default: bool) -> bool:
        """Whether the run augments its training batches: ``augment``, or the stream's default."""
        return stream_default if self.augment is None else self.augment


SEED_LIMIT = 2**63
"""Seeds are non-negative and below 2⁶³ (what ``torch.manual_seed`` takes)."""
MAX_EPOCHS = 10_000
"""Epochs per task beyond this are a typo, not a protocol (the homework's is 10)."""


PRESETS: dict[str, dict[str, Any]] = {
    "homework": {"optimizer": "adam", "lr": 1e-4, "batch_size": 128, "epochs": 10,
                 "fresh_optimizer": True},
    "gem": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 10, "epochs": 1,
            "fresh_optimizer": True},
}
"""Named training protocols: ``homework`` (the course), ``gem`` (Lopez-Paz & Ranzato 2017)."""


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named protocol with optional overrides, e.g. ``preset("homework", epochs=2)``."""
    if name not in PRESETS:
        raise LifelongError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return make_train_config({**PRESETS[name], **overrides})


def make_train_config(options: dict[str, Any]) -> TrainConfig:
    check_table("train", options)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise LifelongError(f"unknown train option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return TrainConfig(**options)


@dataclass(frozen=True)
class RunConfig:
    """One run: a benchmark, a model, a strategy (each by name with options) and the training."""

    benchmark: str = "rotated-mnist"
    strategy: str = "naive"
    model: str = "mlp"
    benchmark_options: dict[str, Any] = field(default_factory=dict)
    strategy_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON data. ``train.augment`` left unset (the stream's default) is left
        out, so runs that do not say keep the ids, results and checkpoints they had before the
        option existed."""
        data = json.loads(json.dumps(dataclasses.asdict(self), default=str))
        if data["train"].get("augment") is None:
            del data["train"]["augment"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        check_table("the run config", data)
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LifelongError(f"unknown config key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        if isinstance(data.get("strategy"), list) and data["strategy"] and all(
                isinstance(name, str) for name in data["strategy"]):
            data["strategy"] = "+".join(data["strategy"])  # strategy = ["ewc", "replay"]: combined
        for key in ("benchmark", "strategy", "model"):
            if key in data and not isinstance(data[key], str):
                raise LifelongError(f"{key} must be a name (text), got {data[key]!r}")
        for key in ("benchmark_options", "strategy_options", "model_options"):
            check_table(key, data.get(key) or {})
        train = data.pop("train", {}) or {}
        return cls(**data, train=train if isinstance(train, TrainConfig) else make_train_config(train))

    def run_id(self) -> str:
        """Readable and derived from the whole config: the same config gives the same id.

        The strategy's hyper-parameters count with their defaults written out, so a changed
        default gives a new id (the run is retrained, not wrongly reused); so do the names, sizes
        and modification times of the files of a ``source`` data path (other files, other id).
        """
        from .strategies import resolved_hyperparameters  # lazy: strategies never import config

        data = self.to_dict()
        options = resolved_hyperparameters(self.strategy, **self.strategy_options)
        data["strategy_options"] = json.loads(json.dumps(options, default=str))
        stamp = data_stamp(self.benchmark_options.get("source"))
        if stamp:
            data["data_stamp"] = stamp
        digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.benchmark}-{self.strategy}-s{self.train.seed}-{digest}"


def data_stamp(source: Any) -> str | None:
    """A digest of a data path's files (names, sizes, modification times): an ``.npz`` file, or a
    folder's files and those of its sub-folders one level down (CIFAR's extracted release); None
    for the embedded digits or a path that does not exist."""
    if not isinstance(source, (str, Path)) or str(source) in ("", "mnist5k", "embedded"):
        return None
    path = Path(source).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = [f for f in path.iterdir() if f.is_file()]
        files += [f for sub in path.iterdir() if sub.is_dir() for f in sub.iterdir() if f.is_file()]
    else:
        return None
    stats = sorted((str(f.relative_to(path)) if f != path else f.name, f.stat().st_size, f.stat().st_mtime_ns)
                   for f in files)
    return hashlib.sha1(json.dumps(stats).encode()).hexdigest()[:10]


def check_table(name: str, value: Any) -> None:
    """A config section must be a table (a dict): ``[train]``, ``[strategy_options]``, …"""
    if not isinstance(value, dict):
        raise LifelongError(f"{name} must be a table of key = value pairs, got {value!r}")


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise LifelongError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise LifelongError(f"config file {path} is a folder; name a .toml file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LifelongError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise LifelongError(f"config file {path} cannot be read: {exc.strerror or exc}") from None


def check_out_folder(out: str | Path) -> Path:
    """The folder results go to: refused before any training when it cannot be one."""
    if not str(out).strip():
        raise LifelongError("the output folder is an empty path; give --out a folder name")
    path = Path(out)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise LifelongError(f"output folder {path}: {part} is a file, not a folder; choose another --out")
    return path


def check_writable(out: str | Path) -> Path:
    """Create ``out`` if needed and write and remove a probe file there: a folder that cannot be
    written (read-only file system, permissions, a file in the way) is refused in one line before
    any training, not at the first checkpoint."""
    path = check_out_folder(out)
    probe = path / f".lifelong-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LifelongError(f"output folder {path} cannot be written ({exc.strerror or type(exc).__name__}); "
                            "choose another --out or make it writable") from None
    return path
