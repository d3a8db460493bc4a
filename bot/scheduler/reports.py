"""How often the line is reported and which waiting requests hear of it: the policy that keeps a long line cheap.

Working out everyone's place costs O(n) in the length of the line, so the scheduler reports at most once per
interval (`Throttle`), and a request hears of its place only when it moved noticeably (`noticeable`): places up
to `EXACT_POSITIONS` exactly, beyond that when the place moved by a fifth, or the estimated start by a fifth of
the wait. A long line then costs each request a few dozen updates, not one per start ahead of it.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.scheduler.ratelimit import Clock, TimerHandle

EXACT_POSITIONS = 10
NOTICEABLE = 0.2


def noticeable(shown: tuple[int, float] | None, position: int, at: float, now: float, tolerance: float) -> bool:
    """Whether a request last told (`position`, `at`) as `shown` should hear its new place or estimate.
    `tolerance`: seconds an estimated start must move at least."""
    if shown is None:
        return True
    shown_position, shown_at = shown
    if position != shown_position and (
        position <= EXACT_POSITIONS or abs(position - shown_position) >= NOTICEABLE * shown_position
    ):
        return True
    return abs(shown_at - at) >= max(tolerance, NOTICEABLE * (at - now))


class Throttle:
    """Runs `action(now)` at most once per `interval`, with one timer for every request to run it: at once if
    the last run is an interval old, else when it will be."""

    def __init__(self, interval: float, clock: Clock, action: Callable[[float], None]) -> None:
        self.interval = interval
        self.clock = clock
        self.action = action
        self._ran_at = float("-inf")
        self._timer: TimerHandle | None = None

    def request(self, now: float) -> None:
        if self._timer is not None:
            return
        due = self._ran_at + self.interval
        if due <= now:
            self._run(now)
        else:
            self._timer = self.clock.call_at(due, self._on_timer)

    def again(self, now: float) -> None:
        """Run once more an interval from now (what one run had to leave out)."""
        if self._timer is None:
            self._timer = self.clock.call_at(now + self.interval, self._on_timer)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._run(self.clock.monotonic())

    def _run(self, now: float) -> None:
        self._ran_at = now
        self.action(now)
