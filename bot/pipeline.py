"""The one path every image request takes:

    accept:  validate -> moderation.check -> scheduler.admit -> quota.reserve
    execute: scheduler.run(provider.generate), retried through the gate -> deliver -> quota.commit | quota.refund

Rejections happen before anything is reserved. A reservation is committed only after `deliver` returned (the
image reached the user) and refunded on every other ending, including cancellation and shutdown. Every request
that got a reservation has a row in `generations` that says how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bot.errors import BotError, ImageBlocked, InvalidRequest, OperatorError, PromptBlocked
from bot.models import ASPECT_RATIOS, GeneratedImage, ImageRequest, Progress, Reservation
from bot.providers import ImageProvider
from bot.providers.retry import RetryPolicy, call_with_retries
from bot.storage.db import Database

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

    async def commit(self, reservation: Reservation, generation_id: int, cost_usd: float) -> bool:
        """Count the unit as spent; False if the reservation had already ended (idempotent)."""

    async def refund(self, reservation: Reservation, reason: str) -> bool:
        """Give the unit back, recording why; False if the reservation had already ended."""

    async def current(self, reservation: Reservation, request: ImageRequest) -> Reservation:
        """The held unit with the user's numbers as they stand now, for what the result shows."""


class Ticket(Protocol):
    """A user's admitted place at the scheduler, held from admission until released (queued or running)."""

    user_id: int
    key: str


class Scheduler(Protocol):
    def admit(self, user_id: int, key: str) -> Ticket:
        """Take one of the user's pending slots at once, or raise `QueueFull`, `ShuttingDown` or `CircuitOpen`.
        Synchronous so that no other request can slip in between the check and the count."""

    async def run(self, ticket: Ticket, job: Callable[[], Awaitable[T]], progress: ProgressCallback | None) -> T:
        """Wait until the upstream gate allows a start (reporting position through `progress`), then run one
        attempt of `job`. Called once per attempt, so retries go back through the gate. Raises `Cancelled` if
        `cancel(key)` was called while waiting."""

    def cancel(self, key: str) -> bool:
        """Cancel a waiting request; False when it is not waiting (unknown, running or finished)."""

    def release(self, ticket: Ticket) -> None:
        """Give the user's slot back; called exactly once per admitted ticket, however the request ended."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check and holds a scheduler slot and a quota reservation."""

    request: ImageRequest
    ticket: Ticket
    reservation: Reservation


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
        retry_policy: RetryPolicy,
        prompt_max_chars: int,
        price_per_image_usd: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.provider = provider
        self.moderator = moderator
        self.quota = quota
        self.scheduler = scheduler
        self.prompt_max_chars = prompt_max_chars
        self.price_per_image_usd = price_per_image_usd
        self.retry_policy = retry_policy
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.clock = clock
        self.sleep = sleep

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

    async def accept(self, request: ImageRequest, *, key: str | None = None) -> Accepted:
        """Every check that can refuse a request, before anything is spent: input, moderation, the user's place
        at the scheduler, then one unit of quota. Local and fast, so a cog can answer a refusal ephemerally
        within Discord's 3 seconds. `key` lets the caller cancel the request while it waits."""
        self.validate(request)
        await self.moderator.check(request)
        ticket = self.scheduler.admit(request.user_id, key or uuid.uuid4().hex)
        try:
            reservation = await self.quota.reserve(request)
        except BaseException:
            self.scheduler.release(ticket)
            raise
        return Accepted(request, ticket, reservation)

    async def abandon(self, accepted: Accepted, reason: str) -> None:
        """Give back what `accept` took when the request cannot go on (e.g. Discord refused the defer)."""
        try:
            await self.quota.refund(accepted.reservation, reason)
        finally:
            self.scheduler.release(accepted.ticket)

    async def execute(self, accepted: Accepted, deliver: Deliver, progress: ProgressCallback | None = None) -> Delivery:
        """Generate and deliver an accepted request; commits its quota on delivery and refunds on any other end."""
        async with self.busy():
            try:
                return await self._generate(accepted.request, accepted.reservation, accepted.ticket, deliver, progress)
            finally:
                self.scheduler.release(accepted.ticket)

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        """Count what a door does for a request around `execute` (showing it, telling the user how it ended) as
        part of it, so that `drain`, and so stopping the bot, waits for that too."""
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def drain(self, within: float) -> bool:
        """Wait until no request is executing (their refunds and messages done); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    async def run(self, request: ImageRequest, deliver: Deliver, progress: ProgressCallback | None = None) -> Delivery:
        return await self.execute(await self.accept(request), deliver, progress)

    async def _generate(
        self,
        request: ImageRequest,
        reservation: Reservation,
        ticket: Ticket,
        deliver: Deliver,
        progress: ProgressCallback | None,
    ) -> Delivery:
        try:
            generation_id, depth = await self._start(request)
        except BaseException:
            await self.quota.refund(reservation, "internal")
            raise
        queued_at = self.clock()
        started_at: float | None = None

        async def attempt() -> GeneratedImage:
            nonlocal started_at
            if started_at is None:
                started_at = self.clock()
            return await self.provider.generate(provider_prompt(request), request.images, request.options)

        def upstream_elapsed() -> float:
            # The retry deadline runs from the first upstream start: waiting in line is not the upstream's fault.
            return 0.0 if started_at is None else self.clock() - started_at

        try:
            # Each attempt goes back through the scheduler so retries respect the upstream rate gate too.
            image = await call_with_retries(
                lambda: self.scheduler.run(ticket, attempt, progress),
                self.retry_policy,
                sleep=self.sleep,
                clock=upstream_elapsed,
            )
            done_at = self.clock()
            # The result shows the quota as it stands at delivery, not as it stood when this unit was reserved.
            shown = await self.quota.current(reservation, request)
            delivery = Delivery(generation_id, request, image, shown, depth)
            message_id = await deliver(delivery)
        except BaseException as exc:
            await self._fail(request, generation_id, reservation, exc, queued_at, started_at)
            raise
        # The user has the image now: a failure of the bookkeeping below must not turn that into an error
        # message (the cog would replace the picture). An entry left open is refunded at the next start.
        try:
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
            await self.quota.commit(reservation, generation_id, self.price_per_image_usd)
        except Exception:
            log.exception("generation %s was delivered but could not be recorded as such", generation_id)
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
