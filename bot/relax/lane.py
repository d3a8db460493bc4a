"""The relax lane: how a relax request is made, at half price, when Google has room.

The pipeline serves a relax request like any other (moderation, reservation, scheduler, provider, commit or
refund); this lane is its scheduler and its provider:

1. **Flex**: an ordinary generateContent with `"serviceTier": "flex"` and a long deadline
   (RELAX_FLEX_TIMEOUT_SECONDS), through the lane's own scheduler (RELAX_RPM, RELAX_CONCURRENCY): a gate and a
   fair queue of its own, so relax requests never take a place or a start from the fast lane. Google may shed
   Flex with 503; the lane tries RELAX_FLEX_ATTEMPTS times, RELAX_FLEX_BACKOFF_SECONDS apart. Shedding is not a
   failure of Google's health, so it does not count towards the lane's circuit breaker.
2. **Batch**, when Flex keeps shedding, times out, or is refused for the model: one inline batchGenerateContent
   job (submitted through the same gate), whose name is stored at once (`bot.relax.store`), then asked about every
   RELAX_BATCH_POLL_SECONDS until it ends or RELAX_BATCH_MAX_HOURS pass (then it is cancelled upstream).

Every step is written down before it is taken, so a stopped bot (`suspend`: the request raises `Suspended` and
its reservation stays open) or a crashed one resumes each job at the next start where it was: polling its Batch
job, or trying Flex again. `cancel` works at every stage and cancels the Batch job upstream too. A job that ends
without a picture raises what happened (`BatchEnded` for an expired or failed job), and the pipeline refunds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.editing.conversation import provider_prompt
from bot.errors import (
    BatchEnded,
    Cancelled,
    Charge,
    OperatorError,
    RateLimited,
    RelaxUnavailable,
    ShuttingDown,
    Suspended,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import GeneratedImage, ImageRequest, Price, Progress, RequestOwner
from bot.providers.billing import add_charges, attribute, may_be_billed
from bot.providers.gemini import build_request, parse_response
from bot.providers.gemini_batch import BatchStatus, rpc_error
from bot.providers.registry import ModelSpec
from bot.providers.retry import RetryPolicy, call_with_retries
from bot.relax.store import RelaxJob, RelaxJobs
from bot.relax.values import (
    LiveJob,
    RelaxJobInfo,
    RelaxTimings,
    RelaxUpstream,
    Shed,
    display_name,
    flex_refused,
)
from bot.scheduler.scheduler import Scheduler, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[Progress], Awaitable[None]]
PROVIDER = "gemini"  # relax is Google's own: gateways have neither Flex nor Batch


class RelaxLane:
    def __init__(
        self,
        *,
        store: RelaxJobs,
        scheduler: Scheduler,
        upstream: RelaxUpstream | None,
        daily_quota: int,
        timings: RelaxTimings,
        retry_policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """`upstream` None: the operator has no Gemini provider (jobs left from before still end cleanly).
        `retry_policy`: for submitting a Batch job (polls simply come back at the next poll)."""
        self.store = store
        self.scheduler = scheduler
        self.upstream = upstream
        self.daily_quota = daily_quota
        self.timings = timings
        self.retry_policy = retry_policy
        self.clock = clock
        self.sleep = sleep
        self._live: dict[str, LiveJob] = {}
        self._closing = False

    # --- admission ---------------------------------------------------------------------------------------

    def unavailable(self, request: ImageRequest) -> RelaxUnavailable | None:
        """Why relax mode cannot take `request` (None: it can)."""
        if self.upstream is None:
            return RelaxUnavailable("gateways-only")
        if self.daily_quota == 0:
            return RelaxUnavailable("off")
        if request.images or request.parent_id is not None:
            return RelaxUnavailable("edits")
        return None

    def admit(self, user_id: int, key: str, *, guild_id: int | None = None, force: bool = False) -> Ticket:
        """A place in the lane's own line (RELAX_USER_MAX_PENDING per member, servers taking turns; `force` for
        jobs a start resumes)."""
        if self._closing:
            raise ShuttingDown()
        return self.scheduler.admit(user_id, key, guild_id=guild_id, force=force)

    def release(self, ticket: Ticket) -> None:
        self.scheduler.release(ticket)

    async def register(
        self, key: str, generation_id: int, entry_id: int, request: ImageRequest, model: str
    ) -> RelaxJob:
        """Write the job down before anything is sent: from here on a restart resumes it."""
        return await self.store.add(key, generation_id, entry_id, request, model)

    async def alive(self) -> list[RelaxJob]:
        return await self.store.alive()

    # --- running a job -----------------------------------------------------------------------------------

    async def run(
        self,
        job: RelaxJob,
        ticket: Ticket,
        progress: ProgressCallback | None,
        *,
        price: Price,
        on_call: Callable[[], object] | None = None,
    ) -> GeneratedImage:
        """Make the picture of `job`, from wherever it stands; raises what ended it otherwise (`Suspended` when
        the bot stops: the job is then left alive for the next start). `price`: its Flex price (the estimate a
        call that may have been billed counts at); `on_call` hears of each call that makes a picture (a Flex
        attempt, a Batch submission)."""
        live = LiveJob(job, job.stage, job.batch_name, job.batch_at, on_call=on_call)
        self._live[job.key] = live
        outcome = "image"
        try:
            if self._closing:
                raise Suspended()
            if self.upstream is None:
                raise RelaxUnavailable("gateways-only")
            if live.batch_name is None and job.stage == "submitting":
                await self._adopt(live)  # a crash may have come between creating the job and storing its name
            if live.batch_name is None:
                image = None if job.stage == "submitting" else await self._flex(live, ticket, progress, price)
                if image is not None:
                    return image
                await self._submit(live, ticket)
            return await self._wait_for_batch(live, progress, price)
        except BaseException as exc:
            if live.reason == "suspend" or isinstance(exc, Suspended):
                outcome = ""
                log.info("relax job %s suspended at stage %s", job.id, live.stage)
                raise Suspended() from None
            outcome = type(exc).__name__
            ended_here = isinstance(exc, Cancelled) or (isinstance(exc, BatchEnded) and exc.state == "TIMEOUT")
            if ended_here and live.batch_name is not None:
                await self._cancel_upstream(live)
            if isinstance(exc, UpstreamError):
                add_charges(exc, live.charges)
            raise
        finally:
            self._live.pop(job.key, None)
            if outcome:
                await self.store.end(job.id, outcome)

    async def _flex(
        self, live: LiveJob, ticket: Ticket, progress: ProgressCallback | None, price: Price
    ) -> GeneratedImage | None:
        """The picture from Flex, or None when the job should go to Batch."""
        upstream = self.upstream
        assert upstream is not None
        job = live.job
        request = job.request
        prompt = provider_prompt(request.prompt, request.history)

        async def once() -> GeneratedImage:
            live.stage = "flex"
            live.called()
            try:
                return await upstream.flex.generate(prompt, request.images, request.options)
            except (UpstreamUnavailable, UpstreamTimeout) as exc:
                # Flex is best effort: the lane's circuit breaker must only open when Google cannot be reached.
                raise Shed(exc) from exc

        for attempt in range(job.flex_attempts + 1, self.timings.flex_attempts + 1):
            if attempt > 1:
                await self._pause(live, self.timings.flex_backoff)
            await self.store.flex_attempt(job.id, attempt)
            try:
                image = await self._until_stopped(live, self.scheduler.run(ticket, once, progress))
            except (Shed, RateLimited, OperatorError) as exc:  # a 429 has paused the lane's gate meanwhile
                failure = exc.cause if isinstance(exc, Shed) else exc
                if isinstance(failure, OperatorError) and not flex_refused(failure):
                    raise
                if may_be_billed(failure):
                    cost = failure.cost_usd if failure.cost_usd is not None else price.estimate_usd
                    live.charges.append(Charge(PROVIDER, job.model, cost, type(failure).__name__))
                if isinstance(failure, OperatorError):
                    log.warning("relax job %s: no Flex for %s (%s); using Batch", job.id, job.model, failure)
                    return None
                log.info("relax job %s: Flex attempt %d failed (%s)", job.id, attempt, type(failure).__name__)
                continue
            if attempt > 1:
                log.info("relax job %s: Flex answered at attempt %d", job.id, attempt)
            image = attribute(image, provider=PROVIDER, cost_usd=price.estimate_usd, charges=live.charges)
            return dataclasses.replace(image, tier="flex")
        return None

    async def _adopt(self, live: LiveJob) -> None:
        """Find the Batch job an earlier run may have created just before it stopped, by its display name."""
        upstream = self.upstream
        assert upstream is not None
        try:
            name = await self._until_stopped(live, upstream.batches.find(display_name(live.job)))
        except (UpstreamUnavailable, UpstreamTimeout, RateLimited, OperatorError) as exc:
            log.warning("relax job %s: could not look for its Batch job (%s); submitting it", live.job.id, exc)
            return
        if name is not None:
            at = self.clock()
            live.batch_name, live.batch_at, live.stage = name, at, "batch"
            await self.store.batch_submitted(live.job.id, name, at)
            log.info("relax job %s: found its Batch job %s from before the restart", live.job.id, name)

    async def _submit(self, live: LiveJob, ticket: Ticket) -> None:
        upstream = self.upstream
        assert upstream is not None
        job = live.job
        spec = self._spec(job)
        options = dataclasses.replace(job.request.options, tier="batch")  # a Batch job's request names no tier
        body = build_request(provider_prompt(job.request.prompt, job.request.history), (), options, spec=spec)

        async def create() -> str:
            live.called()
            return await upstream.batches.create(spec.id, [(job.key, body)], display_name=display_name(job))

        await self.store.submitting(job.id)
        live.stage = "submitting"

        # Submitting goes through the lane's gate (it is a request like a generation), with the usual retries; its
        # "generating" would read as Flex at work, so the member hears of the Batch job once it is there.
        name = await self._until_stopped(
            live,
            call_with_retries(lambda: self.scheduler.run(ticket, create, None), self.retry_policy, sleep=self.sleep),
        )
        at = self.clock()
        live.batch_name, live.batch_at, live.stage = name, at, "batch"
        await self.store.batch_submitted(job.id, name, at)
        log.info("relax job %s: Batch job %s submitted", job.id, name)

    async def _wait_for_batch(self, live: LiveJob, progress: ProgressCallback | None, price: Price) -> GeneratedImage:
        upstream = self.upstream
        assert upstream is not None and live.batch_name is not None
        name = live.batch_name
        since = live.batch_at if live.batch_at is not None else self.clock()
        live.stage = "batch"
        deadline = since + self.timings.max_hours * 3600
        if progress is not None:
            await progress(Progress("batch", since=since))
        while True:
            try:
                status: BatchStatus | None = await self._until_stopped(live, upstream.batches.get(name))
            except (UpstreamUnavailable, UpstreamTimeout, RateLimited) as exc:
                log.warning("relax job %s: could not ask about %s (%s); asking again later", live.job.id, name, exc)
                status = None
            except OperatorError as exc:
                if exc.status == 404:
                    raise BatchEnded("LOST", str(exc), hours=self._hours(since)) from None
                raise
            if status is not None and status.done:
                return self._result(live, status, price, since)
            now = self.clock()
            if now >= deadline:
                raise BatchEnded("TIMEOUT", hours=self._hours(since))
            await self._pause(live, min(self.timings.poll_seconds, deadline - now))

    def _result(self, live: LiveJob, status: BatchStatus, price: Price, since: float) -> GeneratedImage:
        hours = self._hours(since)
        match status.state:
            case "SUCCEEDED":
                result = status.result_for(live.job.key)
                if result is None:
                    raise UpstreamUnavailable(f"batch job {status.name} succeeded without a result")
                if "response" not in result:
                    raise rpc_error(result.get("error"))
                spec = self._spec(live.job)
                assert self.upstream is not None
                registry, size = self.upstream.registry, live.job.request.options.size or spec.default_size
                image = parse_response(
                    result["response"], spec.id, cost=lambda usage: registry.cost_usd(spec, size, usage, "batch")
                )
                log.info("relax job %s: Batch job %s delivered after %.1f h", live.job.id, status.name, hours)
                image = attribute(image, provider=PROVIDER, cost_usd=price.estimate_usd, charges=live.charges)
                return dataclasses.replace(image, tier="batch")
            case "CANCELLED" if live.reason == "cancel":
                raise Cancelled()
            case "FAILED" | "EXPIRED" | "CANCELLED":
                message = str((status.error or {}).get("message") or "")
                raise BatchEnded(status.state, message, hours=hours)
        raise UpstreamUnavailable(f"batch job {status.name} ended in an unknown state {status.state}")

    async def _cancel_upstream(self, live: LiveJob) -> None:
        """Best effort: a job nobody waits for should not be made (and billed)."""
        assert self.upstream is not None and live.batch_name is not None
        try:
            await self.upstream.batches.cancel(live.batch_name)
            log.info("relax job %s: Batch job %s cancelled", live.job.id, live.batch_name)
        except UpstreamError as exc:
            log.warning("relax job %s: could not cancel Batch job %s: %s", live.job.id, live.batch_name, exc)

    def _spec(self, job: RelaxJob) -> ModelSpec:
        assert self.upstream is not None
        return self.upstream.registry.get(job.request.options.model or job.model)

    def _hours(self, since: float) -> float:
        return max(0.0, self.clock() - since) / 3600

    # --- stopping ----------------------------------------------------------------------------------------

    def owner(self, key: str) -> RequestOwner | None:
        """Who asked for the live job `key` and where, while it can still be cancelled."""
        live = self._live.get(key)
        if live is None or live.stop.is_set():
            return None
        return RequestOwner(live.job.request.user_id, live.job.request.guild_id)

    def cancel(self, key: str) -> bool:
        """Cancel the live job `key` wherever it stands (a Batch job is cancelled upstream too); False when this
        process runs no such job, or it has its picture already."""
        live = self._live.get(key)
        if live is None or live.stop.is_set():
            return False
        live.reason = "cancel"
        live.stop.set()
        return True

    def suspend(self) -> int:
        """The bot is stopping: refuse new relax requests and suspend every live job (each leaves its
        reservation open for the next start). Returns how many were suspended."""
        self._closing = True
        count = 0
        for live in self._live.values():
            if not live.stop.is_set():
                live.reason = "suspend"
                live.stop.set()
                count += 1
        if count:
            log.info("suspended %d relax job(s); the next start resumes them", count)
        return count

    def jobs(self) -> list[RelaxJobInfo]:
        """The live jobs, oldest first."""
        infos = [
            RelaxJobInfo(
                live.job.key,
                live.job.request.user_id,
                live.job.request.prompt,
                live.stage,
                live.job.created_at,
                live.batch_at,
            )
            for live in self._live.values()
            if not live.stop.is_set()
        ]
        return sorted(infos, key=lambda info: info.created_at)

    async def _until_stopped(self, live: LiveJob, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` unless the job is cancelled or suspended first (then it is cancelled, and
        `Cancelled` or `Suspended` raised). A result that is there already wins over a stop."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(live.stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            raise live.stopped()
        if task.exception() is not None and live.reason == "suspend":
            raise Suspended()  # e.g. ShuttingDown from the lane's scheduler as the bot stops
        return task.result()

    async def _pause(self, live: LiveJob, seconds: float) -> None:
        await self._until_stopped(live, self.sleep(max(0.0, seconds)))
