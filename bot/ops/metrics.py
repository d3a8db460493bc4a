"""What the bot tells its monitoring: prometheus-client metrics in a registry of our own, behind a small typed API.

The core calls `Metrics` methods (`request_finished`, `queue_wait`, `spent`, ...) and never touches
prometheus-client itself, so the metric names, labels and buckets live here once. The registry is ours, not the
library's global one: two bots (or two tests) in one process never see each other's numbers, and `/metrics`
shows exactly what we declare here.

No member or server id ever becomes a label: every label takes its values from a fixed set (doors, outcomes,
tiers, rate-limit scopes) or, for names only known at run time (models, providers, moderation categories), from a
small open set that refuses anything that does not look like a name (a snowflake is all digits) and stops
growing after a few dozen values. Anything refused is counted as "other", so a bug can cost a label's precision
but never blow up the number of time series.

`Metrics(enabled=False)` keeps the same API (and the same label checks) and records nothing: the core calls it
unconditionally, whether `METRICS_PORT` is set or not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.models import RequestKind

log = logging.getLogger(__name__)

PREFIX = "imagebot"
OTHER = "other"

DOORS: tuple[str, ...] = tuple(kind.value for kind in RequestKind)
# How a request ended, as seen from outside: one word per thing an operator would act on differently.
OUTCOMES = (
    "delivered",
    "blocked",
    "quota",
    "budget",
    "queue_full",
    "invalid",
    "cancelled",
    "shutdown",
    "timeout",
    "rate_limited",
    "unavailable",
    "upstream_error",
    "internal",
)
# Which moderation tier refused: our local filter, the optional AI second opinion, or the provider's own filter.
TIERS = ("local", "ai", "upstream")
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
# Discord's X-RateLimit-Scope header on a 429.
DISCORD_SCOPES = ("user", "global", "shared", "unknown")

# Exception class name -> outcome. Looked up along the exception's MRO by name, so this module needs none of the
# classes (and a subclass added later lands on its parent's outcome).
_OUTCOME_BY_ERROR = {
    "ModerationBlocked": "blocked",
    "CoolingDown": "blocked",
    "PromptBlocked": "blocked",
    "ImageBlocked": "blocked",
    "QuotaExceeded": "quota",
    "BudgetExhausted": "budget",
    "QueueFull": "queue_full",
    "InvalidRequest": "invalid",
    "NotAllowed": "invalid",
    "NotHere": "invalid",
    "Cancelled": "cancelled",
    "CancelledError": "cancelled",
    "ShuttingDown": "shutdown",
    "UpstreamTimeout": "timeout",
    "TimeoutError": "timeout",
    "RateLimited": "rate_limited",
    "UpstreamUnavailable": "unavailable",
    "CircuitOpen": "unavailable",
    "UpstreamError": "upstream_error",
}

# Queue waits range from nothing to minutes behind a 429 pause; upstream calls from 3 s to the 90 s deadline.
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
UPSTREAM_BUCKETS = (1, 2, 3, 5, 8, 12, 20, 30, 45, 60, 90, 120)

# A run-time name: starts with a letter (so never an id), no spaces, not absurdly long.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/+-]{0,79}$")


def outcome_of(exc: BaseException | None) -> str:
    """The `outcome` label of a request that ended with `exc` (None: delivered)."""
    if exc is None:
        return "delivered"
    for cls in type(exc).__mro__:
        outcome = _OUTCOME_BY_ERROR.get(cls.__name__)
        if outcome is not None:
            return outcome
    return "internal"


class LabelValues:
    """The values one label may take: a fixed set, or an open set of names capped at `max_values`."""

    def __init__(self, name: str, fixed: Iterable[str] | None = None, *, max_values: int = 32) -> None:
        self.name = name
        self.fixed = frozenset(fixed) if fixed is not None else None
        self.max_values = max_values
        self.seen: set[str] = set()
        self._warned = False

    def check(self, value: object) -> str:
        text = str(value)
        if self.fixed is not None:
            if text in self.fixed:
                return text
        elif text in self.seen:
            return text
        elif _NAME.match(text) and len(self.seen) < self.max_values:
            self.seen.add(text)
            return text
        if not self._warned:  # once per label: a loop of bad values must not flood the log
            self._warned = True
            log.warning("metrics: a value of label %r was counted as %r (not an allowed name)", self.name, OTHER)
        return OTHER


class _Off:
    """Stands in for every metric when metrics are off."""

    def labels(self, *args: object, **kwargs: object) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class Metrics:
    def __init__(self, *, enabled: bool = True, models: Iterable[str] = (), providers: Iterable[str] = ()) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.door = LabelValues("door", DOORS)
        self.outcome = LabelValues("outcome", OUTCOMES)
        self.tier = LabelValues("tier", TIERS)
        self.scope = LabelValues("scope", DISCORD_SCOPES)
        self.state = LabelValues("state", CIRCUIT_STATES)
        # Configured names are known up front; others (a failover to an unlisted model) still fit in the cap.
        self.model = LabelValues("model")
        self.provider = LabelValues("provider")
        self.category = LabelValues("category", max_values=48)
        for name in models:
            self.model.check(name)
        for name in providers:
            self.provider.check(name)

        def make(kind: type, name: str, doc: str, labels: tuple[str, ...] = (), **extra: Any) -> Any:
            if not enabled:
                return _Off()
            return kind(f"{PREFIX}_{name}", doc, labels, registry=self.registry, **extra)

        self._requests = make(
            Counter,
            "requests",
            "Image requests by door, model, provider and how they ended",
            ("door", "model", "provider", "outcome"),
        )
        self._queue_depth = make(Gauge, "queue_depth", "Requests waiting for the upstream gate")
        self._queue_wait = make(
            Histogram, "queue_wait_seconds", "Time from admission to the upstream start", buckets=QUEUE_WAIT_BUCKETS
        )
        self._upstream_latency = make(
            Histogram,
            "upstream_latency_seconds",
            "One upstream call, from start to answer",
            ("provider", "model"),
            buckets=UPSTREAM_BUCKETS,
        )
        self._upstream_429 = make(Counter, "upstream_rate_limited", "429 answers from a provider", ("provider",))
        self._circuit = make(
            Gauge, "upstream_circuit_state", "Circuit per provider: 0 closed, 1 half-open, 2 open", ("provider",)
        )
        self._credits = make(Counter, "credits_spent", "Credits committed for delivered images", ("model", "provider"))
        self._dollars = make(Counter, "cost_usd", "Real cost of delivered images in US dollars", ("model", "provider"))
        self._blocks = make(Counter, "moderation_blocks", "Refused prompts by tier and category", ("tier", "category"))
        self._discord_429 = make(Counter, "discord_rate_limited", "429 answers from Discord's REST API", ("scope",))
        self._gateway_latency = make(Gauge, "gateway_latency_seconds", "Discord gateway heartbeat latency")
        self._loop_lag = make(Gauge, "event_loop_lag_seconds", "How late the event loop ran a periodic timer")

    @classmethod
    def disabled(cls) -> Metrics:
        return cls(enabled=False)

    # --- the API the core calls ---------------------------------------------------------------------------------

    def request_finished(self, *, door: str, model: str, provider: str, outcome: str) -> None:
        """Once per request that reached the pipeline, however it ended (`outcome_of(exc)` names the ending)."""
        self._requests.labels(
            self.door.check(door), self.model.check(model), self.provider.check(provider), self.outcome.check(outcome)
        ).inc()

    def queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def queue_wait(self, seconds: float) -> None:
        self._queue_wait.observe(max(0.0, seconds))

    def upstream_call(self, *, provider: str, model: str, seconds: float) -> None:
        self._upstream_latency.labels(self.provider.check(provider), self.model.check(model)).observe(max(0.0, seconds))

    def upstream_rate_limited(self, *, provider: str) -> None:
        self._upstream_429.labels(self.provider.check(provider)).inc()

    def circuit_state(self, *, provider: str, state: str) -> None:
        """`state`: closed, half_open or open (what `CircuitBreaker.state` returns)."""
        self._circuit.labels(self.provider.check(provider)).set(CIRCUIT_STATES.get(self.state.check(state), -1))

    def spent(self, *, model: str, provider: str, credits: float, usd: float) -> None:
        """A delivered image's charge: credits from the ledger, dollars from the real cost."""
        labels = (self.model.check(model), self.provider.check(provider))
        self._credits.labels(*labels).inc(max(0.0, credits))
        self._dollars.labels(*labels).inc(max(0.0, usd))

    def moderation_blocked(self, *, tier: str, category: str) -> None:
        self._blocks.labels(self.tier.check(tier), self.category.check(category)).inc()

    def discord_rate_limited(self, *, scope: str = "unknown") -> None:
        self._discord_429.labels(self.scope.check(scope)).inc()

    def gateway_latency(self, seconds: float) -> None:
        self._gateway_latency.set(seconds)

    def loop_lag(self, seconds: float) -> None:
        self._loop_lag.set(seconds)

    # --- exposition --------------------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus' text format (what `/metrics` serves)."""
        return generate_latest(self.registry)
