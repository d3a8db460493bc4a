"""The one path every image request takes:

    validate -> moderation.check -> quota.reserve -> scheduler.run(provider.generate) -> deliver -> commit | refund

Rejections happen before anything is reserved. A reservation is committed only after `deliver` returned (the
image reached the user) and refunded on every other ending, including cancellation and shutdown. Every request
that got a reservation has a row in `generations` that says how it ended.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bot.db import Database
from bot.errors import BotError, ImageBlocked, InvalidRequest, OperatorError, PromptBlocked
from bot.models import ASPECT_RATIOS, GeneratedImage, ImageRequest, Progress, Reservation
from bot.providers import ImageProvider

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[Progress], Awaitable[None]]
# Shows the image to the user; returns the id of the message that shows it (0 when there is none, e.g. CLI).
Deliver = Callable[["Delivery"], Awaitable[int]]


class Moderator(Protocol):
    async def check(self, request: ImageRequest) -> None:
        """Raise `ModerationBlocked` or `CoolingDown`, or return to let the request through."""

    async def record_upstream_block(self, request: ImageRequest, exc: PromptBlocked | ImageBlocked) -> None:
        """Audit a refusal by Google's own filter."""


class Quota(Protocol):
    async def reserve(self, request: ImageRequest) -> Reservation:
        """Hold one unit or raise `QuotaExceeded` / `BudgetExhausted`."""

    async def commit(self, reservation: Reservation, generation_id: int, cost_usd: float) -> None: ...

    async def refund(self, reservation: Reservation, reason: str) -> None: ...


class Scheduler(Protocol):
    async def run(self, user_id: int, job: Callable[[], Awaitable[T]], progress: ProgressCallback | None) -> T:
        """Run `job` when the upstream gate allows, reporting queue position through `progress`."""


@dataclass(frozen=True, slots=True)
class Delivery:
    generation_id: int
    request: ImageRequest
    image: GeneratedImage
    reservation: Reservation
    depth: int  # how many edits deep this result is (0 for a fresh image)


class Pipeline:
    def __init__(
        self,
        *,
        db: Database,
        provider: ImageProvider,
        moderator: Moderator,
        quota: Quota,
        scheduler: Scheduler,
        prompt_max_chars: int,
        price_per_image_usd: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.provider = provider
        self.moderator = moderator
        self.quota = quota
        self.scheduler = scheduler
        self.prompt_max_chars = prompt_max_chars
        self.price_per_image_usd = price_per_image_usd
        self.clock = clock

    def validate(self, request: ImageRequest) -> None:
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidRequest("Please describe the image you want: the prompt is empty.")
        if len(prompt) > self.prompt_max_chars:
            raise InvalidRequest(
                f"Your prompt is {len(prompt)} characters long; the limit is {self.prompt_max_chars}. "
                "Please shorten it."
            )
        ratio = request.options.aspect_ratio
        if ratio is not None and ratio not in ASPECT_RATIOS:
            raise InvalidRequest(f"Unknown aspect ratio {ratio!r}; choose one of {', '.join(ASPECT_RATIOS)}.")

    async def run(self, request: ImageRequest, deliver: Deliver, progress: ProgressCallback | None = None) -> Delivery:
        self.validate(request)
        await self.moderator.check(request)
        reservation = await self.quota.reserve(request)
        try:
            generation_id, depth = await self._start(request)
        except BaseException:
            await self.quota.refund(reservation, "internal")
            raise
        queued_at = self.clock()
        started_at: float | None = None

        async def generate() -> GeneratedImage:
            nonlocal started_at
            started_at = self.clock()
            return await self.provider.generate(provider_prompt(request), request.images, request.options)

        try:
            image = await self.scheduler.run(request.user_id, generate, progress)
            done_at = self.clock()
            delivery = Delivery(generation_id, request, image, reservation, depth)
            message_id = await deliver(delivery)
        except BaseException as exc:
            await self._fail(request, generation_id, reservation, exc, queued_at, started_at)
            raise
        cost = self.price_per_image_usd
        await self.db.execute(
            "UPDATE generations SET status='delivered', finished_at=?, prompt_tokens=?, output_tokens=?,"
            " total_tokens=?, queued_ms=?, upstream_ms=?, mime_type=?, image_bytes=?, message_id=? WHERE id=?",
            (
                self.clock(),
                image.usage.prompt_tokens,
                image.usage.output_tokens,
                image.usage.total_tokens,
                _ms(queued_at, started_at),
                _ms(started_at, done_at),
                image.mime_type,
                len(image.data),
                message_id or None,
                generation_id,
            ),
        )
        await self.quota.commit(reservation, generation_id, cost)
        return delivery

    async def _start(self, request: ImageRequest) -> tuple[int, int]:
        depth = 0
        if request.parent_id is not None:
            row = await self.db.fetchone("SELECT id FROM generations WHERE id=?", (request.parent_id,))
            depth = await self.depth(request.parent_id) + 1 if row else 0
        generation_id = await self.db.execute(
            "INSERT INTO generations (created_at, user_id, guild_id, channel_id, kind, prompt, model, options_json,"
            " input_images, parent_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                self.clock(),
                request.user_id,
                request.guild_id,
                request.channel_id,
                request.kind.value,
                request.prompt,
                self.provider.model,
                json.dumps({"aspect_ratio": request.options.aspect_ratio}),
                len(request.images),
                request.parent_id if depth else None,
            ),
        )
        return generation_id, depth

    async def depth(self, generation_id: int) -> int:
        """How many edits deep a generation is: the number of ancestors on its parent chain."""
        row = await self.db.fetchone(
            "WITH RECURSIVE chain(id, parent_id, n) AS ("
            " SELECT id, parent_id, 0 FROM generations WHERE id=?"
            " UNION ALL SELECT g.id, g.parent_id, n+1 FROM generations g JOIN chain c ON g.id=c.parent_id"
            " WHERE n < 10000) SELECT MAX(n) FROM chain",
            (generation_id,),
        )
        return int(row[0] or 0) if row else 0

    async def _fail(
        self,
        request: ImageRequest,
        generation_id: int,
        reservation: Reservation,
        exc: BaseException,
        queued_at: float,
        started_at: float | None,
    ) -> None:
        kind = type(exc).__name__
        if isinstance(exc, OperatorError):
            # The operator has to act; users only see that it is not their fault.
            log.error("OPERATOR ACTION NEEDED: the image provider refused the bot's setup: %s", exc)
        elif not isinstance(exc, BotError):
            log.error("generation %s failed unexpectedly", generation_id, exc_info=exc)
        try:
            await self.db.execute(
                "UPDATE generations SET status='failed', finished_at=?, error_kind=?, error_detail=?, queued_ms=?"
                " WHERE id=?",
                (self.clock(), kind, str(exc)[:500], _ms(queued_at, started_at), generation_id),
            )
        finally:
            await self.quota.refund(reservation, kind)
        if isinstance(exc, PromptBlocked | ImageBlocked):
            await self.moderator.record_upstream_block(request, exc)


def provider_prompt(request: ImageRequest) -> str:
    """The text sent upstream: the instruction, preceded by earlier instructions of the conversation."""
    if not request.history:
        return request.prompt.strip()
    earlier = "\n".join(f"- {line}" for line in request.history)
    return f"Earlier instructions in this conversation (already applied):\n{earlier}\n\nNow: {request.prompt.strip()}"


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)
