"""Who made a picture, what it cost, and which failed attempts may have been billed anyway.

A provider may bill a request whose client gave up (a timeout after the request was sent), whose answer the bot
could not use (a url that would not download, bytes that are not an image), or whose answer had no picture
(words only, a refusal: Gemini bills their tokens). Spending caps must count those, so a failed attempt becomes a
`Charge`, carried by the result that a later provider delivered or by the error that ends the request. Providers
only say whether an error may have been billed (`mark_billed`) and, when the answer said, what it cost
(`cost_usd`); the chain, which knows the provider's name and price, turns that into a `Charge`. The pipeline
keeps one `Bill` per request over all its attempts, per provider (`Bill.costs`); the ledger records them whether
the member was charged or refunded, so spend can be shown per provider and model.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.errors import Charge, UpstreamError, UpstreamTimeout
from bot.models import Cost, GeneratedImage


def attribute(
    image: GeneratedImage,
    *,
    provider: str,
    label: str = "",
    cost_usd: float | None = None,
    charges: Iterable[Charge] = (),
    fallback: bool = False,
) -> GeneratedImage:
    """The same image with its provenance (`label`: the provider's name as users read it); a cost the provider
    itself reported wins over the price table."""
    return dataclasses.replace(
        image,
        provider=provider,
        provider_label=label or provider,
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


@dataclass(slots=True)
class Bill:
    """What one request's upstream calls may cost, over every attempt (retries included), per provider: each
    attempt that brought a picture at its cost (else `estimate_usd`), each failed one by its charges, or, from a
    provider outside a chain, by what it said it cost (else the estimate, when it may have been billed). A call cut
    off by cancellation or shutdown may have reached the provider: it counts at the estimate, for no provider in
    particular (the chain was between providers or inside one; nobody can tell which)."""

    estimate_usd: float  # what one call is expected to cost (the price table's)
    model: str = ""  # our id of the request's model
    calls: int = 0
    _by_provider: dict[str, list[float]] = field(default_factory=dict)  # name -> [usd, pictures, failed]

    @property
    def total_usd(self) -> float:
        return sum(usd for usd, _, _ in self._by_provider.values())

    def costs(self) -> tuple[Cost, ...]:
        """What each provider may bill, in the order they were first called."""
        return tuple(
            Cost(name, self.model, usd, int(pictures), int(failed))
            for name, (usd, pictures, failed) in self._by_provider.items()
        )

    def started(self) -> None:
        self.calls += 1

    def answered(self, image: GeneratedImage) -> None:
        self._charged(image.charges)
        self._add(image.provider, image.cost_usd, picture=True)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self._add("", None)
        elif isinstance(exc, UpstreamError):
            if exc.charges:
                self._charged(exc.charges)
            elif may_be_billed(exc):
                self._add(exc.provider or "", exc.cost_usd)

    def _charged(self, charges: Iterable[Charge]) -> None:
        for charge in charges:
            self._add(charge.provider, charge.cost_usd)

    def _add(self, provider: str, cost_usd: float | None, *, picture: bool = False) -> None:
        entry = self._by_provider.setdefault(provider, [0.0, 0, 0])
        entry[0] += self.estimate_usd if cost_usd is None else cost_usd
        entry[1 if picture else 2] += 1


def describe(costs: Sequence[Cost], *, always: bool = False) -> str:
    """'; gemini $0.0336 (1 failed), gw $0.0400' for the log, when more than one provider was paid (or `always`)."""
    if len(costs) < 2 and not always:
        return ""
    return "; " + ", ".join(
        f"{c.provider or 'unknown'} ${c.usd:.4f}" + (f" ({c.failed} failed)" if c.failed else "") for c in costs
    )
