"""The one lifecycle every image request goes through, whatever door it came in by:

    accept:  validate -> history from the parent -> plan (model, size, price) -> moderation.check
             -> scheduler.admit -> quota.reserve (credits, estimated dollars)
    serve:   door.show -> load the input images (and the model's own earlier turns, for an edit) ->
             moderation.second_opinion (the AI moderator, if any) -> scheduler.run(provider.generate), retried
             through the gate -> record the inputs -> door.deliver
             -> quota.commit (real cost) | quota.refund (what the calls may cost anyway) -> door.fail otherwise

Rejections happen before anything is reserved (the door hears them through `refused`): a model, size or ratio
the model lacks or the member may not use never reaches the upstream. Once reserved, `serve` owns the
reservation and the scheduler place: credits are committed only after `deliver` returned (the image reached the
user) and refunded on every other ending, including cancellation and shutdown, by the structure of `serve`
(try/finally), not by doors remembering to. Every upstream call is counted against the member's daily attempts
and, when it may be billed, in the spend (`bot.billing`). Every request that got a reservation has a row in
`generations` (`bot.editing.generations` owns the table) that says how it ended.

A relax request (`ImageRequest.relax`: priced at the Flex tier, from the relax allowance) takes the same path
with the relax lane (`bot.relax.RelaxLane`) as its scheduler and provider: its own line and gate, Flex, then a
Batch job that may take hours. When the bot stops while one waits, it ends `Suspended`: neither committed nor
refunded, and `resume` carries it on at the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from bot.config import DEFAULTS
from bot.editing.conversation import provider_prompt
from bot.editing.generations import Generations, InputSource
from bot.editing.inputs import InputRefusals, with_sources
from bot.errors import (
    BotError,
    ImageBlocked,
    ImageRefused,
    InvalidRequest,
    ModelUnavailable,
    ModerationBlocked,
    OperatorError,
    PromptBlocked,
    Suspended,
    UpstreamError,
)
from bot.models import ASPECT_RATIOS, Context, GeneratedImage, ImageRequest, Reservation, Turn
from bot.ops.metered import MeteredDoor
from bot.ops.metrics import Metrics
from bot.ports import (
    Accepted,
    Deliver,
    Delivery,
    Door,
    Loader,
    Moderator,
    Planner,
    ProgressCallback,
    Quota,
    RaisingDoor,
    Scheduler,
)
from bot.providers import ImageProvider
from bot.providers.billing import Bill, describe
from bot.providers.retry import RetryPolicy, call_with_retries
from bot.relax import RelaxLane
from bot.relax.steps import RelaxSteps

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)

# Sizes a result can be re-rendered at (the buttons under it): the larger ones worth paying for.
RENDER_SIZES = ("2K", "4K")
DEFAULT_PROVIDER = "gemini"  # the metrics label of a provider that does not name itself

__all__ = ["Accepted", "Deliver", "Delivery", "Door", "Loader", "Pipeline", "ProgressCallback"]


class Pipeline(RelaxSteps):
    def __init__(
        self,
        *,
        generations: Generations,
        provider: ImageProvider,
        moderator: Moderator,
        quota: Quota,
        scheduler: Scheduler[Any],
        planner: Planner,
        retry_policy: RetryPolicy,
        prompt_max_chars: int,
        history_depth: int,
        history_turns: int = 0,
        history_max_bytes: int = 0,
        relax: RelaxLane | None = None,
        input_refusals: InputRefusals | None = None,
        max_loading: int = DEFAULTS.image_workers,
        sole_provider: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        """`relax`: the relax lane (None: relax requests are refused).
        `input_refusals`: members who keep sending unusable images are refused before the download.
        `max_loading`: requests that download and judge their input images at once (the rest wait their turn),
        so the bytes and decoded pixels in memory do not grow with the number of requests. `sole_provider`: the
        name and label of the only provider, when there is one: the scheduler's gate is then that provider's, so
        what the gate refuses (an open circuit) is told as that provider's."""
        self.generations = generations
        self.relax = relax
        self.provider = provider
        self.sole_provider = sole_provider
        # The metrics' provider of a request that got no picture: the first one tried.
        names = getattr(provider, "names", None) or (getattr(provider, "name", DEFAULT_PROVIDER),)
        self.provider_name: str = names[0]
        self.metrics = metrics or Metrics.disabled()
        self.moderator = moderator
        self.quota = quota
        self.scheduler = scheduler
        self.planner = planner
        self.prompt_max_chars = prompt_max_chars
        self.history_depth = history_depth
        # Earlier answers of a thinking model sent back with an edit, and the bytes they may take.
        self.history_turns = history_turns
        self.history_max_bytes = history_max_bytes
        self.retry_policy = retry_policy
        self.input_refusals = input_refusals
        self._loading = asyncio.Semaphore(max_loading)
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
        # The model and size are judged by the planner, which knows the models.

    async def accept(self, request: ImageRequest, *, key: str | None = None) -> Accepted:
        """Every check that can refuse a request, before anything is spent: input, the model and size it will be
        made with, moderation (of the prompt and the conversation behind its parent), the user's place at the
        scheduler, then its credits. Local and fast, so a door can answer a refusal within Discord's 3 seconds.
        `key` lets the user cancel it."""
        self.validate(request)
        self._relax_possible(request)
        parent = None
        if (parent_id := request.parent_id) is not None:
            history = await self.generations.history(parent_id, self.history_depth)
            request = dataclasses.replace(request, history=history.instructions)
            parent = await self.generations.get(parent_id)
        original = parent
        if request.original_id is not None and request.original_id != request.parent_id:
            original = await self.generations.get(request.original_id)
        plan = await self.planner.plan(request, original.options if original else None)
        request = plan.request
        await self.moderator.check(request)
        key = key or uuid.uuid4().hex
        ticket = self._admit(request, key)  # the relax lane's own line for a relax request
        try:
            reservation = await self.quota.reserve(request, plan.price)
        except BaseException as exc:
            self._release_ticket(request, ticket)
            self._note_relax_price(exc, plan)
            raise
        return Accepted(request, ticket, reservation, plan.spec, plan.price, parent, key)

    async def serve(
        self, request: ImageRequest, door: Door, *, key: str | None = None, load: Loader | None = None
    ) -> Delivery | None:
        """The whole life of one request; returns the delivery, or None when it ended otherwise (the door was
        told). Stopping the bot (`drain`) waits for it, including what the door says at the end. Every request
        counts once in the metrics, with how it ended, refusals included."""
        told = MeteredDoor(door)
        try:
            try:
                if load is not None and self.input_refusals is not None:
                    self.input_refusals.check(request.user_id)
                accepted = await self.accept(request, key=key)
            except BotError as exc:
                await told.refused(self._blamed(exc))
                return None
            self._enter()
            try:
                return await self._serve(accepted, told, load)
            finally:
                self._release(accepted)  # from the relax lane's own line for a relax request
                self._leave()
        except asyncio.CancelledError:
            told.ending = told.ending or asyncio.CancelledError()
            raise
        finally:
            self.metrics.request_finished(
                door=request.kind.value,
                model=told.model or request.options.model or self.provider.model,
                provider=told.provider or self.provider_name,
                outcome=told.outcome,
            )

    async def run(self, request: ImageRequest, deliver: Deliver, progress: ProgressCallback | None = None) -> Delivery:
        """`serve` without a user to talk to (the CLI): what a door would be told is raised."""
        door = RaisingDoor(deliver, progress)
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
            sources: list[InputSource] = []
            if shown and load:
                async with self._loading:
                    sources = list(await load())
            turns = await self._turns(accepted)
            parent_message = accepted.parent.message_id if accepted.parent else None
            request, context = with_sources(accepted.request, accepted.spec, sources, turns, parent_message)
            if shown:
                await self.moderator.second_opinion(request)
        except BaseException as exc:
            if isinstance(exc, ImageRefused) and self.input_refusals is not None:
                self.input_refusals.refused(accepted.request.user_id)
            reason = "input-refused" if isinstance(exc, BotError) else "internal"
            await self.quota.refund(reservation, "ModerationBlocked" if isinstance(exc, ModerationBlocked) else reason)
            if not isinstance(exc, Exception):
                raise
            await door.fail(exc)
            return None
        if not shown:
            await self.quota.refund(reservation, "not-shown")
            return None
        try:
            return await self._generate(request, accepted, door, sources, context)
        except Exception as exc:  # every ending is told to the user; BotErrors are expected, others are logged
            # (a relax request the bot stopped, `Suspended`, stays open for the next start and is told so)
            await door.fail(self._blamed(exc))
            return None

    def _blamed(self, exc: E) -> E:
        """An upstream error that names no provider is the sole provider's, when there is one."""
        if isinstance(exc, UpstreamError) and self.sole_provider is not None:
            exc.blame(*self.sole_provider)
        return exc

    async def _turns(self, accepted: Accepted) -> tuple[Turn, ...]:
        """The model's own earlier answers to send back with an edit (Gemini 3 multi-turn editing): only for a
        thinking model editing its own picture; empty means the picture goes as a fresh image instead."""
        parent, spec = accepted.parent, accepted.spec
        if parent is None or not spec.thinks or parent.options.model != spec.id:
            return ()
        return await self.generations.turns(parent.id, spec.id, self.history_turns, self.history_max_bytes)

    async def _generate(
        self,
        request: ImageRequest,
        accepted: Accepted,
        door: Door,
        sources: Sequence[InputSource],
        context: Context | None,
        *,
        started: tuple[int, int] | None = None,
    ) -> Delivery:
        """`started`: the generation id and depth of a request recorded by an earlier run (a resumed relax job)."""
        reservation = accepted.reservation
        if started is not None:
            generation_id, depth = started
        else:
            try:
                generation_id, depth = await self.generations.start(request, self.provider.model)
            except BaseException:
                await self.quota.refund(reservation, "internal")
                raise
        queued_at = self.clock()
        started_at: float | None = None
        bill = Bill(accepted.price.estimate_usd, accepted.spec.id)

        async def attempt() -> GeneratedImage:
            nonlocal started_at
            began = self.clock()
            if started_at is None:
                started_at = began
                self.metrics.queue_wait(began - queued_at)
            # The turns carry the newest instructions themselves; older ones stay in the preface.
            carried = len(context.turns) if context else 0
            prompt = provider_prompt(request.prompt, request.history[: len(request.history) - carried])
            self.quota.attempt(reservation)
            bill.started()
            who = self.provider_name
            try:
                image = await self.provider.generate(prompt, request.images, request.options, context)
                who = image.provider or who
            except BaseException as exc:
                bill.failed(exc)
                raise
            finally:
                self.metrics.upstream_call(provider=who, model=accepted.spec.id, seconds=self.clock() - began)
            bill.answered(image)
            return image

        def upstream_elapsed() -> float:
            # The retry deadline runs from the first upstream start: waiting in line is not the upstream's fault.
            return 0.0 if started_at is None else self.clock() - started_at

        def relax_call() -> None:
            nonlocal started_at
            started_at = started_at or self.clock()
            self.quota.attempt(reservation)
            bill.started()

        try:
            if request.relax:
                image = await self._relax(request, accepted, generation_id, door, relax_call)
                bill.answered(image)
            else:
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
            larger = tuple(s for s in accepted.spec.larger_sizes(request.options.size or "") if s in RENDER_SIZES)
            # Only what the model really received: a gateway that took over got the picture, not the turns.
            turns = image.memory_turns
            delivery = Delivery(generation_id, request, image, shown, depth, accepted.spec.name, turns, larger)
            message_id = await door.deliver(delivery)
        except BaseException as exc:
            if isinstance(exc, Suspended):
                raise
            if request.relax and not bill.total_usd:
                bill.failed(exc)  # the relax lane's own calls (Flex calls that may have been billed)
            await self._fail(request, generation_id, reservation, exc, queued_at, started_at, bill)
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
                cost_usd=bill.total_usd,
                credits=reservation.credits,
                model=accepted.spec.id,
            )
            costs = bill.costs()
            if await self.quota.commit(reservation, generation_id, bill.total_usd, costs):
                self.metrics.spent(
                    model=accepted.spec.id,
                    provider=image.provider or self.provider_name,
                    credits=reservation.credits,
                    usd=bill.total_usd,
                )
            log.info(
                "generation %s delivered by %s: %s %s, %d credit(s), $%.4f real cost (%d call(s)%s)",
                generation_id,
                image.provider or "?",
                image.model,
                request.options.size,
                reservation.credits,
                bill.total_usd,
                bill.calls,
                describe(costs),
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
        bill: Bill,
    ) -> None:
        kind = type(exc).__name__
        if isinstance(exc, ModelUnavailable):
            log.error(
                "OPERATOR ACTION NEEDED: the model %s is not available to this project (404 NOT_FOUND: retired, "
                "misspelt, or not served to new projects). Set GEMINI_MODEL (and GEMINI_MODELS) to a current "
                "model such as %s; `python -m bot check --probe` tries each. Detail: %s",
                exc.model,
                self.planner.registry.replacement(exc.model),
                exc,
            )
        elif isinstance(exc, OperatorError):
            # The operator has to act; users only see that it is not their fault.
            log.error("OPERATOR ACTION NEEDED: the image provider refused the bot's setup: %s", exc)
        elif not isinstance(exc, BotError):
            log.error("generation %s failed unexpectedly", generation_id, exc_info=exc)
        billed, costs = bill.total_usd, bill.costs()
        provider = exc.provider if isinstance(exc, UpstreamError) else None
        if billed:
            log.info(
                "generation %s failed (%s from %s) after %d call(s) that may cost $%.4f%s",
                generation_id,
                kind,
                provider or "no single provider",
                bill.calls,
                billed,
                describe(costs, always=True),
            )
        try:
            await self.generations.failed(
                generation_id, kind, str(exc), queued_ms=_ms(queued_at, started_at), provider=provider
            )
        finally:
            await self.quota.refund(reservation, kind, billed, costs)
        if isinstance(exc, PromptBlocked | ImageBlocked):
            await self.moderator.record_upstream_block(request, exc)


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)
