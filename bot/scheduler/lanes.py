"""A provider's own lane in a failover chain: a `Gate` of its own behind `bot.providers.failover.Lane`.

The scheduler's gate in front is the bot-wide limit and fair queue; behind it, each provider of a chain keeps its
own circuit breaker, its own 429 pause and, when configured (PROVIDER_N_RPM / PROVIDER_N_CONCURRENCY), its own
rate window and concurrency cap. Without them a lane never says "busy": only the front gate limits the rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.ops.metrics import Metrics
from bot.providers.failover import Availability, LaneOutcome
from bot.scheduler.gate import Gate, Outcome, SchedulerStats, Slot
from bot.scheduler.ratelimit import Clock, SystemClock

log = logging.getLogger(__name__)

# The rate and concurrency of a lane that has no limit of its own.
UNLIMITED = 1_000_000
_OUTCOMES: dict[LaneOutcome, Outcome] = {
    "success": Outcome.SUCCESS,
    "failure": Outcome.FAILURE,
    "neutral": Outcome.NEUTRAL,
}


@dataclass(frozen=True, slots=True)
class LaneReport:
    """One provider's gate as `/queue` shows it."""

    name: str
    label: str  # the name users read
    stats: SchedulerStats
    rpm: int | None  # its own starts per window (PROVIDER_N_RPM); None: only the bot-wide limit
    concurrency: int | None  # its own requests in flight (PROVIDER_N_CONCURRENCY); None: only the bot-wide cap


class GateLane:
    """Implements `bot.providers.failover.Lane` for the provider `name` (`label`: the name users read; `rpm` and
    `concurrency`: its own limits, None when it has none and the gate's are `UNLIMITED`)."""

    def __init__(
        self,
        name: str,
        gate: Gate,
        clock: Clock | None = None,
        *,
        label: str = "",
        rpm: int | None = None,
        concurrency: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.label = label or name
        self.gate = gate
        self.rpm = rpm
        self.concurrency = concurrency
        self._clock: Clock = clock or SystemClock()
        self.metrics = metrics or Metrics.disabled()

    def __repr__(self) -> str:
        return f"GateLane({self.name!r})"

    def availability(self) -> tuple[Availability, float | None]:
        now = self._clock.monotonic()
        gate = self.gate
        if gate.refusal(now, self._clock.time()) is not None:
            until = gate.circuit.open_until
            return "open", (until - now if until is not None else None)
        if gate.paused_until > now:
            return "paused", gate.paused_until - now
        ready = gate.ready_at(now)
        if ready is None:
            return "busy", None  # every slot taken, or the half-open trial still out
        return ("ready", None) if ready <= now else ("busy", ready - now)

    def start(self) -> Slot:
        return self.gate.start(self._clock.monotonic(), self._clock.time())

    def end(self, ticket: object, outcome: LaneOutcome, *, tokens: int = 0) -> None:
        assert isinstance(ticket, Slot)
        result = _OUTCOMES[outcome]
        now = self._clock.monotonic()
        opened = self.gate.end(ticket, result, now, tokens=tokens, measured=result is not Outcome.NEUTRAL)
        self.metrics.circuit_state(provider=self.name, state=self.gate.circuit.state(now))
        if opened:
            log.warning(
                "provider %s failed %d times in a row: the chain skips it for %.0fs",
                self.name,
                self.gate.circuit.failures,
                self.gate.circuit.cooldown,
            )

    def pause(self, retry_after: float | None) -> None:
        """The provider answered 429."""
        self.metrics.upstream_rate_limited(provider=self.name)
        self.gate.pause(retry_after, self._clock.monotonic())

    def stats(self) -> SchedulerStats:
        return self.gate.stats(self._clock.monotonic(), self._clock.time())

    def report(self) -> LaneReport:
        return LaneReport(self.name, self.label, self.stats(), self.rpm, self.concurrency)
