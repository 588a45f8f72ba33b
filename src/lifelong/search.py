"""Search spaces: a grid (every combination of the values listed) or seeded random points.

A space maps a hyper-parameter (a strategy's, ``member.key`` for a combination's, or a train
option such as ``lr``) to a list of values, or, for random search only, to a range written as
text: ``"1e-4..1e-2"`` (uniform) or ``"log:1e-4..1e-2"`` (log-uniform; integers when both ends
are integers). Random search draws each hyper-parameter independently (Bergstra & Bengio 2012).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from .checks import check_count
from .errors import LifelongError

RANDOM_ATTEMPTS = 100
"""Draws per point asked for before a random search gives up finding new distinct points."""


@dataclass(frozen=True)
class Range:
    """Values between ``low`` and ``high`` (inclusive), drawn uniformly or log-uniformly."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def draw(self, rng: random.Random) -> float | int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(round(value), self.low), self.high) if self.integer else float(f"{value:.3g}")


def parse_range(key: str, text: str) -> Range:
    """``"lo..hi"`` or ``"log:lo..hi"`` as a Range; a one-line error for anything else."""
    body = text.removeprefix("log:")
    low_text, sep, high_text = body.partition("..")
    try:
        low, high = (_number(low_text), _number(high_text)) if sep else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or not low < high or (body != text and low <= 0):
        raise LifelongError(f"search range {key}={text!r} is not LOW..HIGH (or log:LOW..HIGH with LOW > 0) "
                            "with LOW < HIGH, e.g. lr=log:1e-4..1e-2")
    return Range(low, high, log=body != text)


def _number(text: str) -> float | int:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else float(text)


def normalise_space(space: dict[str, Any]) -> dict[str, list | Range]:
    """Each entry as a non-empty list of distinct values or a Range (from its text)."""
    out: dict[str, list | Range] = {}
    for key, values in space.items():
        if isinstance(values, Range):
            out[key] = values
        elif isinstance(values, str) and ".." in values:
            out[key] = parse_range(key, values)
        else:
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if not values:
                raise LifelongError(f"search values of {key} are empty; give at least one, e.g. {key}=1,10")
            out[key] = list(dict.fromkeys(_hashable(v) for v in values))
    return out


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def grid_points(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the listed values, the first key varying slowest."""
    space = normalise_space(space)
    ranged = next((k for k, v in space.items() if isinstance(v, Range)), None)
    if ranged is not None:
        raise LifelongError(f"{ranged} is given as a range; a grid takes a list of values "
                            f"({ranged}=1,10,100), a range needs random search (--random N)")
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def random_points(space: dict[str, Any], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct points, each value drawn from its list (uniformly) or range, seeded by
    ``seed``; fewer (every one) when the space holds fewer distinct points."""
    check_count("random", count, prefix="search")
    space = normalise_space(space)
    finite = all(isinstance(v, list) for v in space.values())
    if finite and math.prod(len(v) for v in space.values()) <= count:
        return grid_points(space)
    rng = random.Random(seed)
    points: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for _ in range(RANDOM_ATTEMPTS * count):
        point = {k: v.draw(rng) if isinstance(v, Range) else rng.choice(v) for k, v in space.items()}
        if tuple(point.items()) not in seen:
            seen.add(tuple(point.items()))
            points.append(point)
            if len(points) == count:
                break
    return points


def assignment(key: str, value: Any) -> str:
    """``lam=100``, ``lr=0.001``: one value as labels and notes show it (floats in ``:g`` form)."""
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def point_label(point: dict[str, Any]) -> str:
    """``lam=100 lr=0.001``: a point as the ranking and the progress display show it."""
    return " ".join(assignment(k, v) for k, v in point.items()) or "defaults"
