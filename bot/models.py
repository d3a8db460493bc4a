"""Plain values that flow through the core: what a user asked for and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from bot.errors import Charge

# The ten ratios the Gemini image models accept (reference: gemini-api.md, "aspectRatio").
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


class RequestKind(StrEnum):
    """Which door a request came through; stored with the generation for lineage and stats."""

    IMAGINE = "imagine"
    EDIT = "edit"
    REPLY = "reply"
    THREAD = "thread"
    REROLL = "reroll"
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
    aspect_ratio: str | None = None


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


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    data: bytes
    mime_type: str
    model: str
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    provider: str = ""  # the configured provider that made it (PROVIDERS)
    fallback: bool = False  # made by a provider other than the first in PROVIDERS: the result says which
    cost_usd: float | None = None  # what the provider said it cost, or its configured price; None: unknown
    # Earlier attempts of the same request that failed after their provider may have billed them.
    charges: tuple[Charge, ...] = ()

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(self.mime_type, "png")

    def __repr__(self) -> str:
        return (
            f"GeneratedImage({self.mime_type}, {len(self.data)} bytes, model={self.model!r}, "
            f"provider={self.provider!r}, cost_usd={self.cost_usd!r})"
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """One unit of a user's daily quota held for a request until it is committed or refunded."""

    id: int  # ledger row id
    user_id: int
    guild_id: int | None
    limit: int | None  # None: unlimited
    remaining: int | None  # left after this reservation; None when unlimited
    resets_at: float  # unix seconds of the next reset


@dataclass(frozen=True, slots=True)
class Progress:
    """What the scheduler reports while a request waits: its place in line and an estimate, or that it started."""

    state: Literal["queued", "generating"]
    position: int = 0  # 1 = next to start
    eta_seconds: float | None = None
