"""What several bench scripts share: the quota ledger's setup (bench/quota.py, bench/scale.py), starting the same
job in several OS processes at one moment, and the most starts an upstream sees in any window.

Import it after putting the repository's root on `sys.path`, as every bench script does first."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable, Coroutine
from typing import Any

from bot.models import ImageRequest, Price
from bot.quota.ledger import QuotaLedger
from bot.storage.db import Database

GUILD = 1
NOON = 1_717_243_200.0  # 2024-06-01 12:00 UTC
ROLE = 77
PER_USER = 10

Job = Callable[..., Coroutine[Any, Any, Any]]


def request(user: int) -> ImageRequest:
    return ImageRequest(user_id=user, channel_id=2, prompt="bench", guild_id=GUILD, role_ids=(ROLE, 78, 79))


def make_ledger(db: Database, daily_quota: int, user_global_daily_credits: int = -1) -> QuotaLedger:
    """A ledger with every server and global cap on (none binds), on a fixed day."""
    return QuotaLedger(
        db,
        daily_quota=daily_quota,
        default_price=Price(1, 0.039),
        server_daily_image_cap=10**7,
        global_daily_image_cap=10**7,
        server_daily_cost_cap_usd=10**6,
        global_daily_cost_cap_usd=10**6,
        user_global_daily_credits=user_global_daily_credits,
        clock=lambda: NOON,
    )


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
