"""A strict sliding-window rate limit, and the clock it (and the scheduler) runs on.

Google counts requests per minute as "at most N in any 60 s". A leaky bucket (aiolimiter) lets nearly 2N through
in one sliding window and a semaphore limits concurrency, not rate. `SlidingWindow` keeps the start times of the
last `window` seconds instead: a permit taken at `t` comes back at `t + window + margin`, so no window ever holds
more than `limit` starts, and a permit is handed out the moment one comes back, so the whole allowance is used.

Entries carry a weight, so the same structure also bounds tokens per window. Time comes from a `Clock`, so tests
drive every wait with a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds for waiting, wall seconds for timestamps shown to users, and timers on the former."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` (synchronously, in the event loop) once `monotonic()` has reached `when`."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        # call_later rather than loop.call_at: not every loop's time() is time.monotonic() (uvloop's is not).
        return asyncio.get_running_loop().call_later(max(0.0, when - time.monotonic()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(eq=False, slots=True)
class Permit:
    """One start recorded in a window; `at` may be moved later (to the real start) and `weight` corrected."""

    at: float
    weight: float = 1.0


@dataclass(slots=True)
class SlidingWindow:
    """At most `limit` total weight among the permits of any `window` seconds (plus `margin`, a safety gap for
    clocks that differ slightly between us and the upstream). Not async: callers decide how to wait."""

    limit: float
    window: float
    margin: float = 0.0
    _permits: list[Permit] = field(default_factory=list)
    _total: float = 0.0

    def _expired(self, permit: Permit, now: float) -> bool:
        # Subtraction as in the definition "(now - window, now]", which is how an upstream checks it; in floats
        # `at + window <= now` can disagree with it at the exact boundary.
        return now - self.window - self.margin >= permit.at

    def _returns_at(self, permit: Permit) -> float:
        at = permit.at + self.window + self.margin
        while not self._expired(permit, at):
            at = math.nextafter(at, math.inf)
        return at

    def _expire(self, now: float) -> None:
        gone = 0
        for permit in self._permits:
            if not self._expired(permit, now):
                break
            gone += 1
            self._total -= permit.weight
        if gone:
            del self._permits[:gone]
        if not self._permits:
            self._total = 0.0  # no float drift survives an empty window

    def used(self, now: float) -> float:
        self._expire(now)
        return self._total

    def times(self, now: float) -> list[float]:
        """When the permits still in the window were taken, oldest first."""
        self._expire(now)
        return [permit.at for permit in self._permits]

    def next_free(self, now: float, weight: float = 1.0) -> float:
        """The earliest time >= now at which `weight` fits. A weight above the limit fits once the window is
        empty, so one oversized request waits for a clean window instead of blocking forever."""
        self._expire(now)
        excess = self._total + weight - self.limit
        if excess <= 0 or not self._permits:
            return now
        freed = 0.0
        for permit in self._permits:
            freed += permit.weight
            if freed >= excess:
                return self._returns_at(permit)
        return self._returns_at(self._permits[-1])

    def take(self, now: float, weight: float = 1.0) -> Permit:
        permit = Permit(now, weight)
        bisect.insort(self._permits, permit, key=lambda p: p.at)
        self._total += weight
        return permit

    def update(self, permit: Permit, *, at: float | None = None, weight: float | None = None) -> None:
        """Move a permit to when the request really started, or correct its weight once the cost is known."""
        if permit not in self._permits:
            return  # already expired: nothing left to correct
        if weight is not None:
            self._total += weight - permit.weight
            permit.weight = weight
        if at is not None and at != permit.at:
            self._permits.remove(permit)
            permit.at = at
            bisect.insort(self._permits, permit, key=lambda p: p.at)


class DailyCounter:
    """Starts per calendar day in `tz` (Google resets requests-per-day at midnight Pacific time); limit 0 = off."""

    def __init__(self, limit: int, tz: str = "America/Los_Angeles") -> None:
        self.limit = limit
        self._tz = ZoneInfo(tz)
        self._day: date | None = None
        self._count = 0

    def count(self, wall: float) -> int:
        today = datetime.fromtimestamp(wall, self._tz).date()
        if today != self._day:
            self._day, self._count = today, 0
        return self._count

    def exhausted(self, wall: float) -> bool:
        return self.limit > 0 and self.count(wall) >= self.limit

    def add(self, wall: float) -> None:
        self._count = self.count(wall) + 1

    def next_reset(self, wall: float) -> float:
        today = datetime.fromtimestamp(wall, self._tz).date()
        return datetime.combine(today + timedelta(days=1), datetime.min.time(), self._tz).timestamp()


def estimate_starts(
    count: int,
    now: float,
    window: SlidingWindow,
    *,
    concurrency: int,
    busy_until: list[float],
    duration: float,
    not_before: float,
) -> list[float]:
    """When the next `count` starts (of weight 1) can happen if nothing else arrives: each needs a free slot out
    of `concurrency` (the running ones free theirs at `busy_until`, each new start holds one for `duration`),
    a permit from `window`, and `not_before` (a pause) to have passed."""
    slots = [max(now, at) for at in busy_until]
    slots += [now] * max(0, concurrency - len(slots))
    heapq.heapify(slots)
    starts = window.times(now)
    known = len(starts)
    limit = max(1, int(window.limit))
    floor = max(now, not_before)
    for _ in range(count):
        at = max(floor, heapq.heappop(slots))
        if len(starts) >= limit:
            at = max(at, starts[-limit] + window.window + window.margin)
        floor = at
        starts.append(at)
        heapq.heappush(slots, at + duration)
    return starts[known:]
