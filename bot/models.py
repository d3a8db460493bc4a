"""Plain values that flow through the core: what a user asked for and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from bot.errors import Charge

# The ten ratios every Gemini image model accepts, and the four more of the 2.1/3.1 family (reference:
# gemini-api.md, "Model lineup"). Which ones a model takes is in `bot.providers.registry`.
RATIOS_10: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
RATIOS_14: tuple[str, ...] = (*RATIOS_10, "1:4", "4:1", "1:8", "8:1")
ASPECT_RATIOS: tuple[str, ...] = RATIOS_14  # every ratio any model takes
# `imageSize` values, smallest first; upper-case K as Google spells them (a lowercase "2k" is a 400).
IMAGE_SIZES: tuple[str, ...] = ("512", "1K", "2K", "4K")
# Billing tiers: standard, and the half-price Flex and Batch lanes (reference: "Relax lane").
Tier = Literal["standard", "flex", "batch"]
TIERS: tuple[Tier, ...] = ("standard", "flex", "batch")


class RequestKind(StrEnum):
    """Which door a request came through; stored with the generation for lineage and stats."""

    IMAGINE = "imagine"
    EDIT = "edit"
    REPLY = "reply"
    THREAD = "thread"
    REROLL = "reroll"
    RENDER = "render"  # the same picture again at a larger size (the 2K / 4K buttons)
    CLI = "cli"


class GenerationStatus(StrEnum):
    """How a recorded request stands: being made, shown to its user, or ended otherwise (refunded)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class InputImage:
    data: bytes
    mime_type: str

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return f"InputImage({self.mime_type}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """What the picture should be. `model` and `size` are None until the pipeline chose them (the member's
    choice, else the original's for an edit, else the server's default, else the bot's)."""

    aspect_ratio: str | None = None
    model: str | None = None
    size: str | None = None  # one of IMAGE_SIZES
    tier: Tier = "standard"

    def as_json(self) -> dict[str, str | None]:
        return {"aspect_ratio": self.aspect_ratio, "model": self.model, "size": self.size, "tier": self.tier}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ImageOptions:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        tier: Tier = next((t for t in TIERS if t == data.get("tier")), "standard")
        return cls(text("aspect_ratio"), text("model"), text("size"), tier)


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange of a multi-turn edit: the instruction that was sent, and the model's answer exactly
    as the provider returned it (Gemini: `candidates[0].content` as JSON, thought parts and signatures
    included), so it can be sent back untouched."""

    prompt: str
    answer: str

    def __repr__(self) -> str:
        return f"Turn({self.prompt[:40]!r}, {len(self.answer)} bytes)"


@dataclass(frozen=True, slots=True)
class Context:
    """The model's own earlier turns of a multi-turn edit (oldest first), and what to send instead to a provider
    that cannot take them (a gateway): the instruction with every earlier one as a preface (`prompt`) and the
    picture being edited as a fresh input (`picture`), a stateless edit."""

    turns: tuple[Turn, ...]
    prompt: str
    picture: InputImage | None = None

    def stateless(self, images: tuple[InputImage, ...]) -> tuple[str, tuple[InputImage, ...]]:
        """The prompt and images for a provider without the turns: the picture first, then the others."""
        return self.prompt, (*((self.picture,) if self.picture else ()), *images)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One ask for an image, whatever door it came through. Ids are Discord snowflakes (0 for the CLI)."""

    user_id: int
    channel_id: int
    prompt: str
    guild_id: int | None = None
    kind: RequestKind = RequestKind.IMAGINE
    images: tuple[InputImage, ...] = ()
    options: ImageOptions = field(default_factory=ImageOptions)
    parent_id: int | None = None
    # Earlier instructions of a conversation, oldest first; sent as context with the prompt.
    history: tuple[str, ...] = ()
    # The member's role ids, so per-role quota limits can apply without the core asking Discord.
    role_ids: tuple[int, ...] = ()
    # The generation whose model and size this request keeps unless it names its own (a reroll's original;
    # None: the parent's, for edits and re-renders).
    original_id: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one answer (Gemini's `usageMetadata`). `output_tokens` is everything billed as output:
    image, text and thinking tokens; the split says at which rate each is billed."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    image_tokens: int = 0  # output tokens of the picture (billed at the image rate)
    thinking_tokens: int = 0  # billed at the text rate


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    data: bytes
    mime_type: str  # judged by the bytes, never by what the provider declared
    model: str  # the model that really answered (Gemini's `modelVersion`)
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    provider: str = ""  # the configured provider that made it (PROVIDERS)
    provider_label: str = ""  # the name users read for it (PROVIDER_N_DISPLAY_NAME; Google for gemini)
    fallback: bool = False  # made by a provider other than the first in PROVIDERS: the result says which
    # What this answer cost in US dollars: what the provider said (Gemini: its token counts at the price table),
    # or its configured price; None: unknown.
    cost_usd: float | None = None
    # Earlier attempts of the same request that failed after their provider may have billed them.
    charges: tuple[Charge, ...] = ()
    # The model's own earlier turns it was made with (a multi-turn edit); 0 for a fresh or stateless edit (a
    # gateway got the picture instead).
    memory_turns: int = 0
    # The answer exactly as received (Gemini: `candidates[0].content`, parsed), for multi-turn edits; None when
    # the provider has nothing worth sending back (no signatures to keep). Serialised only when it is stored,
    # off the event loop: a 4K answer is megabytes of JSON.
    content: dict[str, Any] | None = None

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(self.mime_type, "png")

    def __repr__(self) -> str:
        return (
            f"GeneratedImage({self.mime_type}, {len(self.data)} bytes, model={self.model!r}, "
            f"provider={self.provider!r}, cost_usd={self.cost_usd!r})"
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """What one provider may bill for one request's calls to it: the picture it made (if it made it) and the
    attempts that failed after it may have billed them. A request's costs add up to what it cost; the ledger keeps
    them so spend can be shown per provider and model."""

    provider: str  # the configured name (PROVIDERS); "" when nobody could tell (a call cut off by a shutdown)
    model: str  # our model id (the same for every call of a request; each provider maps it to its own)
    usd: float
    pictures: int = 0  # 1 when this provider made the request's picture
    failed: int = 0  # attempts that brought no picture but may be billed


@dataclass(frozen=True, slots=True)
class Price:
    """What one request costs: credits against the member's quota (from the price table, by model, size and
    tier) and the estimated dollars held against the spending caps until the real cost is known."""

    credits: int
    estimate_usd: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """A request's credits, held against the member's daily quota until it is committed or refunded."""

    id: int  # ledger row id
    user_id: int
    guild_id: int | None
    limit: int | None  # credits a day; None: unlimited
    remaining: int | None  # credits left after this reservation; None when unlimited
    resets_at: float  # unix seconds of the next reset
    credits: int = 1  # what this request holds


@dataclass(frozen=True, slots=True)
class Progress:
    """What the scheduler reports while a request waits: its place in line and an estimate, or that it started."""

    state: Literal["queued", "generating"]
    position: int = 0  # 1 = next to start
    eta_seconds: float | None = None
