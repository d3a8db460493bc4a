"""What several bench scripts share: starting the same job in several OS processes at one moment, and the most
starts an upstream sees in any window."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable, Coroutine
from typing import Any

Job = Callable[..., Coroutine[Any, Any, Any]]


def _worker(label: str, fn: Job, args: tuple[Any, ...], barrier: Any, out: Any) -> None:
    barrier.wait()  # every process starts at the same moment
    try:
        out.put(asyncio.run(fn(*args)))
    except BaseException as exc:
        out.put(f"{label}: {exc!r}")
        raise


def in_processes(label: str, fn: Job, jobs: list[tuple[Any, ...]]) -> list[Any]:
    """`fn(*args)` for each of `jobs` in its own spawned process, all released together; their results in the
    order they finished. `fn` must be importable (a module-level function)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(label, fn, args, barrier, out)) for args in jobs]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError(f"a process failed: {failed[0]}")
    return results


def most_in_any_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
