"""The scheduler as its callers and the upstream see it: when attempts reach the upstream, in which order, what
each request's `run` returns or raises, and what its progress callback hears. Time is a FakeClock."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.errors import (
    BudgetExhausted,
    Cancelled,
    CircuitOpen,
    PromptBlocked,
    QueueFull,
    RateLimited,
    ShuttingDown,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import GeneratedImage, Progress, Usage
from bot.providers.retry import RetryPolicy, call_with_retries
from bot.scheduler.gate import Gate
from bot.scheduler.scheduler import Scheduler, ShutdownReport
from bot.services import build_scheduler
from tests.fakes.clock import FakeClock
from tests.unit.test_ratelimit import most_in_any_window

LA = ZoneInfo("America/Los_Angeles")


class Upstream:
    """Stands in for the image model: records when each attempt reached it and how many were in flight; each
    attempt takes `duration` fake seconds, then returns its name or raises what it was given."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.starts: list[tuple[float, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled: list[str] = []

    def job(self, name: str, duration: float = 5.0, *outcomes: BaseException | object) -> Callable[[], Awaitable]:
        """`outcomes` are used one per attempt (the last one repeats); the default is to return `name`."""
        script = list(outcomes) or [name]

        async def call() -> object:
            self.starts.append((self.clock.monotonic(), name))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            outcome = script.pop(0) if len(script) > 1 else script[0]
            try:
                await self.clock.sleep(duration)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
            finally:
                self.in_flight -= 1
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return call

    def times(self, name: str | None = None) -> list[float]:
        return [t for t, n in self.starts if name is None or n == name]

    def names(self) -> list[str]:
        return [n for _, n in self.starts]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def upstream(clock: FakeClock) -> Upstream:
    return Upstream(clock)


def make(clock: FakeClock, *, user_max_pending: int = 1000, eta_tolerance: float = 1.0, **gate: float) -> Scheduler:
    options: dict = {"rpm": 10, "concurrency": 10, "window": 60.0, **gate}
    return Scheduler(Gate(**options), user_max_pending=user_max_pending, eta_tolerance=eta_tolerance, clock=clock)


async def request(scheduler: Scheduler, user: int, key: str, job: Callable[[], Awaitable], progress=None):
    """What the pipeline does with a request: admit, one attempt through the gate, release however it ends."""
    ticket = scheduler.admit(user, key)
    try:
        return await scheduler.run(ticket, job, progress)
    finally:
        scheduler.release(ticket)


def submit(scheduler: Scheduler, user: int, key: str, job: Callable[[], Awaitable], progress=None) -> asyncio.Task:
    return asyncio.create_task(request(scheduler, user, key, job, progress))


def recorder(into: list[Progress]) -> Callable[[Progress], Awaitable[None]]:
    async def progress(p: Progress) -> None:
        into.append(p)

    return progress


# --- the window ------------------------------------------------------------------------------------------------


async def test_burst_gets_exactly_rpm_starts_per_window_and_never_more(clock, upstream):
    scheduler = make(clock, rpm=10, concurrency=10)
    t0 = clock.monotonic()
    tasks = [submit(scheduler, u, f"{u}-{i}", upstream.job(f"{u}-{i}")) for u in range(7) for i in range(5)]
    await clock.advance(300)
    assert sorted(await asyncio.gather(*tasks)) == sorted(upstream.names())
    starts = upstream.times()
    assert most_in_any_window(starts, 60) == 10
    # The whole allowance is used: every permit is reused the moment it comes back.
    assert Counter(int((t - t0) // 60) for t in starts) == {0: 10, 1: 10, 2: 10, 3: 5}


@pytest.mark.parametrize("seed", range(4))
async def test_steady_overload_uses_every_permit_and_never_exceeds_the_window(clock, upstream, seed):
    rng = random.Random(seed)
    rpm, window = 10, 60.0
    scheduler = make(clock, rpm=rpm, concurrency=4, window=window)
    t0 = clock.monotonic()
    tasks = []
    # 15 requests a minute from 6 users for 10 minutes: always more demand than the 10 a minute allowed.
    for n in range(150):
        tasks.append(submit(scheduler, rng.randrange(6), f"r{n}", upstream.job(f"r{n}", rng.uniform(3, 8))))
        await clock.advance(4)
    await clock.advance(600)
    await asyncio.gather(*tasks)
    starts = upstream.times()
    assert len(starts) == 150
    assert most_in_any_window(starts, window) == rpm
    assert upstream.max_in_flight <= 4
    assert sum(1 for t in starts if t < t0 + 600) == 10 * rpm


async def test_concurrency_bound(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=3)
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 10)) for i in range(10)]
    await clock.advance(100)
    await asyncio.gather(*tasks)
    t0 = upstream.times()[0]
    assert upstream.max_in_flight == 3
    assert upstream.times() == [t0 + 10 * (i // 3) for i in range(10)]


# --- 429s and budgets ------------------------------------------------------------------------------------------


async def test_a_429_pauses_the_whole_gate_and_the_retry_comes_back_through_it(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=5)
    policy = RetryPolicy(max_attempts=3, backoff_base=1, max_retry_wait=60, deadline=600)
    job = upstream.job("a", 1, RateLimited("429", retry_after=30), "image")
    ticket = scheduler.admit(1, "a")
    retried = asyncio.create_task(
        call_with_retries(lambda: scheduler.run(ticket, job, None), policy, sleep=clock.sleep, rand=lambda: 0.0)
    )
    t0 = clock.monotonic()
    await clock.advance(2)  # the 429 arrived at t0 + 1
    others = [submit(scheduler, u, f"b{u}", upstream.job(f"b{u}", 1)) for u in range(2, 5)]
    await clock.advance(60)
    assert await retried == "image"
    await asyncio.gather(*others)
    assert upstream.times("a") == [t0, t0 + 31]
    assert all(t >= t0 + 31 for t in upstream.times()[1:])
    assert scheduler.stats().paused_until is None


async def test_a_429_without_retry_info_pauses_for_the_default(clock, upstream):
    scheduler = make(clock, rpm=100, default_retry_after=7)
    first = submit(scheduler, 1, "a", upstream.job("a", 1, RateLimited("429", retry_after=None)))
    await clock.advance(1)
    with pytest.raises(RateLimited):
        await first
    assert scheduler.stats().paused_until == pytest.approx(clock.time() + 7)
    second = submit(scheduler, 2, "b", upstream.job("b", 1))
    await clock.advance(10)
    await second
    assert upstream.times("b") == [upstream.times("a")[0] + 1 + 7]


async def test_token_budget_charges_an_estimate_and_reconciles_to_the_real_count(clock, upstream):
    scheduler = make(clock, rpm=100, tpm=3000, tokens_per_request=1400)
    image = GeneratedImage(b"png", "image/png", "m", usage=Usage(10, 690, 700))
    t0 = clock.monotonic()
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 1, image)) for i in range(4)]
    await clock.advance(100)
    await asyncio.gather(*tasks)
    # 2 x 1400 fit at once; once they report 700 each, a third fits; the fourth waits for the window.
    assert upstream.times() == [t0, t0, t0 + 1, t0 + 60]


async def test_daily_budget_refuses_at_once_and_resets_at_midnight_pacific(upstream):
    midnight = datetime(2026, 1, 16, tzinfo=LA).timestamp()
    clock = FakeClock(wall=midnight - 600)
    upstream.clock = clock
    scheduler = make(clock, rpm=100, concurrency=1, rpd=2)
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 1)) for i in range(3)]
    await clock.advance(1.5)  # r1 started, which used the day's last request: r2 is told now, not tomorrow
    assert tasks[2].done()
    with pytest.raises(BudgetExhausted) as info:
        await tasks[2]
    assert info.value.resets_at_ts == midnight
    with pytest.raises(BudgetExhausted):
        scheduler.admit(9, "late")
    await clock.advance(600)
    assert await asyncio.gather(*tasks[:2]) == ["r0", "r1"]
    assert await request(scheduler, 9, "tomorrow", upstream.job("tomorrow", 0)) == "tomorrow"


# --- fairness and admission ------------------------------------------------------------------------------------


async def test_one_users_burst_does_not_starve_others(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1)
    tasks = [submit(scheduler, 1, f"a{i}", upstream.job(f"a{i}", 1)) for i in range(50)]
    tasks += [submit(scheduler, 2, "b0", upstream.job("b0", 1)), submit(scheduler, 3, "c0", upstream.job("c0", 1))]
    await clock.advance(100)
    await asyncio.gather(*tasks)
    assert upstream.names()[:6] == ["a0", "a1", "b0", "c0", "a2", "a3"]


async def test_round_robin_interleaves_backlogged_users(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1)
    blocker = submit(scheduler, 0, "x", upstream.job("x", 1))
    tasks = [submit(scheduler, u, f"{u}{i}", upstream.job(f"{u}{i}", 1)) for u in (1, 2, 3) for i in range(3)]
    await clock.advance(20)
    await asyncio.gather(blocker, *tasks)
    assert upstream.names() == ["x", "10", "20", "30", "11", "21", "31", "12", "22", "32"]


async def test_per_user_cap_on_queued_plus_running(clock, upstream):
    scheduler = make(clock, user_max_pending=2)
    first = scheduler.admit(1, "a")
    scheduler.admit(1, "b")
    with pytest.raises(QueueFull) as info:
        scheduler.admit(1, "c")
    assert info.value.limit == 2
    scheduler.admit(2, "other user")
    scheduler.release(first)
    scheduler.admit(1, "c")


# --- cancel ----------------------------------------------------------------------------------------------------


async def test_cancel_removes_a_waiting_request_but_not_a_running_one(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1)
    a = submit(scheduler, 1, "a", upstream.job("a", 10))
    b = submit(scheduler, 2, "b", upstream.job("b", 10))
    c = submit(scheduler, 3, "c", upstream.job("c", 10))
    await clock.advance(1)
    assert scheduler.cancel("b") is True
    assert scheduler.cancel("a") is False  # running
    assert scheduler.cancel("nobody") is False
    await clock.advance(0)
    with pytest.raises(Cancelled):
        await b
    await clock.advance(30)
    assert await a == "a" and await c == "c"
    t0 = upstream.times("a")[0]
    assert upstream.starts == [(t0, "a"), (t0 + 10, "c")]
    assert scheduler.cancel("c") is False  # finished and released


async def test_cancel_before_the_first_attempt_and_a_cancelled_caller_leak_nothing(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1, user_max_pending=1)
    ticket = scheduler.admit(1, "early")
    assert scheduler.cancel("early") is True
    with pytest.raises(Cancelled):
        await scheduler.run(ticket, upstream.job("early"), None)
    scheduler.release(ticket)
    running = submit(scheduler, 2, "running", upstream.job("running", 10))
    abandoned = submit(scheduler, 3, "abandoned", upstream.job("abandoned", 10))
    await clock.advance(1)
    abandoned.cancel()  # e.g. the interaction's task was torn down
    await clock.advance(20)
    assert await running == "running"
    assert abandoned.cancelled()
    assert upstream.names() == ["running"]
    assert await request(scheduler, 3, "again", upstream.job("again", 0)) == "again"
    assert scheduler.stats().queued == 0 and scheduler.stats().in_flight == 0


async def test_a_request_between_retries_can_be_cancelled(clock, upstream):
    scheduler = make(clock, rpm=100)
    ticket = scheduler.admit(1, "retrying")
    attempt = asyncio.create_task(scheduler.run(ticket, upstream.job("retrying", 1, UpstreamUnavailable("503")), None))
    await clock.advance(1)
    with pytest.raises(UpstreamUnavailable):
        await attempt
    assert scheduler.cancel("retrying") is True
    with pytest.raises(Cancelled):
        await scheduler.run(ticket, upstream.job("retrying"), None)
    assert len(upstream.starts) == 1


async def test_a_caller_cancelled_in_the_same_turn_its_start_comes_does_not_break_the_gate(clock, upstream):
    scheduler = make(clock, rpm=1, concurrency=5)
    t0 = clock.monotonic()
    a = submit(scheduler, 1, "a", upstream.job("a", 1))
    await clock.advance(0)
    tasks: dict[str, asyncio.Task] = {}

    def teardown() -> None:
        # As when a timer cancels b's task and, in the same loop turn, something else wakes the gate: the gate
        # sees b's request before b could clean up.
        tasks["b"].cancel()
        scheduler.cancel("c")

    clock.call_at(t0 + 60, teardown)  # due with, and ahead of, the gate's own timer for the next permit
    tasks["b"] = submit(scheduler, 2, "b", upstream.job("b", 1))
    tasks["c"] = submit(scheduler, 3, "c", upstream.job("c", 1))
    await clock.advance(61)
    assert tasks["b"].cancelled()
    with pytest.raises(Cancelled):
        await tasks["c"]
    assert await a == "a"
    assert await request(scheduler, 4, "d", upstream.job("d", 0)) == "d"
    assert upstream.starts == [(t0, "a"), (t0 + 61, "d")]


# --- progress --------------------------------------------------------------------------------------------------


async def test_progress_reports_falling_positions_with_etas_then_generating(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1, expected_duration=10)
    seen: dict[str, list[Progress]] = {k: [] for k in "abcd"}
    tasks = [submit(scheduler, i, k, upstream.job(k, 10), recorder(seen[k])) for i, k in enumerate("abcd")]
    await clock.advance(60)
    await asyncio.gather(*tasks)
    assert seen["a"] == [Progress("generating")]
    assert seen["d"] == [
        Progress("queued", 3, 30.0),
        Progress("queued", 2, 20.0),
        Progress("queued", 1, 10.0),
        Progress("generating"),
    ]


async def test_eta_follows_the_window_when_it_binds(clock, upstream):
    scheduler = make(clock, rpm=2, concurrency=10, expected_duration=5)
    seen: list[Progress] = []
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 5)) for i in range(4)]
    tasks.append(submit(scheduler, 9, "late", upstream.job("late", 5), recorder(seen)))
    await clock.advance(200)
    await asyncio.gather(*tasks)
    assert seen[0] == Progress("queued", 3, 120.0)
    assert seen[-1] == Progress("generating")
    assert upstream.times("late") == [upstream.times()[0] + 120]


async def test_slow_or_failing_progress_callbacks_do_not_hold_up_anyone(clock, upstream, caplog):
    scheduler = make(clock, rpm=100, concurrency=1)
    stuck = asyncio.Event()

    async def hangs(p: Progress) -> None:
        await stuck.wait()

    async def fails(p: Progress) -> None:
        raise RuntimeError("discord said no")

    tasks = [
        submit(scheduler, 1, "a", upstream.job("a", 10), hangs),
        submit(scheduler, 2, "b", upstream.job("b", 10), fails),
        submit(scheduler, 3, "c", upstream.job("c", 10), hangs),
    ]
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        await clock.advance(40)
    assert await asyncio.gather(*tasks) == ["a", "b", "c"]
    t0 = upstream.times()[0]
    assert upstream.times() == [t0, t0 + 10, t0 + 20]
    assert "progress callback of request b failed" in caplog.text
    await scheduler.shutdown(0)  # ends the senders still stuck in `hangs`


# --- shutdown --------------------------------------------------------------------------------------------------


async def test_shutdown_refuses_waiting_at_once_and_gives_running_the_grace_period(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=2)
    short = submit(scheduler, 1, "short", upstream.job("short", 10))
    long = submit(scheduler, 2, "long", upstream.job("long", 100))
    waiting = [submit(scheduler, 3, "w1", upstream.job("w1")), submit(scheduler, 4, "w2", upstream.job("w2"))]
    await clock.advance(1)
    stopping = asyncio.create_task(scheduler.shutdown(grace=30))
    await clock.advance(0)
    for task in waiting:
        assert task.done()
        with pytest.raises(ShuttingDown):
            await task
    with pytest.raises(ShuttingDown):
        scheduler.admit(5, "new")
    await clock.advance(10)
    assert await short == "short"
    assert not long.done()
    await clock.advance(21)
    with pytest.raises(ShuttingDown):
        await long
    assert upstream.cancelled == ["long"]
    assert await stopping == ShutdownReport(refused=2, finished=1, interrupted=1)
    assert upstream.names() == ["short", "long"]


# --- circuit breaker -------------------------------------------------------------------------------------------


async def test_circuit_opens_after_consecutive_failures_and_tells_waiting_users_at_once(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=2, failure_threshold=3, cooldown=60)
    down = UpstreamUnavailable("503")
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 1, down)) for i in range(5)]
    await clock.advance(2)  # r0, r1 fail at +1; r2 fails at +2: the third in a row
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [UpstreamUnavailable] * 4 + [CircuitOpen]
    assert results[4].until_ts == pytest.approx(clock.time() + 60)
    assert len(upstream.starts) == 4
    with pytest.raises(CircuitOpen):
        scheduler.admit(9, "meanwhile")
    assert scheduler.stats().circuit == "open"

    await clock.advance(60)  # half-open: one trial at a time
    trial = submit(scheduler, 1, "trial", upstream.job("trial", 5, UpstreamTimeout("slow")))
    queued = submit(scheduler, 2, "queued", upstream.job("queued", 5))
    await clock.advance(1)
    assert upstream.names()[4:] == ["trial"]
    await clock.advance(5)  # the trial failed: open again, the queued one is told at once
    with pytest.raises(UpstreamTimeout):
        await trial
    with pytest.raises(CircuitOpen):
        await queued

    await clock.advance(60)
    trial = submit(scheduler, 1, "trial2", upstream.job("trial2", 5))
    queued = submit(scheduler, 2, "queued2", upstream.job("queued2", 5))
    await clock.advance(20)
    assert await trial == "trial2" and await queued == "queued2"
    assert upstream.times("queued2")[0] == upstream.times("trial2")[0] + 5  # only after the trial succeeded
    assert scheduler.stats().circuit == "closed"


async def test_429s_and_answers_do_not_open_the_circuit(clock, upstream):
    scheduler = make(clock, rpm=100, concurrency=1, failure_threshold=2, default_retry_after=0)
    outcomes = [
        UpstreamUnavailable("503"),
        RateLimited("429", retry_after=0),  # neither counts nor resets
        PromptBlocked("SAFETY"),  # it answered: resets the count
        UpstreamUnavailable("503"),
        RateLimited("429", retry_after=0),
        RateLimited("429", retry_after=0),
    ]
    for i, outcome in enumerate(outcomes):
        with pytest.raises(type(outcome)):
            task = submit(scheduler, 1, f"r{i}", upstream.job(f"r{i}", 1, outcome))
            await clock.advance(1)
            await task
    assert scheduler.stats().circuit == "closed"
    task = submit(scheduler, 1, "last", upstream.job("last", 1, UpstreamUnavailable("503")))
    await clock.advance(1)
    with pytest.raises(UpstreamUnavailable):
        await task
    assert scheduler.stats().circuit == "open"


# --- status and settings ---------------------------------------------------------------------------------------


async def test_stats_show_queue_in_flight_window_and_pause(clock, upstream):
    scheduler = make(clock, rpm=3, concurrency=2)
    tasks = [submit(scheduler, i, f"r{i}", upstream.job(f"r{i}", 10)) for i in range(5)]
    await clock.advance(1)
    stats = scheduler.stats()
    assert (stats.queued, stats.in_flight, stats.starts_in_window) == (3, 2, 2)
    assert stats.circuit == "closed" and stats.paused_until is None
    await clock.advance(200)
    await asyncio.gather(*tasks)
    assert scheduler.stats().queued == 0


def test_from_settings_takes_the_upstream_settings():
    settings = Settings(
        discord_token="t" * 20,
        gemini_api_key="k" * 20,
        upstream_rpm=7,
        upstream_concurrency=2,
        upstream_tpm=9000,
        upstream_rpd=100,
        user_max_pending=4,
        circuit_failure_threshold=6,
        circuit_cooldown_seconds=30,
    )
    scheduler = build_scheduler(settings, clock=FakeClock())
    gate = scheduler.gate
    assert (gate.rpm.limit, gate.rpm.window, gate.concurrency) == (7, 60.0, 2)
    assert gate.tpm is not None and gate.tpm.limit == 9000 and gate.rpd.limit == 100
    assert (gate.circuit.threshold, gate.circuit.cooldown) == (6, 30)
    for i in range(4):
        scheduler.admit(1, str(i))
    with pytest.raises(QueueFull):
        scheduler.admit(1, "5")
