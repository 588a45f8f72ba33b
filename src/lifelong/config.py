"""Frozen configuration dataclasses, presets, and TOML loading with validation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LifelongError

OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How the one loop trains. The defaults are the homework's protocol (preset ``homework``)."""

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

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise LifelongError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise LifelongError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        for name in ("lr", "batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise LifelongError(f"{name} must be a positive number, got {value!r}")
        for name in ("batch_size", "epochs", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise LifelongError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not 0 <= self.momentum < 1:
            raise LifelongError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise LifelongError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


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
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LifelongError(f"unknown config key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        train = data.pop("train", {}) or {}
        return cls(**data, train=train if isinstance(train, TrainConfig) else make_train_config(train))

    def run_id(self) -> str:
        """Readable and derived from the whole config: the same config gives the same id.

        The strategy's hyper-parameters count with their defaults written out, so a changed
        default gives a new id (the run is retrained, not wrongly reused).
        """
        from .strategies import resolved_hyperparameters  # lazy: strategies never import config

        data = self.to_dict()
        options = resolved_hyperparameters(self.strategy, **self.strategy_options)
        data["strategy_options"] = json.loads(json.dumps(options, default=str))
        digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.benchmark}-{self.strategy}-s{self.train.seed}-{digest}"


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise LifelongError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise LifelongError(f"config file {path} is not valid TOML: {exc}") from None
