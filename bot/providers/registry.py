"""The image models the bot knows: what each accepts and what it costs, in one table, and the credits derived
from it (reference: gemini-api.md, "Model lineup" and "Gemini 3 image models").

Prices are dollars per image for each size and tier (standard, and the half-price Flex and Batch lanes), as
copied from Google's pricing pages by third parties; the operator overrides any of them with `MODEL_PRICES`.
One credit is the default model's cheapest standard image (or `CREDIT_USD`); a (model, size, tier) costs its
price in credits, rounded up, so a member's daily credits bound what they can spend whatever they pick.

The real cost of an answer comes from its token counts: the picture at its per-image price scaled by the image
tokens actually billed, text and thinking tokens at the model's text rate, prompt tokens at its input rate.

A model id the table does not know is allowed (Google adds models faster than we release) with conservative
capabilities: no `imageSize`, the ten common ratios, three input images, no multi-turn history, priced like the
most expensive known 1K image until the operator sets its price.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bot.models import IMAGE_SIZES, RATIOS_10, RATIOS_14, TIERS, Price, Tier, Usage

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-nano-banana-2.1"
# Ids Google shut down (they answer 404 NOT_FOUND), with what to use instead.
RETIRED: dict[str, str] = {
    "gemini-3-pro-image-preview": "gemini-3-pro-image",
    "gemini-3.1-flash-image-preview": DEFAULT_MODEL,
    "gemini-2.5-flash-image-preview": DEFAULT_MODEL,
}
# Flex and Batch bill half (reference: "Relax lane"); applied to per-image prices and token rates alike.
TIER_FACTOR: dict[Tier, float] = {"standard": 1.0, "flex": 0.5, "batch": 0.5}
MICROS = 1_000_000


def _half(prices: dict[str, float]) -> dict[str, float]:
    return {size: round(price / 2, 6) for size, price in prices.items()}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One image model: what it accepts and what it costs."""

    id: str
    name: str  # what members read ("Nano Banana Pro")
    sizes: tuple[str, ...]  # sizes members may pick, smallest first
    ratios: tuple[str, ...]
    max_inputs: int  # input images per request, earlier turns' pictures included
    # Thinks before answering and signs its answers: edits can send its earlier answers back (multi-turn).
    thinks: bool
    # Whether `imageSize` is sent (2.5 Flash Image refuses the field: its one size is implied).
    sends_size: bool
    image_tokens: dict[str, int]  # output tokens of one picture per size, as billed
    prices: dict[Tier, dict[str, float]]  # dollars per image, per tier and size
    input_rate: float  # dollars per million prompt tokens (standard tier)
    text_rate: float  # dollars per million text and thinking output tokens (standard tier)
    legacy: bool = False  # served only to projects that used it before: new projects get 404
    known: bool = True  # in the table (False: an id the operator configured that we know nothing of)
    note: str = ""

    @property
    def default_size(self) -> str:
        return "1K" if "1K" in self.sizes else self.sizes[0]

    def fit_size(self, wanted: str | None) -> str:
        """`wanted` if the model has it, else its largest size below it (else its smallest): for defaults only,
        never for a size the member chose."""
        if wanted in self.sizes:
            return wanted
        if wanted not in IMAGE_SIZES:
            return self.default_size
        below = [s for s in self.sizes if IMAGE_SIZES.index(s) < IMAGE_SIZES.index(wanted)]
        return below[-1] if below else self.sizes[0]

    def larger_sizes(self, size: str) -> tuple[str, ...]:
        """The sizes above `size` (what the re-render buttons offer)."""
        if size not in self.sizes:
            return ()
        return self.sizes[self.sizes.index(size) + 1 :]


_G3 = {"thinks": True, "sends_size": True}
LINEUP: tuple[ModelSpec, ...] = (
    ModelSpec(
        DEFAULT_MODEL,
        "Nano Banana 2.1",
        sizes=("1K", "2K", "4K"),
        ratios=RATIOS_14,
        max_inputs=14,
        image_tokens={"1K": 1120, "2K": 1680, "4K": 3768},
        # The 4K price is disputed between copies of Google's page.
        prices={"standard": {"1K": 0.0336, "2K": 0.0504, "4K": 0.113}},
        input_rate=0.30,
        text_rate=2.50,
        note="Google's default for new projects",
        **_G3,
    ),
    ModelSpec(
        "gemini-3-pro-image",
        "Nano Banana Pro",
        sizes=("1K", "2K", "4K"),
        ratios=RATIOS_10,
        max_inputs=14,
        image_tokens={"1K": 1120, "2K": 1120, "4K": 2000},
        prices={"standard": {"1K": 0.134, "2K": 0.134, "4K": 0.24}},
        input_rate=2.00,
        text_rate=12.00,
        note="best text rendering and detail",
        **_G3,
    ),
    ModelSpec(
        "gemini-3.1-flash-lite-image",
        "Nano Banana 2 Lite",
        sizes=("1K",),
        ratios=RATIOS_10,
        max_inputs=10,
        image_tokens={"1K": 1120},
        prices={"standard": {"1K": 0.0336}},
        input_rate=0.10,
        text_rate=0.40,
        note="fastest, 1K only",
        **_G3,
    ),
    ModelSpec(
        "gemini-3.1-flash-image",
        "Nano Banana 2",
        sizes=("512", "1K", "2K", "4K"),
        ratios=RATIOS_14,
        max_inputs=14,
        image_tokens={"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
        prices={"standard": {"512": 0.045, "1K": 0.067, "2K": 0.101, "4K": 0.151}},
        input_rate=0.50,
        text_rate=3.00,
        note="deprecated 2026-10-06, still served",
        **_G3,
    ),
    ModelSpec(
        "gemini-2.5-flash-image",
        "Nano Banana (legacy)",
        sizes=("1K",),
        ratios=RATIOS_10,
        max_inputs=3,
        thinks=False,
        sends_size=False,
        image_tokens={"1K": 1290},
        prices={"standard": {"1K": 0.039}},
        input_rate=0.30,
        text_rate=2.50,
        legacy=True,
        note="only for projects that used it before 2026-09-18",
    ),
)
# Flex and Batch at half the standard price unless a row says otherwise.
LINEUP = tuple(
    replace(
        m,
        prices={
            "standard": m.prices["standard"],
            "flex": _half(m.prices["standard"]),
            "batch": _half(m.prices["standard"]),
        },
    )
    for m in LINEUP
)
KNOWN: dict[str, ModelSpec] = {m.id: m for m in LINEUP}
_CONSERVATIVE = max((m for m in LINEUP), key=lambda m: m.prices["standard"][m.default_size])

_PRICE_KEY = re.compile(r"^(?P<model>[\w.\-/]+):(?P<what>512|1K|2K|4K|input|text)(?::(?P<tier>standard|flex|batch))?$")


def unknown_spec(model_id: str) -> ModelSpec:
    """What the bot assumes of a model it does not know: the least any Gemini image model accepts, priced like
    the most expensive known 1K image."""
    base = _CONSERVATIVE
    price = base.prices["standard"][base.default_size]
    return ModelSpec(
        model_id,
        model_id,
        sizes=("1K",),
        ratios=RATIOS_10,
        max_inputs=3,
        thinks=False,
        sends_size=False,
        image_tokens={"1K": base.image_tokens[base.default_size]},
        prices={tier: {"1K": round(price * TIER_FACTOR[tier], 6)} for tier in TIERS},
        input_rate=base.input_rate,
        text_rate=base.text_rate,
        known=False,
        note="unknown to the bot: conservative capabilities",
    )


def normalise_id(model_id: str) -> str:
    return model_id.strip().removeprefix("models/")


def parse_prices(text: str) -> dict[str, dict[str, float]]:
    """`MODEL_PRICES`: comma-separated `model:SIZE[:tier]=dollars per image` or `model:input|text=dollars per
    million tokens`, e.g. `gemini-3-pro-image:4K=0.24,gemini-nano-banana-2.1:4K:flex=0.06`. Returns
    {model: {"4K:standard": 0.24, "input": 2.0, ...}}; raises ValueError naming the bad entry."""
    found: dict[str, dict[str, float]] = {}
    for raw in (item.strip() for item in text.split(",")):
        if not raw:
            continue
        key, sep, value = raw.partition("=")
        match = _PRICE_KEY.match(key.strip())
        if not sep or match is None:
            raise ValueError(f"{raw!r} is not model:SIZE[:tier]=dollars or model:input|text=dollars per million")
        try:
            amount = float(value)
        except ValueError:
            raise ValueError(f"{raw!r}: {value.strip()!r} is not a number") from None
        if not 0 <= amount < 1000 or math.isnan(amount):
            raise ValueError(f"{raw!r}: the price must be between 0 and 1000 dollars")
        what = match["what"]
        slot = what if what in ("input", "text") else f"{what}:{match['tier'] or 'standard'}"
        found.setdefault(normalise_id(match["model"]), {})[slot] = amount
    return found


def _with_prices(spec: ModelSpec, overrides: dict[str, float]) -> ModelSpec:
    prices: dict[Tier, dict[str, float]] = {tier: dict(spec.prices[tier]) for tier in TIERS}
    changed_standard: set[str] = set()
    for slot, amount in overrides.items():
        if slot in ("input", "text"):
            continue
        size, tier = slot.split(":")
        if size not in spec.sizes:
            raise ValueError(f"MODEL_PRICES sets {spec.id} at {size}, a size it does not make ({'/'.join(spec.sizes)})")
        prices[tier][size] = amount  # type: ignore[index]
        if tier == "standard":
            changed_standard.add(size)
    # A standard price set alone also moves the relax lanes, unless they were set themselves.
    for size in changed_standard:
        for tier in ("flex", "batch"):
            if f"{size}:{tier}" not in overrides:
                prices[tier][size] = round(prices["standard"][size] * TIER_FACTOR[tier], 6)  # type: ignore[index]
    return replace(
        spec,
        prices=prices,
        input_rate=overrides.get("input", spec.input_rate),
        text_rate=overrides.get("text", spec.text_rate),
    )


@dataclass(frozen=True)
class ModelRegistry:
    """The models this bot runs with: the default, the ones members may choose (default first), prices with the
    operator's overrides, and credits."""

    default: ModelSpec
    enabled: tuple[ModelSpec, ...]
    credit_usd: float
    _specs: dict[str, ModelSpec] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        default: str = DEFAULT_MODEL,
        enabled: Iterable[str] = (),
        *,
        prices: str = "",
        credit_usd: float | None = None,
    ) -> ModelRegistry:
        """Raises ValueError for a retired id or a bad price override (the settings report it)."""
        overrides = parse_prices(prices)
        ids = [normalise_id(default), *(normalise_id(m) for m in enabled if m.strip())]
        ordered = list(dict.fromkeys(ids))
        for model_id in ordered:
            if model_id in RETIRED:
                raise ValueError(f"{model_id} was shut down by Google (it answers 404); use {RETIRED[model_id]}")
        specs: dict[str, ModelSpec] = {}
        for model_id in {*KNOWN, *ordered, *overrides}:
            spec = KNOWN.get(model_id) or unknown_spec(model_id)
            specs[model_id] = _with_prices(spec, overrides.get(model_id, {}))
        default_spec = specs[ordered[0]]
        cheapest = min(default_spec.prices["standard"].values())
        credit = credit_usd if credit_usd else cheapest
        if credit <= 0:
            raise ValueError("one credit must be worth more than $0 (set CREDIT_USD or give the default model a price)")
        return cls(default_spec, tuple(specs[m] for m in ordered), credit, specs)

    def get(self, model_id: str) -> ModelSpec:
        """Any model's spec, enabled or not (an unknown id gets the conservative one)."""
        model_id = normalise_id(model_id)
        return self._specs.get(model_id) or unknown_spec(model_id)

    def find(self, name: str) -> ModelSpec | None:
        """An enabled model by id or friendly name, case-insensitive."""
        wanted = normalise_id(name).lower()
        return next((m for m in self.enabled if wanted in (m.id.lower(), m.name.lower())), None)

    def is_enabled(self, model_id: str) -> bool:
        return any(m.id == model_id for m in self.enabled)

    @property
    def sizes(self) -> tuple[str, ...]:
        """Every size some enabled model makes, smallest first."""
        return tuple(s for s in IMAGE_SIZES if any(s in m.sizes for m in self.enabled))

    @property
    def ratios(self) -> tuple[str, ...]:
        """Every ratio some enabled model takes, in the usual order."""
        return tuple(r for r in RATIOS_14 if any(r in m.ratios for m in self.enabled))

    # --- money ---------------------------------------------------------------------------------------------

    def price_usd(self, spec: ModelSpec, size: str, tier: Tier = "standard") -> float:
        return spec.prices[tier].get(size, max(spec.prices[tier].values()))

    def credits(self, spec: ModelSpec, size: str, tier: Tier = "standard") -> int:
        """Whole credits, rounded up, at least one. Integer micro-dollars, so $0.0336 / $0.0336 is exactly 1."""
        price = round(self.price_usd(spec, size, tier) * MICROS)
        credit = round(self.credit_usd * MICROS)
        return max(1, -(-price // credit))

    def price(self, spec: ModelSpec, size: str, tier: Tier = "standard") -> Price:
        return Price(self.credits(spec, size, tier), self.price_usd(spec, size, tier))

    def credit_range(self, spec: ModelSpec, tier: Tier = "standard") -> tuple[int, int]:
        costs = [self.credits(spec, size, tier) for size in spec.sizes]
        return min(costs), max(costs)

    def cost_usd(self, spec: ModelSpec, size: str, usage: Usage, tier: Tier = "standard") -> float:
        """The real cost of one answer from its token counts (reference: "compute real cost from usageMetadata")."""
        factor = TIER_FACTOR[tier]
        expected = spec.image_tokens.get(size) or max(spec.image_tokens.values())
        image = usage.image_tokens / expected * self.price_usd(spec, size, tier) if expected else 0.0
        text_tokens = max(0, usage.output_tokens - usage.image_tokens)  # thinking is part of the output
        text = text_tokens * spec.text_rate * factor / MICROS
        prompt = usage.prompt_tokens * spec.input_rate * factor / MICROS
        return round(image + text + prompt, 6)

    def replacement(self, model_id: str) -> str:
        """A current model to use instead of `model_id` (retired, legacy, or not served to this project)."""
        model_id = normalise_id(model_id)
        if model_id in RETIRED:
            return RETIRED[model_id]
        current = [m.id for m in self.enabled if m.known and not m.legacy and m.id != model_id]
        return current[0] if current else DEFAULT_MODEL if model_id != DEFAULT_MODEL else "gemini-3-pro-image"
