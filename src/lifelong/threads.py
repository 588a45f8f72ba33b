"""How many threads a process trains with, and a note when the machine is already busy.

Two processes with two torch threads each on two cores run many times slower than one at a time;
``set_threads`` keeps a lone run within the cores it may use and ``busy_note`` says when other
work already fills them.
"""

from __future__ import annotations

import os
import sys

from .errors import LifelongError


def set_threads(requested: int | None, jobs: int = 1) -> int:
    """Set and return torch's thread count for this process: ``--threads`` where given; otherwise
    torch's default (one per physical core), but never more than the cores this process may use
    (a container's CPU set, ``taskset``), so a lone run does not oversubscribe. With ``--jobs N``
    each run's process gets cores // N (executors.py); ``--threads`` is then refused."""
    import torch

    from .checks import check_count
    from .executors import cores

    if requested is not None:
        check_count("--threads", requested, prefix="option")
        if jobs > 1:
            raise LifelongError("--threads sets the threads of one process; with --jobs N each run gets "
                                "cores // N threads: give one of --threads and --jobs")
        torch.set_num_threads(requested)
    elif torch.get_num_threads() > cores():
        torch.set_num_threads(cores())
    return torch.get_num_threads()


def busy_note(threads: int, load: float | None = None, n: int | None = None) -> str | None:
    """A one-line note when the machine already runs about as many threads as it has cores (the
    1-minute load average, where the system gives one); None otherwise."""
    from .executors import cores

    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - Windows
            return None
    n = n or cores()
    if load + threads <= n + 0.5:
        return None
    return (f"note: the machine is busy (load {load:.1f} on {n} cores, and this run adds {threads} "
            f"thread{'s' if threads > 1 else ''}); training will be slower than alone"
            + (" (--threads 1 helps)" if threads > 1 else ""))


def note_if_busy(threads: int) -> None:
    note = busy_note(threads) if sys.stderr.isatty() else None  # for a person watching, not a log
    if note:
        print(note, file=sys.stderr)
