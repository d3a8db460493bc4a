"""The retry policy: table-driven `next_delay`, and `call_with_retries` on a fake clock (nothing sleeps for real)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import (
    GenerationFailed,
    ImageBlocked,
    OperatorError,
    PromptBlocked,
    RateLimited,
    TextOnlyAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.providers.gemini import GeminiProvider
from bot.providers.retry import RATE_LIMIT_JITTER_SECONDS, RetryPolicy, call_with_retries, next_delay
from bot.services import build_retry_policy
from tests.fakes.gemini import FakeGemini, GeminiReply

POLICY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=20.0, max_retry_wait=30.0, deadline=90.0)


def unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("Gemini answered 503 UNAVAILABLE: The model is overloaded.")


@pytest.mark.parametrize(
    ("exc", "attempt", "elapsed", "rand", "expected"),
    [
        # A 429 waits what RetryInfo asked, plus at most RATE_LIMIT_JITTER_SECONDS.
        (RateLimited("429", 17.0), 1, 0.0, 0.0, 17.0),
        (RateLimited("429", 17.0), 1, 0.0, 1.0, 17.0 + RATE_LIMIT_JITTER_SECONDS),
        (RateLimited("429", 30.0), 2, 5.0, 0.0, 30.0),
        # ... but not when it asks more than max_retry_wait, or the wait would cross the deadline.
        (RateLimited("429", 30.5), 1, 0.0, 0.0, None),
        (RateLimited("429", 17.0), 1, 80.0, 0.0, None),
        # A 429 without a wait backs off like a 503.
        (RateLimited("429", None), 1, 0.0, 0.5, 0.5),
        # Full-jitter exponential backoff: uniform below base * 2**(attempt-1), capped at backoff_max.
        (unavailable(), 1, 0.0, 0.5, 0.5),
        (unavailable(), 2, 3.0, 0.5, 1.0),
        (UpstreamTimeout("stalled"), 1, 60.0, 0.99, 0.99),
        (UpstreamUnavailable("cannot reach Gemini: ClientConnectorError"), 2, 0.0, 0.0, 0.0),
        # Attempts are bounded: the third failure of three is final.
        (unavailable(), 3, 10.0, 0.5, None),
        (RateLimited("429", 1.0), 3, 10.0, 0.5, None),
        # Deadline: no wait that would end at or after it.
        (unavailable(), 1, 89.4, 0.5, 0.5),
        (unavailable(), 1, 89.5, 0.5, None),
        # Not retryable: Google's refusals, our setup, and anything that is not an upstream failure.
        (OperatorError("daily quota used up", status=429, reason="PerDay"), 1, 0.0, 0.5, None),
        (OperatorError("limit: 0", status=429, reason="limit: 0"), 1, 0.0, 0.5, None),
        (OperatorError("API key not valid", status=400, reason="API_KEY_INVALID"), 1, 0.0, 0.5, None),
        (PromptBlocked("SAFETY"), 1, 0.0, 0.5, None),
        (ImageBlocked("IMAGE_SAFETY"), 1, 0.0, 0.5, None),
        (TextOnlyAnswer("which dog?"), 1, 0.0, 0.5, None),
        (GenerationFailed("NO_IMAGE"), 1, 0.0, 0.5, None),
        (ValueError("bug"), 1, 0.0, 0.5, None),
    ],
)
def test_next_delay(exc, attempt, elapsed, rand, expected):
    delay = next_delay(POLICY, attempt, exc, elapsed, rand)
    assert delay == pytest.approx(expected) if expected is not None else delay is None


def test_backoff_is_capped_at_backoff_max():
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_max=20.0, deadline=1000.0)
    delays = [next_delay(policy, attempt, unavailable(), 0.0, 0.999) for attempt in range(1, 10)]
    assert delays[:5] == pytest.approx([0.999, 1.998, 3.996, 7.992, 15.984])
    assert delays[5:] == pytest.approx([19.98] * 4)


@given(
    attempt=st.integers(1, 12),
    elapsed=st.floats(0, 200),
    rand=st.floats(0, 1, exclude_max=True),
    retry_after=st.one_of(st.none(), st.floats(0, 100)),
    rate_limited=st.booleans(),
)
def test_any_delay_is_bounded_and_ends_before_the_deadline(attempt, elapsed, rand, retry_after, rate_limited):
    exc = RateLimited("429", retry_after) if rate_limited else unavailable()
    delay = next_delay(POLICY, attempt, exc, elapsed, rand)
    if delay is not None:
        assert attempt < POLICY.max_attempts
        assert 0 <= delay <= max(POLICY.backoff_max, POLICY.max_retry_wait + RATE_LIMIT_JITTER_SECONDS)
        assert elapsed + delay < POLICY.deadline


def test_policy_from_settings():
    settings = Settings(
        _env_file=None,
        discord_token="t",
        gemini_api_key="k",
        gemini_max_attempts=5,
        gemini_backoff_base_seconds=0.5,
        gemini_backoff_max_seconds=8,
        gemini_max_retry_wait_seconds=12,
        gemini_timeout_seconds=45,
    )
    assert build_retry_policy(settings) == RetryPolicy(5, 0.5, 8.0, 12.0, 45.0)


# --- the loop -----------------------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the code under test sleeps or an attempt says it took time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(time: FakeTime, outcomes: list, took: float = 0.0):
    """An attempt function that, per call, takes `took` fake seconds and then raises or returns the next outcome."""
    calls: list[float] = []

    async def attempt():
        calls.append(time.now)
        time.now += took
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt, calls


async def run(policy, attempt, time, rand=0.5):
    return await call_with_retries(attempt, policy, sleep=time.sleep, clock=time.clock, rand=lambda: rand)


async def test_a_429_is_retried_after_exactly_what_google_asked():
    time = FakeTime()
    attempt, calls = scripted(time, [RateLimited("429", 17.0), "image"])
    assert await run(POLICY, attempt, time, rand=0.0) == "image"
    assert time.sleeps == [17.0] and len(calls) == 2


@pytest.mark.parametrize(
    "exc",
    [
        UpstreamUnavailable("503 UNAVAILABLE"),
        UpstreamUnavailable("500 INTERNAL"),
        UpstreamUnavailable("504 DEADLINE_EXCEEDED"),
        UpstreamUnavailable("cannot reach Gemini: ClientConnectorError"),
        UpstreamTimeout("no answer within 60s"),
    ],
)
async def test_transient_failures_are_retried_with_bounded_jittered_backoff(exc):
    time = FakeTime()
    attempt, calls = scripted(time, [exc, exc, "image"])
    assert await run(POLICY, attempt, time, rand=0.75) == "image"
    assert time.sleeps == [0.75, 1.5] and len(calls) == 3


async def test_attempts_are_bounded_and_the_last_error_is_raised():
    time = FakeTime()
    errors = [unavailable(), unavailable(), unavailable(), "never reached"]
    attempt, calls = scripted(time, errors)
    with pytest.raises(UpstreamUnavailable) as info:
        await run(POLICY, attempt, time)
    assert info.value is errors[2] and len(calls) == 3 and len(time.sleeps) == 2


@pytest.mark.parametrize(
    "exc",
    [
        OperatorError("daily quota used up", status=429, reason="PerDay"),
        OperatorError("no quota", status=429, reason="limit: 0"),
        RateLimited("429", 120.0),  # asks longer than max_retry_wait
        PromptBlocked("SAFETY"),
        ImageBlocked("IMAGE_SAFETY"),
        TextOnlyAnswer("which dog?"),
        GenerationFailed("NO_IMAGE"),
        KeyError("a bug"),
    ],
)
async def test_non_retryable_errors_are_raised_at_once(exc):
    time = FakeTime()
    attempt, calls = scripted(time, [exc, "image"])
    with pytest.raises(type(exc)) as info:
        await run(POLICY, attempt, time)
    assert info.value is exc and len(calls) == 1 and time.sleeps == []


async def test_no_attempt_starts_after_the_deadline():
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_max=20.0, deadline=90.0)
    time = FakeTime()
    attempt, calls = scripted(time, [UpstreamTimeout("stalled")] * 10, took=40.0)
    with pytest.raises(UpstreamTimeout):
        await run(policy, attempt, time)
    # 0-40 fail, wait 0.5, 40.5-80.5 fail, wait 1, 81.5-121.5 fail: any wait now ends past 90 s.
    assert [c - calls[0] for c in calls] == pytest.approx([0.0, 40.5, 81.5])


async def test_cancellation_is_never_retried():
    time = FakeTime()
    attempt, calls = scripted(time, [asyncio.CancelledError(), "image"])
    with pytest.raises(asyncio.CancelledError):
        await run(POLICY, attempt, time)
    assert len(calls) == 1


async def test_with_the_real_client_every_retry_reaches_gemini_again():
    """503, then a 429 asking 2 s, then an image: three requests reached the fake and the waits were honoured."""
    time = FakeTime()
    async with FakeGemini() as fake, aiohttp.ClientSession() as session:
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)
        fake.enqueue(GeminiReply.overloaded(), GeminiReply.rate_limited(2.0))
        image = await run(POLICY, lambda: provider.generate("a fox"), time, rand=0.5)
    assert [r.status for r in fake.requests] == [503, 429, 200]
    assert time.sleeps == pytest.approx([0.5, 2.0 + 0.5 * RATE_LIMIT_JITTER_SECONDS])
    assert image.mime_type == "image/jpeg"  # the default model (Gemini 3) answers JPEG


async def test_with_the_real_client_a_per_day_429_is_sent_once():
    time = FakeTime()
    async with FakeGemini() as fake, aiohttp.ClientSession() as session:
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)
        fake.enqueue(GeminiReply.rate_limited_per_day(), GeminiReply.no_quota())
        with pytest.raises(OperatorError):
            await run(POLICY, lambda: provider.generate("a fox"), time)
        with pytest.raises(OperatorError):
            await run(POLICY, lambda: provider.generate("a fox"), time)
    assert [r.status for r in fake.requests] == [429, 429] and time.sleeps == []
