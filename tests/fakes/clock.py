"""A clock that only moves when a test says so, for code that takes a `bot.ratelimit.Clock`.

    clock = FakeClock()
    task = asyncio.create_task(limiter.acquire())
    await clock.advance(60)   # fires every timer due in the next 60 s, in order, letting tasks run in between

Nothing sleeps for real; `advance` yields to the event loop between timers so woken tasks react at the fake
time they were woken.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

# Event-loop turns given to woken tasks after each timer; chains in the code under test are a few awaits deep.
_SETTLE_TURNS = 50


class _Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, start: float = 1000.0, wall: float = 1_750_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:  # like asyncio.sleep(0): yield once, no timer to wait for
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        timer = self.call_at(self._now + seconds, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            timer.cancel()

    def pending(self) -> list[float]:
        """When the live timers are due, soonest first."""
        return sorted(when for when, _, timer in self._timers if not timer.cancelled)

    async def settle(self) -> None:
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, stopping at every timer due on the way."""
        target = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()
