"""A circuit breaker for the upstream: stop sending for a cool-down after repeated failures, then probe."""

from __future__ import annotations

from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed -> (`threshold` consecutive failures) -> open -> (`cooldown` s) -> half-open: one trial start; its
    success closes the circuit, its failure opens it again. Times are monotonic seconds."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until: float | None = None
        self.trial = False  # a half-open trial is in flight

    def state(self, now: float) -> CircuitState:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def on_start(self, now: float) -> bool:
        """Record a start; True when it is the half-open trial."""
        self.trial = self.state(now) == "half_open"
        return self.trial

    def on_success(self) -> None:
        self.failures, self.open_until, self.trial = 0, None, False

    def on_failure(self, now: float, was_trial: bool) -> bool:
        """Count a failure; True when it opened the circuit."""
        self.failures += 1
        if was_trial or (self.open_until is None and self.failures >= self.threshold):
            self.open_until, self.trial = now + self.cooldown, False
            return True
        return False

    def on_neutral(self, was_trial: bool) -> None:
        """An attempt that says nothing about the upstream's health (429, cancelled) ended."""
        if was_trial:
            self.trial = False
