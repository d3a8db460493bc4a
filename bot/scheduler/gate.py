"""The upstream gate: every limit an attempt's start must pass, as plain synchronous state.

An attempt may start only when all agree: a strict sliding window of `rpm` starts per `window` seconds, at most
`concurrency` in flight, an optional tokens-per-window budget, an optional requests-per-day budget (Google resets
it at midnight Pacific time), no 429 pause in force, and a circuit that is not open. The scheduler asks
`ready_at`, calls `start` when it says now, and reports how each attempt ended through `end`.

Tokens: each start is charged `tokens_per_request` (an image's 1290 output tokens plus a typical prompt) up front,
because the real count is known only afterwards; a success then corrects the charge to what `usageMetadata` says.

The circuit counts consecutive UpstreamUnavailable/UpstreamTimeout. A 429 neither counts nor resets: the upstream
is alive and said when to come back, which the pause already honours, and opening the circuit would turn a rate
problem the pause handles into failures for every waiting user. Any other answer (a refusal, a text-only answer,
an operator error) proves the upstream is reachable and counts as a success.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from bot.config import DEFAULTS
from bot.errors import BotError, BudgetExhausted, CircuitOpen
from bot.scheduler.circuit import CircuitBreaker, CircuitState
from bot.scheduler.ratelimit import DailyCounter, Permit, SlidingWindow, estimate_starts

log = logging.getLogger(__name__)

# Prior for the attempt duration in ETAs until attempts were measured (typically 3-8 s).
DEFAULT_EXPECTED_DURATION_SECONDS = 6.0
_EWMA_WEIGHT = 0.2  # of the newest attempt in the running average of attempt durations


class Outcome(Enum):
    SUCCESS = "success"  # the upstream answered (with an image or a refusal)
    FAILURE = "failure"  # unavailable or timed out: counts towards opening the circuit
    NEUTRAL = "neutral"  # says nothing about the upstream's health: 429, cancelled, our own error


@dataclass(eq=False, slots=True)
class Slot:
    """One started attempt's hold on the gate."""

    started_at: float
    rpm: Permit
    tpm: Permit | None
    trial: bool


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """What an admin/status view shows."""

    queued: int
    in_flight: int
    starts_in_window: int
    tokens_in_window: int
    requests_today: int
    paused_until: float | None  # unix seconds
    circuit: CircuitState
    circuit_until: float | None  # unix seconds, while open


class Gate:
    """Monotonic seconds (`now`) for every limit; wall seconds (`wall`) only for the day and user-facing times."""

    def __init__(
        self,
        *,
        rpm: int,
        concurrency: int,
        tpm: int = DEFAULTS.upstream_tpm,
        rpd: int = DEFAULTS.upstream_rpd,
        failure_threshold: int = DEFAULTS.circuit_failure_threshold,
        cooldown: float = DEFAULTS.circuit_cooldown_seconds,
        window: float = DEFAULTS.upstream_window_seconds,
        margin: float = 0.0,  # none unless given: exact windows for tests (the bot's is a setting)
        tokens_per_request: int = DEFAULTS.upstream_tokens_per_request,
        default_retry_after: float = DEFAULTS.upstream_429_pause_seconds,
        expected_duration: float = DEFAULT_EXPECTED_DURATION_SECONDS,
    ) -> None:
        if rpm < 1 or concurrency < 1 or window <= 0:
            raise ValueError("rpm and concurrency must be >= 1 and window > 0")
        self.rpm = SlidingWindow(rpm, window, margin)
        self.tpm = SlidingWindow(tpm, window, margin) if tpm else None
        self.rpd = DailyCounter(rpd)
        self.concurrency = concurrency
        self.circuit = CircuitBreaker(failure_threshold, cooldown)
        self.tokens_per_request = tokens_per_request
        self.default_retry_after = default_retry_after
        # Running average of attempt durations; `expected_duration` is the prior until attempts were measured.
        self.avg_duration = expected_duration
        self.paused_until = float("-inf")
        self.running: set[Slot] = set()

    def refusal(self, now: float, wall: float) -> BotError | None:
        """Why no request should wait at the gate now (it would wait for nothing), as the error to raise."""
        open_until = self.circuit.open_until
        if open_until is not None and self.circuit.state(now) == "open":
            return CircuitOpen(wall + open_until - now)
        if self.rpd.exhausted(wall):
            return BudgetExhausted("upstream", self.rpd.next_reset(wall))
        return None

    def ready_at(self, now: float) -> float | None:
        """When the next start is allowed (`now` or later), or None while it waits for a running attempt to end
        (all slots busy, or the half-open trial still out)."""
        if len(self.running) >= self.concurrency or self.circuit.trial:
            return None
        ready = max(now, self.paused_until, self.rpm.next_free(now))
        if self.tpm is not None:
            ready = max(ready, self.tpm.next_free(now, self.tokens_per_request))
        return ready

    def start(self, now: float, wall: float) -> Slot:
        slot = Slot(
            started_at=now,
            rpm=self.rpm.take(now),
            tpm=self.tpm.take(now, self.tokens_per_request) if self.tpm is not None else None,
            trial=self.circuit.on_start(now),
        )
        self.rpd.add(wall)
        self.running.add(slot)
        return slot

    def restamp(self, slot: Slot, now: float) -> None:
        """The attempt really started now (an event-loop turn or more after `start`): count the window from here."""
        slot.started_at = now
        self.rpm.update(slot.rpm, at=now)
        if self.tpm is not None and slot.tpm is not None:
            self.tpm.update(slot.tpm, at=now)

    def end(self, slot: Slot, outcome: Outcome, now: float, *, tokens: int = 0, measured: bool = True) -> bool:
        """Free the slot and learn from the attempt; True when this opened the circuit. `tokens` is the real
        count when known; `measured` says whether the duration is a fair sample for ETAs (a 429 is not)."""
        self.running.discard(slot)
        if tokens > 0 and self.tpm is not None and slot.tpm is not None:
            self.tpm.update(slot.tpm, weight=tokens)
        if measured:
            self.avg_duration += _EWMA_WEIGHT * (now - slot.started_at - self.avg_duration)
        if outcome is Outcome.SUCCESS:
            self.circuit.on_success()
        elif outcome is Outcome.FAILURE:
            if self.circuit.on_failure(now, slot.trial):
                log.warning(
                    "upstream failed %d times in a row: no request is sent for %.0fs",
                    self.circuit.failures,
                    self.circuit.cooldown,
                )
                return True
        else:
            self.circuit.on_neutral(slot.trial)
        return False

    def pause(self, retry_after: float | None, now: float) -> None:
        """The upstream answered 429: no start at all until it said to come back."""
        delay = self.default_retry_after if retry_after is None else retry_after
        if now + delay > self.paused_until:
            self.paused_until = now + delay
            log.warning("upstream rate limit hit: pausing every start for %.1fs", delay)

    def estimate(self, count: int, now: float) -> list[float]:
        """When the next `count` starts should happen if nothing changes. The token budget is left out: it rarely
        binds before the request count does."""
        return estimate_starts(
            count,
            now,
            self.rpm,
            concurrency=self.concurrency,
            busy_until=[slot.started_at + self.avg_duration for slot in self.running],
            duration=self.avg_duration,
            not_before=self.paused_until,
        )

    def stats(self, now: float, wall: float, queued: int = 0) -> SchedulerStats:
        state = self.circuit.state(now)
        open_until = self.circuit.open_until
        return SchedulerStats(
            queued=queued,
            in_flight=len(self.running),
            starts_in_window=int(self.rpm.used(now)),
            tokens_in_window=int(self.tpm.used(now)) if self.tpm is not None else 0,
            requests_today=self.rpd.count(wall),
            paused_until=wall + self.paused_until - now if self.paused_until > now else None,
            circuit=state,
            circuit_until=wall + open_until - now if state == "open" and open_until is not None else None,
        )
