"""Event-loop time the scheduler spends on a long line, beside a plain FIFO that reports nothing.

    python bench/queue_load.py [--sizes 1000 4000]

N members (one request each, spread over 20 servers) ask at once; every request watches its place in line
through a progress callback, as every Discord request does. The gate then starts them one after another (the
upstream answers at once), so the line drains from N to 0 and every start changes everyone's place. The
scheduler runs with the bot's defaults ("scheduler": one report of the line per QUEUE_REPORT_INTERVAL_SECONDS)
and with a report after every start ("every start": only the thresholds and QUEUE_UPDATES_PER_REPORT bound it,
the worst case of a line that drains slowly over a long time). Printed:
the event-loop time to take the N requests in (admission and first report) and to drain them, the longest single
turn of the loop, and how many progress updates the callbacks received. The alternative is an `asyncio.Semaphore`
FIFO with no progress at all: the floor any scheduler pays for N tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings  # noqa: E402
from bot.scheduler.scheduler import Scheduler  # noqa: E402
from bot.services import build_scheduler  # noqa: E402

SERVERS = 20


class LoopMeter:
    """Longest gap between two turns of a 0-delay ticker: how long the loop was frozen at most."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> LoopMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def measure(
    requests: Callable[[], list[Coroutine[Any, Any, None]]], release: asyncio.Event
) -> tuple[float, float, float]:
    """CPU seconds to take the requests in, CPU seconds to drain them once `release` is set, and the longest
    single turn of the loop meanwhile."""
    with LoopMeter() as meter:
        started = time.process_time()
        tasks = [asyncio.create_task(request) for request in requests()]
        for _ in range(5):
            await asyncio.sleep(0)
        admitted = time.process_time() - started
        started = time.process_time()
        release.set()
        await asyncio.gather(*tasks)
        drained = time.process_time() - started
    return admitted, drained, meter.longest


def _admit(scheduler: Scheduler, user: int, key: str) -> object:
    try:  # servers as well as members once the queue is fair between servers
        return scheduler.admit(user, key, guild_id=user % SERVERS)  # type: ignore[call-arg]
    except TypeError:
        return scheduler.admit(user, key)


async def ours(n: int, report_interval: float | None = None) -> tuple[float, float, float, int]:
    settings = Settings.model_construct(upstream_rpm=10 * n, upstream_concurrency=1, queue_max_length=n)
    if report_interval is not None:
        settings = settings.model_copy(update={"queue_report_interval_seconds": report_interval})
    scheduler = build_scheduler(settings)
    updates = 0
    release = asyncio.Event()

    async def progress(_: object) -> None:
        nonlocal updates
        updates += 1

    async def job() -> None:
        await release.wait()

    async def one(i: int) -> None:
        ticket = _admit(scheduler, i, str(i))
        try:
            await scheduler.run(ticket, job, progress)  # type: ignore[arg-type]
        finally:
            scheduler.release(ticket)  # type: ignore[arg-type]

    admitted, drained, longest = await measure(lambda: [one(i) for i in range(n)], release)
    return admitted, drained, longest, updates


async def fifo(n: int) -> tuple[float, float, float, int]:
    gate = asyncio.Semaphore(1)
    release = asyncio.Event()

    async def one() -> None:
        async with gate:
            await release.wait()

    return (*await measure(lambda: [one() for _ in range(n)], release), 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    args = parser.parse_args()
    print(f"{'queued':>7} {'contender':>12} {'admit s':>8} {'drain s':>8} {'longest turn ms':>16} {'updates':>9}")
    for n in args.sizes:
        for name, contender in (
            ("scheduler", ours),
            ("every start", lambda n: ours(n, report_interval=0.0)),
            ("fifo", fifo),
        ):
            admitted, drained, longest, updates = asyncio.run(contender(n))  # type: ignore[operator]
            print(f"{n:>7} {name:>12} {admitted:8.3f} {drained:8.3f} {longest * 1000:16.1f} {updates:>9}")


if __name__ == "__main__":
    main()
