"""Building the relax lane from the settings: Google's own endpoint for Flex and Batch, and a scheduler of its own.
`bot.services.build_relax` calls it with the fast lane's retry policy."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from bot.config import Settings
from bot.providers.config import GOOGLE, ProviderConfig, load_providers
from bot.providers.gemini import GeminiProvider
from bot.providers.gemini_batch import GeminiBatches
from bot.providers.registry import ModelRegistry
from bot.providers.retry import RetryPolicy
from bot.relax.lane import RelaxLane
from bot.relax.store import RelaxJobs
from bot.relax.values import RelaxTimings, RelaxUpstream
from bot.scheduler.gate import Gate
from bot.scheduler.ratelimit import Clock
from bot.scheduler.scheduler import Scheduler
from bot.storage.db import Database

# Prior for a Flex call's duration in the relax lane's estimates (Google's target: 1-15 minutes).
RELAX_EXPECTED_FLEX_SECONDS = 120.0


def relax_lane(
    http: aiohttp.ClientSession,
    db: Database,
    settings: Settings,
    registry: ModelRegistry | None = None,
    configs: tuple[ProviderConfig, ...] | None = None,
    *,
    retry_policy: RetryPolicy,
    clock: Callable[[], float] = time.time,
    scheduler_clock: Clock | None = None,
) -> RelaxLane:
    """The relax lane: Google's own endpoint (the provider named gemini, whatever its place in PROVIDERS) asked
    for Flex and Batch, behind a scheduler of its own (RELAX_RPM, RELAX_CONCURRENCY, RELAX_USER_MAX_PENDING) that
    scales with the rate window like the fast one. Without a gemini provider it has no upstream: relax requests
    are refused, and jobs left from an earlier run end with a refund."""
    registry = registry or settings.registry()
    configs = load_providers(settings) if configs is None else configs
    google = next((c for c in configs if c.name == GOOGLE and c.api_key is not None), None)
    upstream = None
    if google is not None and google.api_key is not None:
        flex = GeminiProvider(
            http,
            google.api_key,
            base_url=google.base_url,
            registry=registry,
            attempt_timeout=settings.relax_flex_timeout_seconds,
        )
        batches = GeminiBatches(http, google.api_key, base_url=google.base_url)
        upstream = RelaxUpstream(flex=flex, batches=batches, registry=registry)
    window = settings.upstream_window_seconds
    scale = window / 60
    gate = Gate(
        rpm=settings.relax_rpm,
        concurrency=settings.relax_concurrency,
        failure_threshold=settings.circuit_failure_threshold,
        cooldown=settings.circuit_cooldown_seconds,
        window=window,
        margin=settings.upstream_window_margin_seconds * scale,
        default_retry_after=settings.upstream_429_pause_seconds * scale,
        # Flex takes minutes, not seconds: the lane's own estimates start from that.
        expected_duration=RELAX_EXPECTED_FLEX_SECONDS * scale,
    )
    # The line's cap and its reports (QUEUE_MAX_LENGTH, QUEUE_REPORT_INTERVAL_SECONDS, QUEUE_UPDATES_PER_REPORT)
    # as in the fast lane: a long relax line costs the event loop no more than a long fast one.
    scheduler = Scheduler(
        gate,
        user_max_pending=settings.relax_user_max_pending,
        max_queued=settings.queue_max_length,
        report_interval=settings.queue_report_interval_seconds * scale,
        report_limit=settings.queue_updates_per_report,
        eta_tolerance=scale * 10,
        clock=scheduler_clock,
    )
    return RelaxLane(
        store=RelaxJobs(db, clock=clock),
        scheduler=scheduler,
        upstream=upstream,
        daily_quota=settings.relax_daily_quota,
        timings=RelaxTimings(
            flex_attempts=settings.relax_flex_attempts,
            flex_backoff=settings.relax_flex_backoff_seconds,
            poll_seconds=settings.relax_batch_poll_seconds,
            max_hours=settings.relax_batch_max_hours,
        ),
        retry_policy=retry_policy,
        clock=clock,
    )
