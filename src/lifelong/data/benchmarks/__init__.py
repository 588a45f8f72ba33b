"""Benchmark builders, one file each; every module here registers its stream on import.

A new benchmark is a new file in this folder with a function decorated
``@BENCHMARKS.register("name", "one line for lifelong list")`` that returns a ``Stream``:
``make_benchmark`` and ``lifelong list`` find it (the registry imports the folder).
"""

from __future__ import annotations

from ...errors import LifelongError
from ...registry import BENCHMARKS
from ..streams import Stream
from ..validation import VALIDATION_OPTION, validation_options, validation_stream
from .permuted_mnist import permuted
from .rotated_mnist import rotated
from .split_mnist import split


def make_benchmark(name: str, **options) -> Stream:
    """Build a registered stream by name, e.g. ``make_benchmark("rotated-mnist")``; the stream
    remembers ``name`` as its ``benchmark`` (its own ``name`` comes from the data).

    Every benchmark also takes ``validation = {fraction, seed, tasks}``: each task scored on a
    stratified part of its training data instead of its test set (``data.validation``)."""
    factory = BENCHMARKS.get(name)
    held_out = options.pop(VALIDATION_OPTION, None)
    if held_out is not None:
        held_out = validation_options(held_out)
    BENCHMARKS.check_options(name, options)
    try:
        stream = factory(**options)
    except TypeError as exc:
        raise LifelongError(f"bad option for benchmark {name!r}: {exc}") from None
    if not isinstance(stream, Stream):
        raise LifelongError(f"benchmark {name!r} returned {type(stream).__name__}, not a Stream")
    stream.benchmark = name
    return stream if held_out is None else validation_stream(stream, **held_out)


__all__ = ["make_benchmark", "permuted", "rotated", "split"]
