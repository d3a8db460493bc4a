"""Who made a picture, what it cost, and which failed attempts may have been billed anyway.

A provider may bill a request whose client gave up (a timeout after the request was sent), whose answer the bot
could not use (a url that would not download, bytes that are not an image), or whose answer had no picture
(words only, a refusal: Gemini bills their tokens). Spending caps must count those, so a failed attempt becomes a
`Charge`, carried by the result that a later provider delivered or by the error that ends the request. Providers
only say whether an error may have been billed (`mark_billed`) and, when the answer said, what it cost
(`cost_usd`); the chain, which knows the provider's name and price, turns that into a `Charge`. The pipeline
keeps one `Bill` per request over all its attempts; the ledger records the total whether the member was charged
or refunded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import Charge, UpstreamError, UpstreamTimeout
from bot.models import GeneratedImage


def attribute(
    image: GeneratedImage,
    *,
    provider: str,
    cost_usd: float | None = None,
    charges: Iterable[Charge] = (),
    fallback: bool = False,
) -> GeneratedImage:
    """The same image with its provenance; a cost the provider itself reported wins over the price table."""
    return dataclasses.replace(
        image,
        provider=provider,
        fallback=fallback,
        cost_usd=image.cost_usd if image.cost_usd is not None else cost_usd,
        charges=(*charges, *image.charges),
    )


def mark_billed(exc: UpstreamError, billed: bool) -> UpstreamError:
    """Say whether the attempt that raised `exc` may have been billed (True) or surely was not (False)."""
    exc.billed = billed
    return exc


def may_be_billed(exc: UpstreamError) -> bool:
    """Whether to count the attempt in spend. A timeout nobody judged counts: the request may have reached the
    provider, and counting too much keeps a spending cap safe where counting too little would not."""
    return isinstance(exc, UpstreamTimeout) if exc.billed is None else exc.billed


def add_charges(exc: UpstreamError, charges: Iterable[Charge]) -> UpstreamError:
    exc.charges = (*exc.charges, *charges)
    return exc


def spent_usd(charges: Iterable[Charge], estimate: float, image: GeneratedImage | None = None) -> float:
    """What a request cost in US dollars: its picture (the provider's cost, else `estimate`) plus every earlier
    attempt that may have been billed (at its provider's price, else `estimate`)."""
    own = 0.0 if image is None else image.cost_usd if image.cost_usd is not None else estimate
    return own + sum(c.cost_usd if c.cost_usd is not None else estimate for c in charges)


@dataclass(slots=True)
class Bill:
    """What one request's upstream calls may cost, over every attempt (retries included): each attempt that
    brought a picture at its cost (else `estimate_usd`), each failed one by its charges, or, from a provider
    outside a chain, by what it said it cost (else the estimate, when it may have been billed). A call cut off by
    cancellation or shutdown may have reached the provider: it counts at the estimate."""

    estimate_usd: float  # what one call is expected to cost (the price table's)
    calls: int = 0
    total_usd: float = 0.0

    def started(self) -> None:
        self.calls += 1

    def answered(self, image: GeneratedImage) -> None:
        self.total_usd += spent_usd(image.charges, self.estimate_usd, image)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.total_usd += self.estimate_usd
        elif isinstance(exc, UpstreamError):
            if exc.charges:
                self.total_usd += spent_usd(exc.charges, self.estimate_usd)
            elif may_be_billed(exc):
                self.total_usd += exc.cost_usd if exc.cost_usd is not None else self.estimate_usd
