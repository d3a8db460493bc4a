"""Who made a picture, what it cost, and which failed attempts may have been billed anyway.

A gateway may bill a request whose client gave up (a timeout after the request was sent) or whose answer the
bot could not use (a url that would not download, bytes that are not an image). Spending caps must count those,
so a failed attempt carries a `Charge`, on the result that a later provider delivered or on the error that ends
the request. Providers only say whether an error may have been billed (`mark_billed`); the failover, which knows
the provider's name and price table, turns that into a `Charge`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from bot.errors import UpstreamError, UpstreamTimeout
from bot.models import GeneratedImage


@dataclass(frozen=True, slots=True)
class Charge:
    """An attempt that failed after the provider may have billed it."""

    provider: str
    model: str
    cost_usd: float | None  # the provider's configured price; None: unknown (count the bot's estimate)
    why: str  # the error's class name, for the ledger and the log


@dataclass(frozen=True, slots=True)
class ProviderImage(GeneratedImage):
    """A `GeneratedImage` with its provenance: which provider made it, its real cost when the provider said or
    its price table knows, and earlier attempts of the same request that may have been billed."""

    provider: str = ""
    cost_usd: float | None = None
    charges: tuple[Charge, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ProviderImage({self.mime_type}, {len(self.data)} bytes, model={self.model!r}, "
            f"provider={self.provider!r}, cost_usd={self.cost_usd!r})"
        )


def attribute(
    image: GeneratedImage,
    *,
    provider: str,
    cost_usd: float | None = None,
    charges: Iterable[Charge] = (),
) -> ProviderImage:
    """The same image with its provenance; a cost the provider already reported is kept."""
    values = {f.name: getattr(image, f.name) for f in fields(GeneratedImage)}
    known = image.cost_usd if isinstance(image, ProviderImage) else None
    earlier = image.charges if isinstance(image, ProviderImage) else ()
    return ProviderImage(
        **values,
        provider=provider,
        cost_usd=known if known is not None else cost_usd,
        charges=(*charges, *earlier),
    )


def mark_billed(exc: UpstreamError, billed: bool) -> UpstreamError:
    """Say whether the attempt that raised `exc` may have been billed (True) or surely was not (False)."""
    exc.billed = billed  # type: ignore[attr-defined]
    return exc


def may_be_billed(exc: UpstreamError) -> bool:
    """Whether to count the attempt in spend. A timeout nobody judged counts: the request may have reached the
    provider, and counting too much keeps a spending cap safe where counting too little would not."""
    billed = getattr(exc, "billed", None)
    return isinstance(exc, UpstreamTimeout) if billed is None else bool(billed)


def charges_of(exc: BaseException) -> tuple[Charge, ...]:
    """Attempts of a failed request that may have been billed (empty for any error not from a provider)."""
    found = getattr(exc, "charges", ())
    return found if isinstance(found, tuple) else ()


def add_charges(exc: UpstreamError, charges: Iterable[Charge]) -> UpstreamError:
    exc.charges = (*charges_of(exc), *charges)  # type: ignore[attr-defined]
    return exc
