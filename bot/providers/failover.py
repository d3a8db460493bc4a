"""The provider chain: itself an `ImageProvider` that tries the configured providers in priority order.

Rules (shared/reference/gemini-api.md, "Failover rules"): the next provider is tried after a connection error,
a timeout before any answer, a 5xx, a 429 and an open circuit; never after a refusal (the prompt or the picture)
or a bad request, which the next provider would refuse too and might bill. A provider whose own setup is wrong
(key, credit, a model it lacks) is skipped as well: it cannot serve anyone until its operator acts.

Each provider of a chain has its own lane, a gate of its own (`Lane`): its circuit breaker (repeated failures ->
skipped for a cool-down, then one trial), its 429 pause (skipped until it said to come back), and its optional
PROVIDER_N_RPM / PROVIDER_N_CONCURRENCY. A provider that is merely full is skipped for the next one; when every
provider that could serve is full, the request waits for the first one to free up. The scheduler's gate in front
stays the bot-wide limit and fair queue, and sees the chain as one upstream: its circuit opens only when the
whole chain keeps failing. A chain of one provider has no lane: the scheduler's gate is that provider's.

The result names the provider that made it with its cost when known, and carries the earlier attempts that may
have been billed (`billing.Charge`); a request that fails carries them on its error, and the error names the
provider that raised it (`UpstreamError.provider`, for the words users read) unless several failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.errors import (
    Charge,
    CircuitOpen,
    OperatorError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import Context, GeneratedImage, ImageOptions, InputImage
from bot.providers import ImageProvider
from bot.providers.billing import add_charges, attribute, mark_billed, may_be_billed
from bot.providers.config import ProviderConfig

log = logging.getLogger(__name__)

FAILOVER_ERRORS: tuple[type[UpstreamError], ...] = (UpstreamUnavailable, UpstreamTimeout, RateLimited)
# Gemini's 400 INVALID_ARGUMENT and a gateway's 400/413/422: the request, not the provider, is wrong.
BAD_REQUEST_REASONS = frozenset({"INVALID_ARGUMENT", "bad_request"})

Availability = Literal["ready", "busy", "paused", "open"]
LaneOutcome = Literal["success", "failure", "neutral"]


class Lane(Protocol):
    """A provider's own gate. The scheduler package keeps the gates (`bot.scheduler.lanes.GateLane`); providers
    know nothing of scheduling, so the chain sees a lane only through this."""

    def availability(self) -> tuple[Availability, float | None]:
        """Whether an attempt may start now: "ready"; "busy" (rate window or concurrency full), "paused" (after a
        429) or "open" (circuit), with the seconds until that changes (None: when a running attempt ends)."""
        ...

    def start(self) -> object:
        """Take a slot for an attempt starting now; the returned ticket goes back to `end`."""
        ...

    def end(self, ticket: object, outcome: LaneOutcome, *, tokens: int = 0) -> None:
        """The attempt ended: "success" (the provider answered, with a picture or a refusal), "failure" (counts
        towards opening the circuit) or "neutral" (a 429, a cancellation)."""
        ...

    def pause(self, retry_after: float | None) -> None:
        """The provider answered 429: no start until it said to come back (None: the default pause)."""
        ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def is_bad_request(exc: BaseException) -> bool:
    return isinstance(exc, OperatorError) and exc.status in (400, 413, 422) and exc.reason in BAD_REQUEST_REASONS


def fails_over(exc: BaseException) -> bool:
    """Whether the next provider should get the request after this error."""
    if isinstance(exc, FAILOVER_ERRORS):
        return True
    return isinstance(exc, OperatorError) and not is_bad_request(exc)


def lane_outcome(exc: BaseException | None) -> LaneOutcome:
    """What an attempt's end says about the provider's health."""
    if exc is None:
        return "success"
    if isinstance(exc, UpstreamUnavailable | UpstreamTimeout):
        return "failure"
    if isinstance(exc, OperatorError):
        # A provider that refuses the bot's setup is skipped like a failing one; a bad request says nothing
        # about the provider.
        return "success" if is_bad_request(exc) else "failure"
    if isinstance(exc, UpstreamError) and not isinstance(exc, RateLimited):
        return "success"  # it answered (a refusal, words only): it is reachable
    return "neutral"  # a 429 (the pause handles it), a cancellation, a bug of ours


@dataclass(eq=False)
class Member:
    """One provider of the chain, with its lane (None for a chain of one)."""

    config: ProviderConfig
    provider: ImageProvider
    lane: Lane | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def label(self) -> str:
        return self.config.label


class FailoverProvider:
    def __init__(
        self,
        members: Sequence[Member],
        *,
        model: str,
        deadline: float = 90.0,
        clock: Clock | None = None,
    ) -> None:
        """`model`: our id of the model asked for (each provider maps it); `deadline`: seconds after which no
        further provider is started for one call (each provider's own attempt timeout bounds the one running)."""
        if not members:
            raise ValueError("a provider chain needs at least one provider")
        if len(members) > 1 and any(m.lane is None for m in members):
            raise ValueError("every provider of a chain needs its own lane")
        self.members = tuple(members)
        self.model = model
        self.deadline = deadline
        self._clock: Clock = clock or _SystemClock()
        self._freed = asyncio.Event()  # set, then replaced, whenever a lane's slot ends

    def __repr__(self) -> str:
        return f"FailoverProvider(model={self.model!r}, providers={[m.name for m in self.members]!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    @property
    def only(self) -> tuple[str, str] | None:
        """The provider's name and label when the chain has one: the bot-wide gate in front is then its gate, so
        what that gate refuses (an open circuit) is this provider's doing."""
        return (self.members[0].name, self.members[0].label) if len(self.members) == 1 else None

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: Context | None = None,
    ) -> GeneratedImage:
        model = (options.model if options else None) or self.model
        if len(self.members) == 1:
            member = self.members[0]
            try:
                image = await self._call(member, prompt, images, options, context)
            except UpstreamError as exc:
                exc.blame(member.name, member.label)
                add_charges(exc, self._charges(member, exc, model))
                raise
            return attribute(image, provider=member.name, label=member.label, cost_usd=member.config.price(model))
        return await self._chain(prompt, images, options, context)

    async def _call(
        self,
        member: Member,
        prompt: str,
        images: tuple[InputImage, ...],
        options: ImageOptions | None,
        context: Context | None,
    ) -> GeneratedImage:
        """One provider's attempt at our model id mapped to theirs. Only a provider of kind gemini gets the model's
        own earlier turns of a multi-turn edit (their signatures are Google's); any other provider a stateless
        edit: every instruction in the prompt and the source picture as a fresh input. The image says how many
        turns it was made with, so the result claims the model's memory only when the model had it."""
        model = (options.model if options else None) or self.model
        options = dataclasses.replace(options or ImageOptions(), model=member.config.remote_model(model))
        if member.config.kind == "gemini" and context is not None:
            image = await member.provider.generate(prompt, images, options, context)
            return dataclasses.replace(image, memory_turns=len(context.turns))
        if context is not None:
            prompt, images = context.stateless(images)
        return await member.provider.generate(prompt, images, options)

    async def _chain(
        self, prompt: str, images: tuple[InputImage, ...], options: ImageOptions | None, context: Context | None
    ) -> GeneratedImage:
        model = (options.model if options else None) or self.model
        ends = self._clock.monotonic() + self.deadline
        charges: list[Charge] = []
        failures: list[UpstreamError] = []
        tried: set[int] = set()
        while True:
            now = self._clock.monotonic()
            member, busy_until = self._pick(tried, now) if not tried or now < ends else (None, None)
            if member is None:
                if busy_until is None or now >= ends:
                    raise add_charges(self._final(failures, tried), charges)
                await self._wait(min(busy_until, ends))
                continue
            tried.add(self.members.index(member))
            try:
                # Every provider gets the request as plain prompt plus pictures: a conversation's history reaches
                # a gateway as its instructions and the source picture as a fresh input (a stateless edit).
                image = await self._attempt(member, prompt, images, options, context)
            except UpstreamError as exc:
                exc.blame(member.name, member.label)
                charges += self._charges(member, exc, model)
                if not fails_over(exc):
                    add_charges(exc, charges)
                    raise
                failures.append(exc)
                _log_failure(member, exc, last=len(tried) == len(self.members))
                continue
            if failures:
                log.info("request served by %s after %d provider(s) failed", member.name, len(failures))
            return attribute(
                image,
                provider=member.name,
                label=member.label,
                cost_usd=member.config.price(model),
                charges=charges,
                fallback=member is not self.members[0],
            )

    def _pick(self, tried: set[int], now: float) -> tuple[Member | None, float | None]:
        """The first untried provider that can start now; else when the first busy one frees up (inf: when an
        attempt ends, e.g. a half-open circuit's trial), or None when every untried provider is refusing (circuit
        open) or paused (429). `tried` is empty on the first pick, so the deadline never stops the first try."""
        busy_until: float | None = None
        for i, member in enumerate(self.members):
            assert member.lane is not None
            if i in tried:
                continue
            state, wait = member.lane.availability()
            if state == "ready":
                return member, None
            if state == "busy":
                until = now + wait if wait is not None else math.inf
                busy_until = until if busy_until is None else min(busy_until, until)
        return None, busy_until

    async def _attempt(
        self,
        member: Member,
        prompt: str,
        images: tuple[InputImage, ...],
        options: ImageOptions | None,
        context: Context | None,
    ) -> GeneratedImage:
        lane = member.lane
        assert lane is not None
        ticket = lane.start()
        error: BaseException | None = None
        tokens = 0
        try:
            image = await self._call(member, prompt, images, options, context)
            tokens = image.usage.total_tokens
            return image
        except BaseException as exc:
            error = exc
            if isinstance(exc, RateLimited):
                lane.pause(exc.retry_after)
            raise
        finally:
            lane.end(ticket, lane_outcome(error), tokens=tokens)
            self._freed.set()
            self._freed = asyncio.Event()

    async def _wait(self, until: float) -> None:
        freed = asyncio.ensure_future(self._freed.wait())
        timer = asyncio.ensure_future(self._clock.sleep(max(0.0, until - self._clock.monotonic())))
        try:
            await asyncio.wait({freed, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
            timer.cancel()

    def _final(self, failures: list[UpstreamError], tried: set[int]) -> UpstreamError:
        """The error that ends a chain with nothing left to try: the most useful one for the scheduler in front
        (it pauses for a 429, counts a failure towards its circuit, refuses everyone while the circuit is open)
        and for the user."""
        states = [m.lane.availability() for i, m in enumerate(self.members) if i not in tried and m.lane]
        pauses = [wait for state, wait in states if state == "paused" and wait is not None]
        opens = [wait for state, wait in states if state == "open" and wait is not None]
        limited = [f for f in failures if isinstance(f, RateLimited)]
        if len(limited) == len(failures) and (limited or pauses):
            waits = [f.retry_after for f in limited if f.retry_after is not None] + pauses
            detail = "; ".join(str(f) for f in limited) or "every provider is pausing after a 429"
            return RateLimited(detail, min(waits) if waits else None)
        if failures:
            final = next((f for f in failures if not isinstance(f, RateLimited)), failures[0])
            final.unblame()  # no provider could serve: naming the one that failed last would be half the story
            return final
        if opens:
            return CircuitOpen(self._clock.time() + min(opens))
        # Nothing was sent, so nothing can be billed (an unjudged timeout would count at the estimate).
        return mark_billed(UpstreamTimeout(f"no provider was free within {self.deadline:g}s"), False)

    def _charges(self, member: Member, exc: UpstreamError, model: str) -> list[Charge]:
        if not may_be_billed(exc):
            return []
        # What the answer said it cost (Gemini's token counts) beats the operator's configured price.
        cost = exc.cost_usd if exc.cost_usd is not None else member.config.price(model)
        return [Charge(member.name, member.config.remote_model(model), cost, type(exc).__name__)]


def _log_failure(member: Member, exc: UpstreamError, *, last: bool) -> None:
    what = "no provider left" if last else "trying the next provider"
    if isinstance(exc, OperatorError):
        log.error("OPERATOR ACTION NEEDED: provider %s refused the bot's setup (%s); %s", member.name, exc, what)
    else:
        log.warning("provider %s failed (%s: %s); %s", member.name, type(exc).__name__, exc, what)
