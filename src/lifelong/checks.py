"""Checks of user-given options (strategies' hyper-parameters, models' options).

Each raises a one-line ``LifelongError`` naming the option, what it allows and the value given,
so a bad value fails when the strategy or model is built, never as a traceback in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import LifelongError

SHOWN = 10
"""An error lists at most this many values."""


def shown(value: Any, limit: int = SHOWN) -> str:
    """``value`` for an error message: its repr, a list or tuple cut to ``limit`` values with the
    count (``[0, 1, 2, …] (229 in all)``), so a one-line error stays one short line."""
    if not isinstance(value, (list, tuple)) or len(value) <= limit:
        return repr(value)
    head = repr(list(value[:limit]))[:-1] if isinstance(value, list) else repr(tuple(value[:limit]))[:-1]
    return f"{head}, …{']' if isinstance(value, list) else ')'} ({len(value)} in all)"


def check_number(name: str, value: Any, low: float = 0.0, inclusive: bool = True,
                 high: float | None = None, high_inclusive: bool = True, allow_inf: bool = False,
                 prefix: str = "hyper-parameter") -> float:
    """``value`` as a float if it is a number in [low, high] (``inclusive`` / ``high_inclusive``
    False: open at that end), never NaN and finite unless ``allow_inf``; else a LifelongError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        ok = ((value >= low if inclusive else value > low) and (allow_inf or math.isfinite(value))
              and (high is None or (value <= high if high_inclusive else value < high)))
    if not ok:
        if high is None:
            bound = f"a {'' if allow_inf else 'finite '}number {'>=' if inclusive else '>'} {low:g}"
        else:
            bound = f"in {'[' if inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
        raise LifelongError(f"{prefix} {name} must be {bound}, got {shown(value)}")
    return float(value)


def check_count(name: str, value: Any, allow_none: bool = False, low: int = 1,
                prefix: str = "hyper-parameter", high: int | None = None) -> int | None:
    """``value`` if it is an integer in [low, high) (or None where ``allow_none``); else a
    LifelongError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value >= high):
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        what = what if high is None else f"an integer in [{low}, {high})"
        extra = " (or None)" if allow_none else ""
        raise LifelongError(f"{prefix} {name} must be {what}{extra}, got {shown(value)}")
    return value


def check_counts(name: str, value: Any, allow_empty: bool = True,
                 prefix: str = "hyper-parameter") -> list[int]:
    """A list of positive integers (an integer is a list of one); else a LifelongError."""
    values = [value] if isinstance(value, int) else value
    if not isinstance(values, Sequence) or isinstance(values, str) or not (values or allow_empty) \
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        what = "a list" if allow_empty else "a non-empty list"
        raise LifelongError(f"{prefix} {name} must be {what} of positive integers, got {shown(value)}")
    return list(values)


def check_choice(name: str, value: Any, choices: Sequence[str], prefix: str = "hyper-parameter") -> str:
    """``value`` if it is one of the allowed words ``choices``; else a LifelongError."""
    if not isinstance(value, str) or value not in choices:
        raise LifelongError(f"{prefix} {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_flag(name: str, value: Any, prefix: str = "hyper-parameter") -> bool:
    """``value`` if it is True or False; else a LifelongError."""
    if not isinstance(value, bool):
        raise LifelongError(f"{prefix} {name} must be true or false, got {value!r}")
    return value
