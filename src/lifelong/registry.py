"""One tiny registry, used for benchmarks, models and strategies (timm's pattern)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .errors import LifelongError


class Registry:
    """Maps a name to a factory, with a one-line description for ``lifelong list``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., Any], str]] = {}

    def register(self, name: str, description: str = "") -> Callable[[Any], Any]:
        def decorator(factory: Any) -> Any:
            if name in self._entries:
                raise LifelongError(f"{self.kind} {name!r} is registered twice")
            doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
            text = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[name] = (factory, text)
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name][0]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise LifelongError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def check_options(self, name: str, options: dict[str, Any], what: str = "option") -> None:
        """Refuse, in one line naming the known ones, an option ``name``'s factory does not take."""
        try:
            params = inspect.signature(self.get(name)).parameters
        except (TypeError, ValueError):
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        known = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        known = [k for k in known if k not in ("input_shape", "num_classes")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise LifelongError(f"{self.kind} {name!r} has no {what} {unknown[0]!r}; its {what}s: "
                                f"{', '.join(known) or 'none'}")

    def name_of(self, factory: Any) -> str | None:
        """The name ``factory`` is registered under (None when it is not registered)."""
        return next((name for name, (f, _) in self._entries.items() if f is factory), None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: self._entries[name][1] for name in self.names()}

    def __contains__(self, name: str) -> bool:
        return name in self._entries


BENCHMARKS = Registry("benchmark")
MODELS = Registry("model")
STRATEGIES = Registry("strategy")
