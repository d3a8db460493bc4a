"""The one lifecycle every image request goes through, whatever door it came in by:

    accept:  validate -> history from the parent -> moderation.check -> scheduler.admit -> quota.reserve
    serve:   door.show -> load the input images -> scheduler.run(provider.generate), retried through the gate
             -> record the inputs -> door.deliver -> quota.commit | quota.refund -> door.fail on any other ending

Rejections happen before anything is reserved (the door hears them through `refused`). Once reserved, `serve`
owns the reservation and the scheduler place: a unit is committed only after `deliver` returned (the image
reached the user) and refunded on every other ending, including cancellation and shutdown, by the structure of
`serve` (try/finally), not by doors remembering to. Every request that got a reservation has a row in
`generations` (`bot.editing.generations` owns the table) that says how it ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.editing.conversation import provider_prompt
from bot.editing.generations import Generations, InputSource
from bot.editing.inputs import with_images
from bot.errors import BotError, Charge, ImageBlocked, InvalidRequest, OperatorError, PromptBlocked, UpstreamError
from bot.models import ASPECT_RATIOS, GeneratedImage, ImageRequest, Progress, Reservation
from bot.ops.metered import MeteredDoor
from bot.ops.metrics import Metrics
from bot.providers import ImageProvider
from bot.providers.billing import spent_usd
from bot.providers.retry import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)

DEFAULT_PROVIDER = "gemini"  # the metrics label of a provider that does not name itself
T = TypeVar("T")
ProgressCallback = Callable[[Progress], Awaitable[None]]
# Shows the image to the user; returns the id of the message that shows it (0 when there is none, e.g. CLI).
Deliver = Callable[["Delivery"], Awaitable[int]]
# Fetches and judges the request's input images (after the door showed the request, so it is answered in time).
Loader = Callable[[], Awaitable[Sequence[InputSource]]]


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

    async def charge_failed(self, reservation: Reservation, cost_usd: float) -> None:
        """Count what a failed request's provider may have billed in spend (not in the member's quota)."""

    async def refund(self, reservation: Reservation, reason: str) -> bool:
        """Give the unit back, recording why; False if the reservation had already ended."""

    async def current(self, reservation: Reservation, request: ImageRequest) -> Reservation:
        """The held unit with the user's numbers as they stand now, for what the result shows."""


# A user's admitted place at the scheduler, held from admission until released (queued or running); only the
# scheduler looks inside it.
TicketT = TypeVar("TicketT")


class Scheduler(Protocol[TicketT]):
    def admit(self, user_id: int, key: str) -> TicketT:
        """Take one of the user's pending slots at once, or raise `QueueFull`, `ShuttingDown` or `CircuitOpen`.
        Synchronous so that no other request can slip in between the check and the count."""

    async def run(self, ticket: TicketT, job: Callable[[], Awaitable[T]], progress: ProgressCallback | None) -> T:
        """Wait until the upstream gate allows a start (reporting position through `progress`), then run one
        attempt of `job`. Called once per attempt, so retries go back through the gate. Raises `Cancelled` if
        `cancel(key)` was called while waiting."""

    def cancel(self, key: str) -> bool:
        """Cancel a waiting request; False when it is not waiting (unknown, running or finished)."""

    def release(self, ticket: TicketT) -> None:
        """Give the user's slot back; called exactly once per admitted ticket, however the request ended."""


class Door(Protocol):
    """How one request talks to its user (an interaction, a message, the CLI). The pipeline calls these; a door
    never touches the reservation."""

    async def refused(self, exc: BotError) -> None:
        """The request was refused before anything was spent."""

    async def show(self) -> bool:
        """Tell the user the request is in line; False when that is impossible (it is then refunded)."""

    async def progress(self, progress: Progress) -> None:
        """The request's place in line, or that it started."""

    async def deliver(self, delivery: Delivery) -> int:
        """Show the image; returns the id of the message that shows it (0 when there is none)."""

    async def fail(self, exc: Exception) -> None:
        """Tell the user how the request ended (it was refunded)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check and holds a scheduler slot and a quota reservation."""

    request: ImageRequest
    ticket: Any
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
        generations: Generations,
        provider: ImageProvider,
        moderator: Moderator,
        quota: Quota,
        scheduler: Scheduler[Any],
        retry_policy: RetryPolicy,
        prompt_max_chars: int,
        price_per_image_usd: float,
        history_depth: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.generations = generations
        self.provider = provider
        # The metrics' provider of a request that got no picture: the first one tried.
        names = getattr(provider, "names", None) or (getattr(provider, "name", DEFAULT_PROVIDER),)
        self.provider_name: str = names[0]
        self.metrics = metrics or Metrics.disabled()
        self.moderator = moderator
        self.quota = quota
        self.scheduler = scheduler
        self.prompt_max_chars = prompt_max_chars
        self.price_per_image_usd = price_per_image_usd
        self.history_depth = history_depth
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
        """Every check that can refuse a request, before anything is spent: input, moderation (of the prompt and
        the conversation behind its parent), the user's place at the scheduler, then one unit of quota. Local
        and fast, so a door can answer a refusal within Discord's 3 seconds. `key` lets the user cancel it."""
        self.validate(request)
        if request.parent_id is not None:
            history = await self.generations.history(request.parent_id, self.history_depth)
            request = dataclasses.replace(request, history=history.instructions)
        await self.moderator.check(request)
        ticket = self.scheduler.admit(request.user_id, key or uuid.uuid4().hex)
        try:
            reservation = await self.quota.reserve(request)
        except BaseException:
            self.scheduler.release(ticket)
            raise
        return Accepted(request, ticket, reservation)

    async def serve(
        self, request: ImageRequest, door: Door, *, key: str | None = None, load: Loader | None = None
    ) -> Delivery | None:
        """The whole life of one request; returns the delivery, or None when it ended otherwise (the door was
        told). Stopping the bot (`drain`) waits for it, including what the door says at the end. Every request
        counts once in the metrics, with how it ended, refusals included."""
        told = MeteredDoor(door)
        try:
            try:
                accepted = await self.accept(request, key=key)
            except BotError as exc:
                await told.refused(exc)
                return None
            self._enter()
            try:
                return await self._serve(accepted, told, load)
            finally:
                self.scheduler.release(accepted.ticket)
                self._leave()
        except asyncio.CancelledError:
            told.ending = told.ending or asyncio.CancelledError()
            raise
        finally:
            self.metrics.request_finished(
                door=request.kind.value,
                model=self.provider.model,
                provider=told.provider or self.provider_name,
                outcome=told.outcome,
            )

    async def run(self, request: ImageRequest, deliver: Deliver, progress: ProgressCallback | None = None) -> Delivery:
        """`serve` without a user to talk to (the CLI): what a door would be told is raised."""
        door = _RaisingDoor(deliver, progress)
        delivery = await self.serve(request, door)
        if delivery is None:
            raise door.error or RuntimeError("the request ended without a delivery or an error")
        return delivery

    async def drain(self, within: float) -> bool:
        """Wait until no request is being served (their refunds and messages done); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def _enter(self) -> None:
        self._active += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()

    async def _serve(self, accepted: Accepted, door: Door, load: Loader | None) -> Delivery | None:
        reservation = accepted.reservation
        try:
            shown = await door.show()
            sources = list(await load()) if shown and load else []
            request = with_images(accepted.request, tuple(s.image for s in sources if s.image is not None))
        except BaseException as exc:
            await self.quota.refund(reservation, "input-refused" if isinstance(exc, BotError) else "internal")
            if not isinstance(exc, Exception):
                raise
            await door.fail(exc)
            return None
        if not shown:
            await self.quota.refund(reservation, "not-shown")
            return None
        try:
            return await self._generate(request, accepted, door, sources)
        except Exception as exc:  # every ending is told to the user; BotErrors are expected, others are logged
            await door.fail(exc)
            return None

    async def _generate(
        self, request: ImageRequest, accepted: Accepted, door: Door, sources: Sequence[InputSource]
    ) -> Delivery:
        reservation = accepted.reservation
        try:
            generation_id, depth = await self.generations.start(request, self.provider.model)
        except BaseException:
            await self.quota.refund(reservation, "internal")
            raise
        queued_at = self.clock()
        started_at: float | None = None
        billed: list[Charge] = []  # failed attempts (of every retry) that the provider may have billed

        async def attempt() -> GeneratedImage:
            nonlocal started_at
            began = self.clock()
            if started_at is None:
                started_at = began
                self.metrics.queue_wait(began - queued_at)
            prompt = provider_prompt(request.prompt, request.history)
            who = self.provider_name
            try:
                image = await self.provider.generate(prompt, request.images, request.options)
                who = image.provider or who
                return image
            except UpstreamError as exc:
                billed.extend(exc.charges)
                raise
            finally:
                self.metrics.upstream_call(provider=who, model=self.provider.model, seconds=self.clock() - began)

        def upstream_elapsed() -> float:
            # The retry deadline runs from the first upstream start: waiting in line is not the upstream's fault.
            return 0.0 if started_at is None else self.clock() - started_at

        try:
            # Each attempt goes back through the scheduler so retries respect the upstream rate gate too.
            image = await call_with_retries(
                lambda: self.scheduler.run(accepted.ticket, attempt, door.progress),
                self.retry_policy,
                sleep=self.sleep,
                clock=upstream_elapsed,
            )
            done_at = self.clock()
            if sources:  # before the picture shows, so its Reroll button always finds them
                await self.generations.record_inputs(generation_id, sources)
            # The result shows the quota as it stands at delivery, not as it stood when this unit was reserved.
            shown = await self.quota.current(reservation, request)
            delivery = Delivery(generation_id, request, image, shown, depth)
            message_id = await door.deliver(delivery)
        except BaseException as exc:
            if billed:
                cost = spent_usd(billed, self.price_per_image_usd)
                log.warning(
                    "generation %s failed after %d attempt(s) that may have been billed (about $%.4f, counted in "
                    "spend): %s",
                    generation_id,
                    len(billed),
                    cost,
                    ", ".join(f"{c.provider} {c.why}" for c in billed),
                )
                try:
                    await self.quota.charge_failed(reservation, cost)
                except Exception:  # the refund below must happen whatever this did
                    log.exception("generation %s: the billed attempts could not be counted in spend", generation_id)
            await self._fail(request, generation_id, reservation, exc, queued_at, started_at)
            raise
        # The user has the image now: a failure of the bookkeeping below must not turn that into an error
        # message (the door would replace the picture). An entry left open is refunded at the next start.
        try:
            await self.generations.delivered(
                generation_id,
                image,
                message_id=message_id or None,
                queued_ms=_ms(queued_at, started_at),
                upstream_ms=_ms(started_at, done_at),
            )
            # The provider's real cost when known, plus earlier attempts that may have been billed.
            cost = spent_usd([*billed, *image.charges], self.price_per_image_usd, image)
            if await self.quota.commit(reservation, generation_id, cost):
                # One ledger entry is one credit until the ledger counts credits.
                self.metrics.spent(
                    model=image.model, provider=image.provider or self.provider_name, credits=1, usd=cost
                )
        except Exception:
            log.exception("generation %s was delivered but could not be recorded as such", generation_id)
        return delivery

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
            await self.generations.failed(generation_id, kind, str(exc), queued_ms=_ms(queued_at, started_at))
        finally:
            await self.quota.refund(reservation, kind)
        if isinstance(exc, PromptBlocked | ImageBlocked):
            await self.moderator.record_upstream_block(request, exc)


class _RaisingDoor:
    """The CLI's door: nothing to show; the ending is kept for `Pipeline.run` to raise."""

    def __init__(self, deliver: Deliver, progress: ProgressCallback | None) -> None:
        self._deliver = deliver
        self._progress = progress
        self.error: Exception | None = None

    async def refused(self, exc: BotError) -> None:
        self.error = exc

    async def show(self) -> bool:
        return True

    async def progress(self, progress: Progress) -> None:
        if self._progress is not None:
            await self._progress(progress)

    async def deliver(self, delivery: Delivery) -> int:
        return await self._deliver(delivery)

    async def fail(self, exc: Exception) -> None:
        self.error = exc


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)
