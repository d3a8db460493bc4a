"""What one request's upstream calls may cost, attempt by attempt, for the spending caps.

A member is refunded whenever a request fails through no fault of theirs, but Google may bill the calls anyway:
an answer without a picture (words only, a refusal, a finish without an image) is billed for its tokens, and a
call that timed out or failed with a 5xx after it was sent may have been. The pipeline keeps one `Bill` per
request: each call that ends adds what it may cost (the answer's real cost when it said, else the request's
estimate when the provider says it may have been billed, else nothing), and a call still under way when the
request ends (cancelled, shut down) counts at the estimate. The ledger records the total whether the member
was charged or refunded (`bot.quota.ledger`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.errors import UpstreamError, UpstreamTimeout
from bot.models import GeneratedImage


def may_be_billed(exc: BaseException) -> bool:
    """Whether a failed call may have been billed. A provider that cannot tell (`billed` None) is trusted to
    have been billed only for a timeout: the request may have reached it; counting too much keeps a cap safe."""
    if not isinstance(exc, UpstreamError):
        return False
    return isinstance(exc, UpstreamTimeout) if exc.billed is None else exc.billed


@dataclass(slots=True)
class Bill:
    estimate_usd: float  # what one call is expected to cost (the price table's)
    calls: int = 0  # calls started
    settled_usd: float = 0.0  # what the calls that ended may cost
    _open: int = field(default=0, repr=False)  # calls started and not ended

    def started(self) -> None:
        self.calls += 1
        self._open += 1

    def answered(self, image: GeneratedImage) -> float:
        """A call brought a picture; returns what it cost."""
        self._open -= 1
        cost = self.estimate_usd if image.cost_usd is None else image.cost_usd
        self.settled_usd += cost
        return cost

    def failed(self, exc: BaseException) -> None:
        self._open -= 1
        if isinstance(exc, UpstreamError) and exc.cost_usd is not None:
            self.settled_usd += exc.cost_usd
        elif may_be_billed(exc):
            self.settled_usd += self.estimate_usd

    @property
    def total_usd(self) -> float:
        """Everything the calls may cost, a call still under way at the estimate."""
        return round(self.settled_usd + self._open * self.estimate_usd, 6)
