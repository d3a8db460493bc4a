"""The provider chain: itself an `ImageProvider` that tries the configured providers in priority order.

Rules (shared/reference/gemini-api.md, "Failover rules"): the next provider is tried after a connection error,
a timeout before any answer, a 5xx, a 429 and an open circuit; never after a refusal (the prompt or the picture)
or a bad request, which the next provider would refuse too and might bill. A provider whose own setup is wrong
(key, credit, a model it lacks) is skipped as well: it cannot serve anyone until its operator acts.

Each provider of a chain has its own lane, a `Gate` of its own: its circuit breaker (repeated failures ->
skipped for a cool-down, then one trial), its 429 pause (skipped until it said to come back), and its optional
PROVIDER_N_RPM / PROVIDER_N_CONCURRENCY. A provider that is merely full is skipped for the next one; when every
provider that could serve is full, the request waits for the first one to free up. The scheduler's gate in front
stays the bot-wide limit and fair queue, and sees the chain as one upstream: its circuit opens only when the
whole chain keeps failing. A chain of one provider has no lane: the scheduler's gate is that provider's.

The result names the provider that made it with its cost when known, and carries the earlier attempts that may
have been billed (`billing.Charge`); a request that fails carries them on its error.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import (
    CircuitOpen,
    OperatorError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.gate import Gate, Outcome, SchedulerStats
from bot.models import GeneratedImage, ImageOptions, InputImage
from bot.providers import ImageProvider
from bot.providers.billing import Charge, ProviderImage, add_charges, attribute, may_be_billed
from bot.providers.config import ProviderConfig
from bot.ratelimit import Clock, SystemClock

log = logging.getLogger(__name__)

FAILOVER_ERRORS: tuple[type[UpstreamError], ...] = (UpstreamUnavailable, UpstreamTimeout, RateLimited)
# Gemini's 400 INVALID_ARGUMENT and a gateway's 400/413/422: the request, not the provider, is wrong.
BAD_REQUEST_REASONS = frozenset({"INVALID_ARGUMENT", "bad_request"})


def is_bad_request(exc: BaseException) -> bool:
    return isinstance(exc, OperatorError) and exc.status in (400, 413, 422) and exc.reason in BAD_REQUEST_REASONS


def fails_over(exc: BaseException) -> bool:
    """Whether the next provider should get the request after this error."""
    if isinstance(exc, FAILOVER_ERRORS):
        return True
    return isinstance(exc, OperatorError) and not is_bad_request(exc)


@dataclass(eq=False)
class Member:
    """One provider of the chain, with its lane (None for a chain of one)."""

    config: ProviderConfig
    provider: ImageProvider
    gate: Gate | None = None

    @property
    def name(self) -> str:
        return self.config.name


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
        if len(members) > 1 and any(m.gate is None for m in members):
            raise ValueError("every provider of a chain needs its own gate")
        self.members = tuple(members)
        self.model = model
        self.deadline = deadline
        self._clock: Clock = clock or SystemClock()
        self._freed = asyncio.Event()  # set, then replaced, whenever a lane's slot ends

    def __repr__(self) -> str:
        return f"FailoverProvider(model={self.model!r}, providers={[m.name for m in self.members]!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def stats(self) -> list[tuple[str, SchedulerStats]]:
        """Each lane's state (window, in flight, pause, circuit), for status views."""
        now, wall = self._clock.monotonic(), self._clock.time()
        return [(m.name, m.gate.stats(now, wall)) for m in self.members if m.gate is not None]

    async def generate(
        self, prompt: str, images: tuple[InputImage, ...] = (), options: ImageOptions | None = None
    ) -> ProviderImage:
        if len(self.members) == 1:
            member = self.members[0]
            try:
                image = await member.provider.generate(prompt, images, options)
            except UpstreamError as exc:
                add_charges(exc, self._charges(member, exc))
                raise
            return attribute(image, provider=member.name, cost_usd=member.config.price(self.model))
        return await self._chain(prompt, images, options)

    async def _chain(self, prompt: str, images: tuple[InputImage, ...], options: ImageOptions | None) -> ProviderImage:
        ends = self._clock.monotonic() + self.deadline
        charges: list[Charge] = []
        failures: list[UpstreamError] = []
        tried: set[int] = set()
        while True:
            now = self._clock.monotonic()
            member, busy_until = self._pick(tried, now) if not tried or now < ends else (None, None)
            if member is None:
                if busy_until is None or now >= ends:
                    raise add_charges(self._final(failures, tried, now, ends), charges)
                await self._wait(min(busy_until, ends))
                continue
            tried.add(self.members.index(member))
            try:
                # Every provider gets the request as plain prompt plus pictures: a conversation's history reaches
                # a gateway as its instructions and the source picture as a fresh input (a stateless edit).
                image = await self._attempt(member, prompt, images, options)
            except UpstreamError as exc:
                charges += self._charges(member, exc)
                if not fails_over(exc):
                    add_charges(exc, charges)
                    raise
                failures.append(exc)
                _log_failure(member, exc, last=len(tried) == len(self.members))
                continue
            if failures:
                log.info("request served by %s after %d provider(s) failed", member.name, len(failures))
            return attribute(image, provider=member.name, cost_usd=member.config.price(self.model), charges=charges)

    def _pick(self, tried: set[int], now: float) -> tuple[Member | None, float | None]:
        """The first untried provider that can start now; else when the first busy one frees up (inf: when a
        slot ends, e.g. a half-open circuit's trial), or None when every untried provider is refusing (circuit
        open) or paused (429). `tried` is empty on the first pick, so the deadline never stops the first try."""
        wall = self._clock.time()
        busy_until: float | None = None
        for i, member in enumerate(self.members):
            gate = member.gate
            assert gate is not None
            if i in tried or gate.refusal(now, wall) is not None or gate.paused_until > now:
                continue
            ready = gate.ready_at(now)
            if ready is not None and ready <= now:
                return member, None
            busy_until = min(busy_until if busy_until is not None else math.inf, ready or math.inf)
        return None, busy_until

    async def _attempt(
        self, member: Member, prompt: str, images: tuple[InputImage, ...], options: ImageOptions | None
    ) -> GeneratedImage:
        gate = member.gate
        assert gate is not None
        slot = gate.start(self._clock.monotonic(), self._clock.time())
        outcome, measured, tokens = Outcome.NEUTRAL, False, 0
        try:
            image = await member.provider.generate(prompt, images, options)
        except RateLimited as exc:
            gate.pause(exc.retry_after, self._clock.monotonic())
            raise
        except (UpstreamUnavailable, UpstreamTimeout):
            outcome, measured = Outcome.FAILURE, True
            raise
        except OperatorError as exc:
            # A provider that refuses the bot's setup is skipped like a failing one; a bad request says nothing
            # about the provider.
            outcome, measured = (Outcome.SUCCESS if is_bad_request(exc) else Outcome.FAILURE), True
            raise
        except UpstreamError:
            outcome, measured = Outcome.SUCCESS, True  # it answered (a refusal, words only): it is reachable
            raise
        else:
            outcome, measured, tokens = Outcome.SUCCESS, True, image.usage.total_tokens
            return image
        finally:
            if gate.end(slot, outcome, self._clock.monotonic(), tokens=tokens, measured=measured):
                log.warning(
                    "provider %s failed %d times in a row: skipped for %.0fs",
                    member.name,
                    gate.circuit.failures,
                    gate.circuit.cooldown,
                )
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

    def _final(self, failures: list[UpstreamError], tried: set[int], now: float, ends: float) -> UpstreamError:
        """The error that ends a chain with nothing left to try: the most useful one for the scheduler in front
        (it pauses for a 429, counts a failure towards its circuit, refuses everyone while the circuit is open)
        and for the user."""
        wall = self._clock.time()
        skipped = [m.gate for i, m in enumerate(self.members) if i not in tried and m.gate is not None]
        pauses = [g.paused_until - now for g in skipped if g.paused_until > now]
        limited = [f for f in failures if isinstance(f, RateLimited)]
        if len(limited) == len(failures) and (limited or pauses):
            waits = [f.retry_after for f in limited if f.retry_after is not None] + pauses
            detail = "; ".join(str(f) for f in limited) or "every provider is pausing after a 429"
            return RateLimited(detail, min(waits) if waits else None)
        if failures:
            return next((f for f in failures if not isinstance(f, RateLimited)), failures[0])
        opens = [until for g in skipped if (until := g.circuit.open_until) is not None and until > now]
        if opens:
            return CircuitOpen(wall + min(opens) - now)
        return UpstreamTimeout(f"no provider was free within {self.deadline:g}s")

    def _charges(self, member: Member, exc: UpstreamError) -> list[Charge]:
        if not may_be_billed(exc):
            return []
        return [
            Charge(
                member.name, member.config.remote_model(self.model), member.config.price(self.model), type(exc).__name__
            )
        ]


def _log_failure(member: Member, exc: UpstreamError, *, last: bool) -> None:
    what = "no provider left" if last else "trying the next provider"
    if isinstance(exc, OperatorError):
        log.error("OPERATOR ACTION NEEDED: provider %s refused the bot's setup (%s); %s", member.name, exc, what)
    else:
        log.warning("provider %s failed (%s: %s); %s", member.name, type(exc).__name__, exc, what)
