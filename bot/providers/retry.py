"""When to try an upstream call again, and how long to wait first.

The policy is data plus one pure function (`next_delay`), so every decision is table-testable; the loop
(`call_with_retries`) only asks it and sleeps. A failed generation may still be billed, so attempts are few.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.config import DEFAULTS
from bot.errors import RateLimited, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Worth another attempt. A stalled attempt (UpstreamTimeout) is abandoned and retried within the overall deadline.
RETRYABLE: tuple[type[BaseException], ...] = (RateLimited, UpstreamUnavailable, UpstreamTimeout)
# Spread added to a 429's requested wait so requests told the same delay don't all return in the same instant.
RATE_LIMIT_JITTER_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = DEFAULTS.gemini_max_attempts  # attempts in total, the first included
    # Seconds; the cap of the first backoff, doubled for each further one.
    backoff_base: float = DEFAULTS.gemini_backoff_base_seconds
    backoff_max: float = DEFAULTS.gemini_backoff_max_seconds  # seconds; no backoff is longer
    max_retry_wait: float = DEFAULTS.gemini_max_retry_wait_seconds  # a 429 asking for longer is not retried
    deadline: float = DEFAULTS.gemini_timeout_seconds  # seconds from the first attempt; no new attempt after


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))), so failing clients spread out."""
    return rand * min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))


def next_delay(policy: RetryPolicy, attempt: int, exc: BaseException, elapsed: float, rand: float) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to give up and raise `exc`.

    `attempt` is the number of attempts made so far (1 after the first failure), `elapsed` the seconds since the
    first attempt started, `rand` a number in [0, 1)."""
    if not isinstance(exc, RETRYABLE) or attempt >= policy.max_attempts:
        return None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        if exc.retry_after > policy.max_retry_wait:
            return None
        delay = exc.retry_after + rand * RATE_LIMIT_JITTER_SECONDS
    else:
        delay = backoff(policy, attempt, rand)
    if elapsed + delay >= policy.deadline:
        return None
    return delay


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """Await `attempt()` until it succeeds or the policy gives up; then the last error is raised unchanged.
    Cancellation is never retried (only `Exception` is caught)."""
    started = clock()
    made = 0
    while True:
        made += 1
        try:
            return await attempt()
        except Exception as exc:
            delay = next_delay(policy, made, exc, clock() - started, rand())
            if delay is None:
                raise
            log.warning(
                "upstream attempt %d/%d failed (%s: %s); retrying in %.1fs",
                made,
                policy.max_attempts,
                type(exc).__name__,
                exc,
                delay,
            )
        await sleep(delay)
