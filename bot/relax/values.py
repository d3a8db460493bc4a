"""The relax lane's plain values: its timings, Google's endpoint as it uses it, what `/queue` shows of a job, and
a job this process runs (`LiveJob`), with the two small rules the lane applies (`display_name`, `flex_refused`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import (
    BotError,
    Cancelled,
    Charge,
    OperatorError,
    Suspended,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.providers import ImageProvider
from bot.providers.gemini_batch import GeminiBatches
from bot.providers.registry import ModelRegistry
from bot.relax.store import RelaxJob, Stage

# A 400 that says the model has no Flex tier (the wording varies; it names the field or the tier).
_FLEX_REFUSED = re.compile(r"service[ _]?tier|\bflex\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RelaxTimings:
    flex_attempts: int  # 0: straight to Batch
    flex_backoff: float  # seconds between two Flex attempts
    poll_seconds: float
    max_hours: float


@dataclass(frozen=True, slots=True)
class RelaxUpstream:
    """Google's endpoint as the relax lane uses it: `flex` is a Gemini provider with the Flex deadline (a relax
    request's options name the Flex tier, so it asks for it and prices the answer at it), `batches` the Batch API,
    `registry` the models (what a Batch answer costs)."""

    flex: ImageProvider
    batches: GeminiBatches
    registry: ModelRegistry


@dataclass(frozen=True, slots=True)
class RelaxJobInfo:
    """A live relax request, as `/queue` shows it."""

    key: str
    user_id: int
    prompt: str
    stage: Stage
    created_at: float  # unix seconds
    batch_at: float | None


class Shed(UpstreamError):
    """A Flex call shed (503) or timed out. Raised through the lane's scheduler as an answer, not as a failure of
    Google's health: Flex is best effort, and shedding says nothing about whether Google can be reached."""

    def __init__(self, cause: UpstreamUnavailable | UpstreamTimeout) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(eq=False)
class LiveJob:
    """A job this process is running; `stop` is set to cancel or suspend it."""

    job: RelaxJob
    stage: Stage
    batch_name: str | None
    batch_at: float | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: Literal["cancel", "suspend"] | None = None
    charges: list[Charge] = field(default_factory=list)  # Flex calls that may have been billed
    on_call: Callable[[], object] | None = None

    def called(self) -> None:
        if self.on_call is not None:
            self.on_call()

    def stopped(self) -> BotError:
        return Suspended() if self.reason == "suspend" else Cancelled()


def display_name(job: RelaxJob) -> str:
    """The Batch job's name for humans, and how a restart finds a job whose own name was never stored."""
    return f"gib-relax-{job.id}-{job.key}"


def flex_refused(exc: BaseException) -> bool:
    """Whether Google refused the Flex tier itself for this model (then Batch may still take it)."""
    return isinstance(exc, OperatorError) and exc.status == 400 and bool(_FLEX_REFUSED.search(str(exc)))
