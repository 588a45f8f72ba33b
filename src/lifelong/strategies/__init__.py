"""Strategies, one file per method; every module here registers itself on import."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import LifelongError
from ..registry import STRATEGIES
from .base import Batch, Strategy
from .combined import Combined, member_names, member_options


def load_all() -> None:
    """Import every strategy module so that each registers its name (idempotent)."""
    STRATEGIES.discover()


def make_strategy(name: str, **hyperparameters) -> Strategy:
    """Build a registered strategy, e.g. ``make_strategy("ewc", lam=100)``, or a combination of
    several joined by ``+`` with options per member: ``make_strategy("ewc+replay", ewc={"lam":
    1000}, replay={"buffer_size": 500})`` (or ``**{"ewc.lam": 1000}``; see ``combined``)."""
    load_all()
    if not isinstance(name, str):
        raise LifelongError(f"a strategy is named by text, got {name!r}")
    if "+" in name:
        names = member_names(name)
        options = member_options(names, hyperparameters)
        return Combined([make_strategy(part, **options[part]) for part in names])
    factory = STRATEGIES.get(name)
    STRATEGIES.check_options(name, hyperparameters, "hyper-parameter")
    try:
        return factory(**_words_for_text_options(factory, hyperparameters))
    except TypeError as exc:
        raise LifelongError(f"bad hyper-parameter for strategy {name!r}: {exc}") from None


def _words_for_text_options(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """A boolean given for a text option is its word: ``--param fisher=true`` (or ``fisher = true``
    in TOML) reaches EWC as the option value ``"true"``, not as ``True``."""
    try:
        defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    except (TypeError, ValueError):
        return options
    return {k: str(v).lower() if isinstance(v, bool) and isinstance(defaults.get(k), str) else v
            for k, v in options.items()}


def search_space(name: str) -> dict[str, tuple]:
    """The default values ``lifelong tune`` tries for strategy ``name`` (its class's
    ``search_space``); a combination's are its members', as ``member.key``."""
    load_all()
    if "+" in name:
        return {f"{part}.{k}": v for part in member_names(name) for k, v in search_space(part).items()}
    return dict(STRATEGIES.get(name).search_space)


def resolved_hyperparameters(name: str, **options) -> dict:
    """Every hyper-parameter of ``name`` with ``options`` applied, defaults written out.

    A run's id derives from these, so a run is retrained (not reused) when a default changes.
    """
    return make_strategy(name, **options).hyperparameters()


__all__ = ["Batch", "Combined", "Strategy", "load_all", "make_strategy", "resolved_hyperparameters",
           "search_space"]
