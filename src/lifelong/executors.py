"""Where the runs of a comparison execute: in this process, in N processes, or on Ray.

Every executor ends the same way: each finished run's ``result.json`` lies in ``runs_dir``
(checkpoints too, where the worker can write there), so the report and a later rerun find it.

* ``local``, ``jobs=1``: one after another in this process (streams built once and shared).
* ``local``, ``jobs=N``: N spawned processes, each with ``torch.set_num_threads(cores // N)``
  so they do not fight over cores; progress events come back through a queue.
* ``ray``: each run is a Ray task (``ray.init()`` joins ``RAY_ADDRESS`` or starts a local
  instance); its result comes back to this process, which writes it into ``runs_dir``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data.streams import Stream
from .errors import LifelongError
from .results import RESULT_FILE, RunResult, load_result, save_result, validate_result

EXECUTORS = ("local", "ray")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def thread_budget(jobs: int) -> int:
    return max(1, cores() // max(1, jobs))


def check_executor(executor: str, jobs: int) -> None:
    if executor not in EXECUTORS:
        raise LifelongError(f"unknown executor {executor!r}; choose {' or '.join(EXECUTORS)}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise LifelongError(f"--jobs must be a positive integer, got {jobs!r}")
    if executor == "ray":
        _check_ray_address(os.environ.get("RAY_ADDRESS", ""))


def execute(
    runs: list,
    runs_dir: Path,
    streams: dict[str, Stream] | None = None,
    jobs: int = 1,
    executor: str = "local",
    reuse: bool = True,
    display: Any = None,
    on_result: Callable[[Any, RunResult], None] | None = None,
) -> tuple[dict[str, RunResult], dict[str, str]]:
    """Run every ``PlannedRun`` not already finished; returns (results, failures by label)."""
    check_executor(executor, jobs)
    display = display or _Silent()
    streams = streams or {}
    display.start([(r.config.run_id(), r.label, _units(r, streams)) for r in runs])
    results: dict[str, RunResult] = {}
    failures: dict[str, str] = {}
    todo = []
    for run in runs:
        run_id, run_dir = run.config.run_id(), runs_dir / run.config.run_id()
        if reuse and (run_dir / RESULT_FILE).exists():
            results[run_id] = validate_result(load_result(run_dir), run.config.to_dict(), run_dir)
            display.reused(run_id)
            if on_result:
                on_result(run, results[run_id])
        else:
            todo.append(run)

    def finished(run, result: RunResult | None, error: str | None = None) -> None:
        run_id = run.config.run_id()
        if result is None:
            failures[run.label] = error or "failed"
        else:
            results[run_id] = result
            if on_result:
                on_result(run, result)
        display.finished(run_id, ok=result is not None)

    if executor == "ray":
        _ray(todo, runs_dir, jobs, reuse, finished)
    elif jobs == 1:
        for run in todo:
            run_id = run.config.run_id()
            try:
                result = _run_one(run.config, runs_dir, reuse, streams.get(run.stream_key),
                                  lambda e, k=run_id: display.event(k, e))
            except Exception as exc:  # one failed run must not lose the others' report
                finished(run, None, failure_text(exc))
            else:
                finished(run, result)
    else:
        _processes(todo, runs_dir, jobs, reuse, display, finished)
    display.close()
    return results, failures


def failure_text(exc: BaseException) -> str:
    """One line for a failed run: our own errors as they are, others with their type (the last
    line of a remote traceback, as Ray wraps them)."""
    text = (str(exc).strip().splitlines() or [""])[-1]
    return text if isinstance(exc, LifelongError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def _units(run, streams: dict[str, Stream]) -> int:
    stream = streams.get(run.stream_key)
    return (len(stream) if stream is not None else 1) * run.config.train.epochs


def _run_one(config: RunConfig, runs_dir: Path, reuse: bool, stream=None, progress=None) -> RunResult:
    from .api import run

    return run(config, out=runs_dir, progress=progress, reuse=reuse, stream=stream)


# ------------------------------------------------------------------ processes
_EVENTS: Any = None


def _init_worker(events: Any, threads: int) -> None:
    import torch

    global _EVENTS
    _EVENTS = events
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the workers


def _worker(config: dict[str, Any], runs_dir: str, reuse: bool, key: str) -> dict[str, Any]:
    def progress(event: dict[str, Any]) -> None:
        _EVENTS.put((key, event))

    return _run_one(RunConfig.from_dict(config), Path(runs_dir), reuse, None, progress).to_dict()


def _processes(todo: list, runs_dir: Path, jobs: int, reuse: bool, display, finished) -> None:
    """A pool of spawned processes (fork after torch has started threads can deadlock); on
    Ctrl-C or an error the workers are terminated — their last checkpoints stay valid."""
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(events, thread_budget(jobs))) as pool:
        pending = [(r, pool.apply_async(_worker, (r.config.to_dict(), str(runs_dir), reuse,
                                                  r.config.run_id()))) for r in todo]
        while pending:
            _drain(events, display, timeout=0.2)
            for item in [p for p in pending if p[1].ready()]:
                pending.remove(item)
                run, handle = item
                try:
                    result = RunResult.from_dict(handle.get())
                except Exception as exc:
                    finished(run, None, failure_text(exc))
                else:
                    finished(run, result)
        _drain(events, display)


def _drain(events: Any, display, timeout: float = 0.0) -> None:
    """Forward queued progress events; waits up to ``timeout`` for the first one."""
    while True:
        try:
            key, event = events.get(timeout=timeout) if timeout else events.get_nowait()
        except queue_module.Empty:
            return
        display.event(key, event)
        timeout = 0.0


# ------------------------------------------------------------------ ray
def _ray_task(config: dict[str, Any], runs_dir: str, reuse: bool, threads: int) -> dict[str, Any]:
    """One run on a Ray worker: checkpoints go to ``runs_dir`` where the worker can write
    (a shared file system, or the local instance), else to a temporary folder there."""
    import torch

    torch.set_num_threads(threads)
    out = Path(runs_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        writable = os.access(out, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        out = Path(tempfile.mkdtemp(prefix="lifelong-"))
    return _run_one(RunConfig.from_dict(config), out, reuse).to_dict()


def _check_ray_address(address: str, timeout: float = 5.0) -> None:
    """A ``RAY_ADDRESS`` of the form host:port (or ray://host:port) must answer within
    ``timeout`` seconds: Ray itself retries an unreachable cluster for many minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return  # "auto", "local" or empty: Ray decides
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise LifelongError(f"cannot reach the Ray cluster at RAY_ADDRESS={address} ({exc.strerror or exc}); "
                            "start it, fix RAY_ADDRESS, or unset it for a local Ray") from None


def _ray(todo: list, runs_dir: Path, jobs: int, reuse: bool, finished) -> None:
    try:
        import ray
    except ImportError:
        raise LifelongError("--executor ray needs Ray: pip install 'lifelong[ray]'") from None
    if not ray.is_initialized():
        ray.init(logging_level="ERROR", log_to_driver=False)
    threads = thread_budget(jobs) if jobs > 1 else 1
    task = ray.remote(num_cpus=threads)(_ray_task)
    pending = {task.remote(r.config.to_dict(), str(runs_dir), reuse, threads): r for r in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            run = pending.pop(ref)
            try:
                result = RunResult.from_dict(ray.get(ref))
            except Exception as exc:
                finished(run, None, failure_text(exc))
                continue
            save_result(result, runs_dir / result.run_id)
            finished(run, result)


class _Silent:
    def start(self, runs) -> None: ...
    def reused(self, key) -> None: ...
    def event(self, key, event) -> None: ...
    def finished(self, key, ok=True) -> None: ...
    def close(self) -> None: ...
