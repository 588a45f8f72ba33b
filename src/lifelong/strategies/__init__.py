"""Strategies, one file per method; every module here registers itself on import."""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import LifelongError
from ..registry import STRATEGIES
from .base import Batch, Strategy


def load_all() -> None:
    """Import every strategy module so that each registers its name (idempotent)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def make_strategy(name: str, **hyperparameters) -> Strategy:
    """Build a registered strategy, e.g. ``make_strategy("ewc", lam=100)``."""
    load_all()
    factory = STRATEGIES.get(name)
    try:
        return factory(**hyperparameters)
    except TypeError as exc:
        raise LifelongError(f"bad hyper-parameter for strategy {name!r}: {exc}") from None


__all__ = ["Batch", "Strategy", "load_all", "make_strategy"]
