"""The failover chain's rules with scripted providers and a fake clock: when it moves on, when it never does,
each provider's own pause and circuit, waiting when all are busy, and what the result and the error carry."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest
from pydantic import SecretStr

from bot.errors import (
    Charge,
    CircuitOpen,
    GenerationFailed,
    ImageBlocked,
    OperatorError,
    PromptBlocked,
    RateLimited,
    TextOnlyAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import Context, GeneratedImage, ImageOptions, InputImage, Turn, Usage
from bot.providers.billing import mark_billed
from bot.providers.config import ProviderConfig
from bot.providers.failover import FailoverProvider, Member
from bot.scheduler.gate import Gate
from bot.scheduler.lanes import UNLIMITED, GateLane
from tests.fakes.clock import FakeClock

MODEL = "gemini-3-pro-image"


class Scripted:
    """A provider that answers from a script: an exception to raise, a future to wait for, or (default) an image."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = MODEL
        self.script: deque[Any] = deque()
        self.calls: list[tuple[str, tuple[InputImage, ...], ImageOptions | None]] = []

    async def generate(
        self, prompt: str, images: tuple[InputImage, ...] = (), options: ImageOptions | None = None
    ) -> GeneratedImage:
        self.calls.append((prompt, images, options))
        step = self.script.popleft() if self.script else None
        if isinstance(step, asyncio.Future):
            step = await step
        if isinstance(step, BaseException):
            raise step
        return GeneratedImage(b"\x89PNG...", "image/png", f"{self.name}-model", usage=Usage(total_tokens=1290))


def config(name: str, **values: Any) -> ProviderConfig:
    kind = "gemini" if name == "gemini" else "openai-chat"
    return ProviderConfig(name, kind, f"https://{name}.example", SecretStr("k"), **values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lane(clock):
    def make(**values: Any) -> GateLane:
        limits = {"rpm": UNLIMITED, "concurrency": UNLIMITED, "failure_threshold": 2, "cooldown": 30.0} | values
        return GateLane("p", Gate(**limits), clock)

    return make


@pytest.fixture
def primary() -> Scripted:
    return Scripted("gemini")


@pytest.fixture
def gateway() -> Scripted:
    return Scripted("gw")


def chain(clock: FakeClock, *members: Member, deadline: float = 90.0) -> FailoverProvider:
    return FailoverProvider(members, model=MODEL, clock=clock, deadline=deadline)


@pytest.fixture
def two(clock, primary, gateway, lane) -> FailoverProvider:
    return chain(
        clock,
        Member(config("gemini", prices={MODEL: 0.134}), primary, lane()),
        Member(config("gw", models={MODEL: "google/gemini-3-pro-image"}, default_price=0.15), gateway, lane()),
    )


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable("503 UNAVAILABLE"),
        RateLimited("429", 4.0),
        OperatorError("daily Gemini quota used up", status=429, reason="PerDay"),
        OperatorError("API key not valid", status=400, reason="API_KEY_INVALID"),
        OperatorError("401", status=401, reason="auth"),
    ],
)
async def test_the_next_provider_serves_after_a_failure_of_the_first(two, primary, gateway, error):
    primary.script.append(error)
    image = await two.generate("a fox", (), ImageOptions("16:9"))
    assert (image.provider, image.model, image.cost_usd, image.charges) == ("gw", "gw-model", 0.15, ())
    assert image.fallback
    assert len(primary.calls) == len(gateway.calls) == 1
    assert gateway.calls[0] == ("a fox", (), ImageOptions("16:9", model="google/gemini-3-pro-image"))  # mapped


async def test_a_timeout_is_charged_to_the_provider_that_may_have_billed_it(two, primary):
    primary.script.append(UpstreamTimeout("no answer within 60s"))
    image = await two.generate("a fox")
    assert image.provider == "gw"
    assert image.charges == (Charge("gemini", MODEL, 0.134, "UpstreamTimeout"),)


@pytest.mark.parametrize(
    "error",
    [
        PromptBlocked("PROHIBITED_CONTENT"),
        ImageBlocked("IMAGE_SAFETY"),
        TextOnlyAnswer("Which fox?"),
        GenerationFailed("NO_IMAGE"),
        OperatorError("Invalid value at 'generation_config'", status=400, reason="INVALID_ARGUMENT"),
        OperatorError("size must be one of", status=422, reason="bad_request"),
    ],
)
async def test_never_after_a_refusal_or_a_bad_request(two, primary, gateway, error):
    primary.script.append(error)
    with pytest.raises(type(error)) as info:
        await two.generate("a fox")
    assert info.value is error and gateway.calls == []


async def test_a_refusal_after_an_earlier_failure_carries_that_failure_s_charge(two, primary, gateway):
    primary.script.append(mark_billed(UpstreamUnavailable("broken answer"), True))
    gateway.script.append(PromptBlocked("content_policy_violation"))
    with pytest.raises(PromptBlocked) as info:
        await two.generate("a fox")
    assert info.value.charges == (Charge("gemini", MODEL, 0.134, "UpstreamUnavailable"),)


async def test_a_429_pauses_only_that_provider_for_as_long_as_it_asked(two, primary, gateway, clock):
    primary.script.append(RateLimited("429", 20.0))
    assert (await two.generate("one")).provider == "gw"
    assert (await two.generate("two")).provider == "gw"
    assert len(primary.calls) == 1  # paused: not even asked
    await clock.advance(20.5)
    third = await two.generate("three")
    assert third.provider == "gemini" and not third.fallback


async def test_a_provider_that_keeps_failing_is_skipped_until_its_cool_down_ends(two, primary, gateway, clock):
    primary.script.extend([UpstreamUnavailable("503"), UpstreamUnavailable("503")])
    for _ in range(3):
        assert (await two.generate("a fox")).provider == "gw"
    assert len(primary.calls) == 2 and len(gateway.calls) == 3
    await clock.advance(30)
    assert (await two.generate("a fox")).provider == "gemini"  # the half-open trial succeeds and closes it
    assert (await two.generate("a fox")).provider == "gemini"


async def test_when_every_provider_fails_the_first_real_failure_is_raised(two, primary, gateway):
    first = UpstreamUnavailable("gemini 503")
    primary.script.append(first)
    gateway.script.append(RateLimited("gw 429", 2.0))
    with pytest.raises(UpstreamUnavailable) as info:
        await two.generate("a fox")
    assert info.value is first


async def test_when_every_provider_is_rate_limited_the_shortest_wait_is_raised(two, primary, gateway, clock):
    primary.script.append(RateLimited("gemini 429", 9.0))
    gateway.script.append(RateLimited("gw 429", 3.0))
    with pytest.raises(RateLimited) as info:
        await two.generate("a fox")
    assert info.value.retry_after == 3.0
    await clock.advance(1)
    with pytest.raises(RateLimited) as info:  # both still paused: nobody is asked
        await two.generate("a fox")
    assert info.value.retry_after == pytest.approx(2.0) and len(primary.calls) == len(gateway.calls) == 1


async def test_when_every_circuit_is_open_the_chain_says_until_when(two, primary, gateway, clock):
    primary.script.extend([UpstreamUnavailable("503")] * 2)
    gateway.script.extend([UpstreamUnavailable("502")] * 2)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await two.generate("a fox")
    with pytest.raises(CircuitOpen) as info:
        await two.generate("a fox")
    assert info.value.until_ts == pytest.approx(clock.time() + 30)
    assert len(primary.calls) == len(gateway.calls) == 2


async def test_a_full_provider_spills_to_the_next_and_a_full_chain_waits(clock, primary, gateway, lane):
    providers = chain(
        clock,
        Member(config("gemini"), primary, lane(concurrency=1)),
        Member(config("gw"), gateway, lane(concurrency=1)),
    )
    loop = asyncio.get_running_loop()
    hold_primary, hold_gateway = loop.create_future(), loop.create_future()
    primary.script.append(hold_primary)
    gateway.script.append(hold_gateway)
    first = asyncio.ensure_future(providers.generate("first"))
    second = asyncio.ensure_future(providers.generate("second"))
    third = asyncio.ensure_future(providers.generate("third"))
    await asyncio.sleep(0.01)
    assert [c[0] for c in primary.calls] == ["first"] and [c[0] for c in gateway.calls] == ["second"]
    assert not third.done()
    hold_gateway.set_result(None)
    assert (await second).provider == "gw"
    assert (await third).provider == "gw"  # waited, then took the first provider to free up
    hold_primary.set_result(None)
    assert (await first).provider == "gemini"


async def test_nothing_free_before_the_deadline_is_a_timeout(clock, primary, gateway, lane):
    members = Member(config("gemini"), primary, lane(concurrency=1)), Member(config("gw"), gateway, lane(concurrency=1))
    providers = chain(clock, *members, deadline=10)
    held = asyncio.get_running_loop().create_future()
    primary.script.append(held)
    gateway.script.append(held)
    busy = [asyncio.ensure_future(providers.generate("busy")) for _ in range(2)]
    waiting = asyncio.ensure_future(providers.generate("waiting"))
    await asyncio.sleep(0.01)
    await clock.advance(10)
    with pytest.raises(UpstreamTimeout, match="no provider was free"):
        await waiting
    held.set_result(None)
    await asyncio.gather(*busy)


async def test_cancelling_a_request_frees_its_provider(two, primary, clock):
    primary.script.append(asyncio.get_running_loop().create_future())
    task = asyncio.ensure_future(two.generate("a fox"))
    await asyncio.sleep(0.01)
    lanes = [m.lane for m in two.members]
    assert [lane.stats().in_flight for lane in lanes] == [1, 0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [lane.stats().in_flight for lane in lanes] == [0, 0]


async def test_a_chain_of_one_passes_errors_through_with_their_charges(clock, primary):
    single = chain(clock, Member(config("gemini", default_price=0.039), primary))
    primary.script.append(UpstreamTimeout("no answer"))
    with pytest.raises(UpstreamTimeout) as info:
        await single.generate("a fox")
    assert info.value.charges == (Charge("gemini", MODEL, 0.039, "UpstreamTimeout"),)
    primary.script.extend([UpstreamUnavailable("503")] * 5)
    for _ in range(5):  # no lane: the scheduler's gate in front keeps the circuit for a single provider
        with pytest.raises(UpstreamUnavailable):
            await single.generate("a fox")
    image = await single.generate("a fox")
    assert (image.provider, image.cost_usd) == ("gemini", 0.039)


async def test_a_chain_needs_a_lane_for_every_provider(clock, primary, gateway):
    with pytest.raises(ValueError):
        chain(clock, Member(config("gemini"), primary), Member(config("gw"), gateway))
    with pytest.raises(ValueError):
        chain(clock)


# --- whose error it is, what the user reads, what the result says ------------------------------------------------


async def test_an_error_names_the_provider_that_raised_it_by_the_name_users_read(clock, primary, gateway, lane):
    providers = chain(
        clock,
        Member(config("gemini"), primary, lane()),
        Member(config("gw", display_name="OpenRouter"), gateway, lane()),
    )
    primary.script.append(UpstreamUnavailable("503"))
    gateway.script.append(ImageBlocked("IMAGE_SAFETY"))
    with pytest.raises(ImageBlocked) as info:
        await providers.generate("a fox")
    assert (info.value.provider, info.value.provider_label) == ("gw", "OpenRouter")
    primary.script.append(PromptBlocked("SAFETY"))
    with pytest.raises(PromptBlocked) as refused:
        await providers.generate("a fox")
    assert (refused.value.provider, refused.value.provider_label) == ("gemini", "Google")
    image = await providers.generate("a fox")
    assert (image.provider, image.provider_label, image.fallback) == ("gemini", "Google", False)


async def test_when_every_provider_fails_no_single_one_is_named(two, primary, gateway):
    primary.script.append(UpstreamUnavailable("gemini 503"))
    gateway.script.append(UpstreamUnavailable("gw 502"))
    with pytest.raises(UpstreamUnavailable) as info:
        await two.generate("a fox")
    assert info.value.provider is None and info.value.provider_label is None


async def test_a_chain_of_one_names_its_provider_and_says_it_is_the_only_one(clock, primary):
    single = chain(clock, Member(config("gemini"), primary))
    assert single.only == ("gemini", "Google")
    primary.script.append(UpstreamUnavailable("503"))
    with pytest.raises(UpstreamUnavailable) as info:
        await single.generate("a fox")
    assert info.value.provider_label == "Google"


def test_a_chain_of_several_has_no_only_provider(two):
    assert two.only is None


async def test_waiting_in_vain_for_a_free_provider_bills_nothing(clock, primary, gateway, lane):
    members = Member(config("gemini"), primary, lane(concurrency=1)), Member(config("gw"), gateway, lane(concurrency=1))
    providers = chain(clock, *members, deadline=10)
    held = asyncio.get_running_loop().create_future()
    primary.script.append(held)
    gateway.script.append(held)
    busy = [asyncio.ensure_future(providers.generate("busy")) for _ in range(2)]
    waiting = asyncio.ensure_future(providers.generate("waiting"))
    await asyncio.sleep(0.01)
    await clock.advance(10)
    with pytest.raises(UpstreamTimeout) as info:
        await waiting
    assert info.value.billed is False and info.value.charges == ()  # nothing was sent
    held.set_result(None)
    await asyncio.gather(*busy)


class Remembering(Scripted):
    """A provider that takes the model's own turns (kind gemini) and records what it got."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.contexts: list[Context | None] = []

    async def generate(self, prompt, images=(), options=None, context=None):  # type: ignore[override]
        self.contexts.append(context)
        return await super().generate(prompt, images, options)


async def test_only_a_gemini_provider_gets_the_models_turns_and_only_then_the_result_claims_them(clock, gateway, lane):
    google = Remembering("gemini")
    providers = chain(clock, Member(config("gemini"), google, lane()), Member(config("gw"), gateway, lane()))
    picture = InputImage(b"\x89PNG-the-picture", "image/png")
    other = InputImage(b"\x89PNG-an-upload", "image/png")
    context = Context((Turn("a lighthouse", '{"parts": []}'),), "a lighthouse\nmake it night", picture)

    image = await providers.generate("make it night", (other,), ImageOptions(), context)
    assert image.memory_turns == 1 and google.contexts == [context]

    google.script.append(UpstreamUnavailable("503"))
    image = await providers.generate("make it night", (other,), ImageOptions(), context)
    assert image.provider == "gw" and image.memory_turns == 0
    # A stateless edit: every instruction in the prompt, the picture first among the inputs, no turns.
    assert gateway.calls[-1][:2] == ("a lighthouse\nmake it night", (picture, other))
