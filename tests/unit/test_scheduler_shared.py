"""The scheduler with the gate shared through Redis (REDIS_URL): two schedulers here stand for two processes,
each with its own Redis client, on a real redis-server. Real time, with a window of a fraction of a second; what
is asserted is what the upstream would see (starts in any window, slots in flight, order), never durations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from bot.config import Settings
from bot.errors import RateLimited, ShuttingDown
from bot.scheduler.gate import Gate
from bot.scheduler.scheduler import Scheduler
from bot.scheduler.shared_limits import SharedGate, SharedLimits
from bot.services import build_scheduler
from tests.unit.test_ratelimit import most_in_any_window

WINDOW = 0.4
MARGIN = 0.04  # the bot's default margin is 0.8 % of the window; a test machine under load jitters more


class Upstream:
    """Records each attempt's start (monotonic, one clock for every "process" here) and who sent it."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, str, str]] = []  # (time, process, name)
        self.in_flight = 0
        self.max_in_flight = 0

    def job(self, process: str, name: str, duration: float = 0.05, fail: BaseException | None = None):
        async def call() -> str:
            self.starts.append((time.monotonic(), process, name))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(duration)
            finally:
                self.in_flight -= 1
            if fail is not None:
                raise fail
            return name

        return call


@pytest.fixture
async def processes(redis_url) -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(rpm: int = 4, concurrency: int = 4, **limits: object) -> Scheduler:
        client = aioredis.Redis.from_url(redis_url)
        shared = SharedGate(
            client, SharedLimits(rpm=rpm, concurrency=concurrency, window=WINDOW, margin=MARGIN, **limits)
        )
        local = Gate(rpm=rpm, concurrency=concurrency, window=WINDOW, margin=MARGIN)
        made.append(Scheduler(local, user_max_pending=100, shared=shared))
        return made[-1]

    yield make
    for scheduler in made:
        await scheduler.aclose()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def submit(scheduler: Scheduler, user: int, key: str, job: Callable[[], Awaitable[str]]) -> str:
    ticket = scheduler.admit(user, key)
    try:
        return await scheduler.run(ticket, job, None)
    finally:
        scheduler.release(ticket)


async def test_two_processes_share_one_window_and_one_concurrency_cap(processes):
    upstream = Upstream()
    a, b = processes(rpm=4, concurrency=2), processes(rpm=4, concurrency=2)
    calls = [
        submit(p, user, f"{name}{user}-{i}", upstream.job(name, f"{user}-{i}", duration=0.08))
        for name, p in (("a", a), ("b", b))
        for user in range(3)
        for i in range(3)
    ]
    assert len(await asyncio.gather(*calls)) == 18
    times = [t for t, _, _ in upstream.starts]
    assert most_in_any_window(times, WINDOW) <= 4  # each process alone would allow 4: 8 together
    assert upstream.max_in_flight <= 2
    assert {p for _, p, _ in upstream.starts} == {"a", "b"}


async def test_fairness_between_members_holds_within_each_process(processes):
    upstream = Upstream()
    a, b = processes(rpm=2, concurrency=1), processes(rpm=2, concurrency=1)
    burst = [submit(a, 1, f"one-{i}", upstream.job("a", f"one-{i}")) for i in range(4)]
    other = asyncio.ensure_future(submit(b, 9, "nine", upstream.job("b", "nine")))
    await asyncio.sleep(0)  # member 1's burst is in line first
    late = [submit(a, 2, "two", upstream.job("a", "two")), submit(a, 3, "three", upstream.job("a", "three"))]
    await asyncio.gather(*burst, *late, other)
    in_a = [n for _, p, n in upstream.starts if p == "a"]
    # Members 2 and 3 asked after member 1's whole burst, and still start before its third and fourth.
    assert in_a.index("two") < in_a.index("one-2") and in_a.index("three") < in_a.index("one-3")


async def test_a_429_in_one_process_pauses_every_process(processes):
    upstream = Upstream()
    a, b = processes(), processes()
    with pytest.raises(RateLimited):
        await submit(a, 1, "x", upstream.job("a", "x", fail=RateLimited("slow down", retry_after=0.5)))
    told = time.monotonic()
    stats = await b.current_stats()
    assert stats.paused_until is not None  # the other process sees the pause in /queue ...
    await submit(b, 2, "y", upstream.job("b", "y"))
    [(started, _, _)] = [s for s in upstream.starts if s[1] == "b"]
    assert started >= told + 0.5 - 0.1  # ... and honours it (0.1: the pause began before `told`)


async def test_shutdown_while_waiting_at_the_shared_gate_leaks_no_slot(processes):
    upstream = Upstream()
    a, b = processes(concurrency=1), processes(concurrency=1)
    running = asyncio.ensure_future(submit(a, 1, "long", upstream.job("a", "long", duration=0.6)))
    await until(lambda: bool(upstream.starts))
    waiting = asyncio.ensure_future(submit(b, 2, "stuck", upstream.job("b", "stuck")))
    await until(lambda: b.stats().in_flight == 1)  # b's request passed its own gate and waits for a's slot
    report = await b.shutdown(0)
    with pytest.raises(ShuttingDown):
        await waiting
    assert report.interrupted == 1 and (await a.current_stats()).in_flight == 1
    await running
    for _ in range(100):  # the release is sent in the background
        if (await a.current_stats()).in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert (await a.current_stats()).in_flight == 0
    assert [n for _, _, n in upstream.starts] == ["long"]


async def test_queue_stats_count_every_process_s_starts(processes):
    upstream = Upstream()
    a, b = processes(), processes()
    await asyncio.gather(*(submit(a, u, f"k{u}", upstream.job("a", f"k{u}")) for u in range(3)))
    assert (await b.current_stats()).starts_in_window == 3  # within the window: 3 starts of 4, all a's
    assert b.stats().starts_in_window == 0  # b's own gate saw none


def test_redis_url_builds_a_shared_gate_with_the_upstream_settings():
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url="redis://127.0.0.1:1/3",
        upstream_rpm=7,
        upstream_concurrency=3,
        upstream_tpm=9000,
        upstream_rpd=500,
        process_lease_seconds=45,
    )
    shared = build_scheduler(settings).shared
    assert shared is not None
    assert (shared.limits.rpm, shared.limits.concurrency, shared.limits.tpm, shared.limits.rpd) == (7, 3, 9000, 500)
    assert shared.limits.lease_seconds == 45 and shared.limits.margin == pytest.approx(0.5)
    assert build_scheduler(Settings(_env_file=None)).shared is None  # type: ignore[call-arg]
