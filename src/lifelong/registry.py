"""One tiny registry, used for benchmarks, models and strategies (timm's pattern).

Each registry is discovered from its folder: the first lookup imports every module of its package
(``lifelong.data.benchmarks``, ``lifelong.models``, ``lifelong.strategies``), and each module
registers what it defines with ``@REGISTRY.register(name)``. A new file in the folder is a new
entry; nothing else lists it. Code outside the library registers the same way once imported.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from typing import Any

from .errors import LifelongError

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]*"
"""A registered name: lower-case letters, digits, '-' and '_' (no '+', '.', '/' or spaces, which
join combinations, address options and separate saved state)."""


def discover(package: str) -> None:
    """Import every module of ``package`` (one level deep) so that each registers itself; idempotent."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        importlib.import_module(f"{package}.{info.name}")


class Registry:
    """Maps a name to a factory, with a one-line description for ``lifelong list``.

    ``package`` is the folder whose modules register the entries: discovered on the first lookup.
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._discovered = False
        self._entries: dict[str, tuple[Callable[..., Any], str]] = {}

    def discover(self) -> None:
        """Import the registry's package once, so every entry defined in its folder is known."""
        if self.package is None or self._discovered:
            return
        self._discovered = True  # first: a module looking an entry up while it loads cannot recurse
        try:
            discover(self.package)
        except BaseException:
            self._discovered = False
            raise

    def register(self, name: str, description: str = "") -> Callable[[Any], Any]:
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise LifelongError(f"{self.kind} name {name!r} is not allowed; use lower-case letters, digits, "
                                "'-' and '_' (e.g. my-method)")

        def decorator(factory: Any) -> Any:
            if name in self._entries:
                raise LifelongError(f"{self.kind} {name!r} is registered twice")
            doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
            text = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[name] = (factory, text)
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for tests and interactive sessions that registered a trial entry)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Callable[..., Any]:
        self.discover()
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
        self.discover()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: self._entries[name][1] for name in self.names()}

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries


BENCHMARKS = Registry("benchmark", f"{__package__}.data.benchmarks")
MODELS = Registry("model", f"{__package__}.models")
STRATEGIES = Registry("strategy", f"{__package__}.strategies")
