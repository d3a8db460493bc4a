"""The building blocks of the scheduler: the sliding window, its `async with` limiter, the daily counter, the
start-time estimate, the round-robin queue and the circuit breaker. Time is a FakeClock; nothing sleeps."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.scheduler.circuit import CircuitBreaker
from bot.scheduler.fairqueue import FairQueue
from bot.scheduler.ratelimit import DailyCounter, SlidingWindow, estimate_starts

LA = ZoneInfo("America/Los_Angeles")


def most_in_any_window(starts: list[float], window: float) -> int:
    """Slide a window ending at every start: the most starts in any (t - window, t]."""
    ordered = sorted(starts)
    return max((sum(1 for s in ordered if t - window < s <= t) for t in ordered), default=0)


# --- SlidingWindow -------------------------------------------------------------------------------------------


def test_permit_returns_exactly_one_window_after_it_was_taken():
    w = SlidingWindow(limit=2, window=60)
    w.take(0.0)
    w.take(10.0)
    assert w.next_free(10.0) == 60.0
    assert w.next_free(59.999) == 60.0
    assert w.next_free(60.0) == 60.0  # the first permit is back
    w.take(60.0)
    assert w.next_free(60.0) == 70.0
    assert w.used(60.0) == 2


def test_margin_delays_the_return():
    w = SlidingWindow(limit=1, window=60, margin=0.5)
    w.take(0.0)
    assert w.next_free(1.0) == 60.5


def test_weights_free_enough_oldest_permits():
    w = SlidingWindow(limit=3000, window=60)
    w.take(0.0, 1000)
    w.take(5.0, 1000)
    w.take(9.0, 500)
    assert w.next_free(10.0, 500) == 10.0  # 2500 + 500 fits
    assert w.next_free(10.0, 1500) == 60.0  # 1000 must leave: the oldest permit is enough
    assert w.next_free(10.0, 1600) == 65.0  # 1100 must leave: the two oldest


def test_a_weight_above_the_limit_waits_for_an_empty_window_instead_of_forever():
    w = SlidingWindow(limit=1000, window=60)
    assert w.next_free(0.0, 5000) == 0.0
    w.take(0.0, 5000)
    w.take(3.0, 10)
    assert w.next_free(4.0, 5000) == 63.0


def test_update_moves_a_permit_to_its_real_start_and_corrects_its_weight():
    w = SlidingWindow(limit=2, window=60)
    first = w.take(0.0)
    w.take(1.0)
    w.update(first, at=2.0)  # it really started after the second one
    assert w.times(3.0) == [1.0, 2.0]
    assert w.next_free(3.0) == 61.0
    w.update(first, weight=0.25)
    assert w.used(3.0) == 1.25


@pytest.mark.parametrize("seed", range(5))
def test_taking_whenever_next_free_allows_never_exceeds_the_limit_and_uses_all_of_it(seed):
    rng = random.Random(seed)
    limit, window = rng.randint(1, 12), 60.0
    w = SlidingWindow(limit, window)
    now, starts = 0.0, []
    while now < 600:
        now = max(now + rng.choice([0.0, 0.0, rng.uniform(0, 20)]), w.next_free(now))
        w.take(now)
        starts.append(now)
    assert most_in_any_window(starts, window) == limit


# --- DailyCounter ----------------------------------------------------------------------------------------------


def test_daily_counter_resets_at_midnight_pacific():
    evening = datetime(2026, 3, 7, 23, 30, tzinfo=LA).timestamp()
    midnight = datetime(2026, 3, 8, 0, 0, tzinfo=LA).timestamp()
    counter = DailyCounter(2)
    counter.add(evening)
    counter.add(evening + 60)
    assert counter.exhausted(evening + 120)
    assert counter.next_reset(evening) == midnight
    assert not counter.exhausted(midnight)
    assert counter.count(midnight) == 0


def test_daily_counter_with_limit_zero_never_runs_out():
    counter = DailyCounter(0)
    for _ in range(1000):
        counter.add(0.0)
    assert not counter.exhausted(0.0)


# --- estimate_starts -----------------------------------------------------------------------------------------


def test_estimate_follows_the_window_when_it_binds():
    w = SlidingWindow(2, 60)
    w.take(0.0)
    w.take(0.0)
    got = estimate_starts(3, 1.0, w, concurrency=10, busy_until=[], duration=5, not_before=0)
    assert got == [60.0, 60.0, 120.0]


def test_estimate_follows_concurrency_and_the_average_duration_when_they_bind():
    w = SlidingWindow(100, 60)
    got = estimate_starts(4, 0.0, w, concurrency=2, busy_until=[4.0], duration=10, not_before=0)
    assert got == [0.0, 4.0, 10.0, 14.0]


def test_estimate_waits_for_a_pause():
    w = SlidingWindow(100, 60)
    got = estimate_starts(2, 0.0, w, concurrency=5, busy_until=[], duration=10, not_before=30)
    assert got == [30.0, 30.0]


# --- FairQueue -------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Item:
    user_id: int
    name: str
    group: int | None = None  # all in one server: members take turns (servers: tests/unit/test_scheduler_load.py)


def test_round_robin_serves_one_request_per_user_per_turn():
    q: FairQueue[Item] = FairQueue()
    for i in range(4):
        q.push(Item(1, f"a{i}"))
    q.push(Item(2, "b0"))
    q.push(Item(3, "c0"))
    q.push(Item(3, "c1"))
    expected = ["a0", "b0", "c0", "a1", "c1", "a2", "a3"]
    assert [item.name for item in q.order()] == expected
    assert [q.pop().name for _ in range(len(q))] == expected
    assert not q


def test_removing_a_users_last_request_takes_them_out_of_the_turn():
    q: FairQueue[Item] = FairQueue()
    a, b, c = Item(1, "a"), Item(2, "b"), Item(3, "c")
    for item in (a, b, c):
        q.push(item)
    assert q.remove(b) and not q.remove(b)
    assert [item.name for item in q.clear()] == ["a", "c"]
    assert len(q) == 0


# --- CircuitBreaker --------------------------------------------------------------------------------------------


def test_circuit_opens_after_threshold_then_lets_one_trial_through():
    c = CircuitBreaker(threshold=3, cooldown=60)
    assert not c.on_failure(0, was_trial=False)
    assert not c.on_failure(1, was_trial=False)
    assert c.on_failure(2, was_trial=False)
    assert c.state(50) == "open"
    assert c.state(62) == "half_open"
    assert c.on_start(62) and c.trial
    assert c.on_failure(70, was_trial=True)  # the trial failed: open again
    assert c.state(100) == "open" and c.state(130) == "half_open"
    c.on_start(130)
    c.on_success()
    assert c.state(130) == "closed" and c.failures == 0


def test_a_success_resets_the_consecutive_count():
    c = CircuitBreaker(threshold=2, cooldown=60)
    c.on_failure(0, was_trial=False)
    c.on_success()
    assert not c.on_failure(1, was_trial=False)
    assert c.state(1) == "closed"
