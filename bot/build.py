"""The builders of the composition root: the only place that reads settings into constructors. One `build_*` per
service, taking only what it needs, so a command builds only what it uses. `bot.services.Services.start` wires
them together; `bot.services` re-exports them, the path callers import them by."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp

from bot.config import Settings
from bot.editing.images import ImageWorkers
from bot.editing.inputs import InputJudge
from bot.moderation.ai import APPEAL_SYSTEM, SYSTEM, AICall, AIModerator
from bot.moderation.store import Moderation
from bot.ops.metrics import Metrics
from bot.providers.config import GOOGLE, ProviderConfig, load_providers
from bot.providers.factory import build_chain
from bot.providers.failover import FailoverProvider
from bot.providers.registry import ModelRegistry
from bot.providers.retry import RetryPolicy
from bot.quota.access import ModelAccess
from bot.quota.ledger import QuotaLedger
from bot.relax import RelaxLane
from bot.relax.build import relax_lane
from bot.scheduler.gate import DEFAULT_EXPECTED_DURATION_SECONDS, Gate
from bot.scheduler.lanes import UNLIMITED, GateLane
from bot.scheduler.ratelimit import Clock
from bot.scheduler.scheduler import Scheduler
from bot.scheduler.shared_limits import SharedGate, SharedLimits
from bot.storage.db import Database
from bot.storage.leases import Owner, ProcessLease, default_instance_id

log = logging.getLogger(__name__)


def build_registry(settings: Settings) -> ModelRegistry:
    """The models and prices; models the bot does not know are allowed, with a warning."""
    registry = settings.registry()
    for spec in registry.enabled:
        if not spec.known:
            log.warning(
                "model %s is unknown to this bot: it is used with conservative capabilities (1K, 10 ratios, 3 input "
                "images, no multi-turn edits) at $%.3f an image; set its price with MODEL_PRICES",
                spec.id,
                registry.price_usd(spec, spec.default_size),
            )
        elif spec.legacy:
            log.warning(
                "model %s is a legacy model: Google serves it only to projects that used it before (new projects get "
                "404). Consider %s; `python -m bot check --probe` tells whether this project can use it",
                spec.id,
                registry.replacement(spec.id),
            )
    return registry


def build_provider(
    http: aiohttp.ClientSession,
    settings: Settings,
    registry: ModelRegistry,
    *,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
) -> FailoverProvider:
    """The providers of PROVIDERS in priority order, each behind a lane of its own when there are several."""
    return build_chain(
        http,
        settings,
        load_providers(settings),
        registry=registry,
        lane_for=lambda config: build_lane(settings, config, clock=clock, metrics=metrics),
        clock=clock,
        download_max_bytes=settings.provider_download_max_bytes,
        download_timeout=settings.provider_download_timeout_seconds,
    )


def build_lane(
    settings: Settings, config: ProviderConfig, *, clock: Clock | None = None, metrics: Metrics | None = None
) -> GateLane:
    """One provider's own gate: the bot's circuit and 429 settings, its own rate and concurrency if configured.
    Times scale with the rate window like the scheduler's (tests run it shortened)."""
    scale = settings.upstream_window_seconds / 60
    gate = Gate(
        rpm=config.rpm or UNLIMITED,
        concurrency=config.concurrency or UNLIMITED,
        failure_threshold=settings.circuit_failure_threshold,
        cooldown=settings.circuit_cooldown_seconds,
        window=settings.upstream_window_seconds,
        margin=settings.upstream_window_margin_seconds * scale,
        default_retry_after=settings.upstream_429_pause_seconds * scale,
        expected_duration=DEFAULT_EXPECTED_DURATION_SECONDS * scale,
    )
    return GateLane(
        config.name,
        gate,
        clock,
        label=config.label,
        rpm=config.rpm,
        concurrency=config.concurrency,
        metrics=metrics,
    )


def build_retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.gemini_max_attempts,
        backoff_base=settings.gemini_backoff_base_seconds,
        backoff_max=settings.gemini_backoff_max_seconds,
        max_retry_wait=settings.gemini_max_retry_wait_seconds,
        deadline=settings.gemini_timeout_seconds,
    )


def build_metrics(settings: Settings) -> Metrics:
    """One registry for the process; it records only when the endpoint that serves it is on (METRICS_PORT)."""
    models = [settings.gemini_model, *(m.strip() for m in settings.gemini_models.split(",") if m.strip())]
    return Metrics(enabled=settings.metrics_port is not None, models=models, providers=settings.provider_names)


def build_scheduler(
    settings: Settings,
    *,
    clock: Clock | None = None,
    window: float | None = None,
    margin: float | None = None,
    metrics: Metrics | None = None,
) -> Scheduler:
    """`window` other than 60 runs the whole gate scaled in time (tests, benchmarks): the margin, the ETA
    prior and tolerance, the report interval and the default 429 pause scale with it; the cool-down is taken
    as set."""
    # One provider: its 429s and circuit are the front gate's, named after it. A chain of several: each
    # provider's lane reports its own (`build_lane`), and the front gate none, so nothing is counted twice.
    names = settings.provider_names
    window = settings.upstream_window_seconds if window is None else window
    scale = window / 60
    margin = settings.upstream_window_margin_seconds * scale if margin is None else margin
    gate = Gate(
        rpm=settings.upstream_rpm,
        concurrency=settings.upstream_concurrency,
        tpm=settings.upstream_tpm,
        rpd=settings.upstream_rpd,
        failure_threshold=settings.circuit_failure_threshold,
        cooldown=settings.circuit_cooldown_seconds,
        window=window,
        margin=margin,
        tokens_per_request=settings.upstream_tokens_per_request,
        default_retry_after=settings.upstream_429_pause_seconds * scale,
        expected_duration=DEFAULT_EXPECTED_DURATION_SECONDS * scale,
    )
    return Scheduler(
        gate,
        user_max_pending=settings.user_max_pending,
        max_queued=settings.queue_max_length,
        report_interval=settings.queue_report_interval_seconds * scale,
        report_limit=settings.queue_updates_per_report,
        eta_tolerance=scale,
        clock=clock,
        metrics=metrics,
        upstream=names[0] if len(names) == 1 else None,
        shared=build_shared_gate(settings, window=window, margin=margin),
    )


def build_shared_gate(settings: Settings, *, window: float, margin: float) -> SharedGate | None:
    """With REDIS_URL, the gate every process shares: the same limits, judged for the whole bot."""
    if settings.redis_url is None:
        return None
    from redis.asyncio import Redis

    limits = SharedLimits(
        rpm=settings.upstream_rpm,
        concurrency=settings.upstream_concurrency,
        tpm=settings.upstream_tpm,
        rpd=settings.upstream_rpd,
        window=window,
        margin=margin,
        tokens_per_request=settings.upstream_tokens_per_request,
        default_retry_after=settings.upstream_429_pause_seconds * window / 60,
        # A process killed with -9 holds its upstream slots as long as its members' credits: one lease.
        lease_seconds=settings.process_lease_seconds,
    )
    return SharedGate(Redis.from_url(settings.redis_url.get_secret_value()), limits)


def build_relax(
    http: aiohttp.ClientSession,
    db: Database,
    settings: Settings,
    registry: ModelRegistry | None = None,
    configs: tuple[ProviderConfig, ...] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    scheduler_clock: Clock | None = None,
) -> RelaxLane:
    """The relax lane (`bot.relax.build`), retrying as the fast lane does."""
    retry = build_retry_policy(settings)
    return relax_lane(
        http, db, settings, registry, configs, retry_policy=retry, clock=clock, scheduler_clock=scheduler_clock
    )


def build_quota(
    db: Database, settings: Settings, *, clock: Callable[[], float] = time.time, owner: Owner | None = None
) -> QuotaLedger:
    registry = settings.registry()
    default = registry.default
    return QuotaLedger(
        db,
        daily_quota=settings.daily_quota,
        timezone=settings.quota_timezone,
        default_price=registry.price(default, default.fit_size(settings.default_image_size)),
        server_daily_image_cap=settings.server_daily_image_cap,
        global_daily_image_cap=settings.global_daily_image_cap,
        server_daily_cost_cap_usd=settings.server_daily_cost_cap_usd,
        global_daily_cost_cap_usd=settings.global_daily_cost_cap_usd,
        user_global_daily_credits=settings.user_global_daily_credits,
        user_daily_upstream_attempts=settings.user_daily_upstream_attempts,
        max_admin_limit=settings.max_admin_limit,
        max_admin_grant=settings.max_admin_grant,
        relax_daily_quota=settings.relax_daily_quota,
        clock=clock,
        owner=owner,
    )


def build_access(
    db: Database, settings: Settings, registry: ModelRegistry, *, clock: Callable[[], float] = time.time
) -> ModelAccess:
    return ModelAccess(
        db,
        registry,
        default_size=settings.default_image_size,
        default_ratio=settings.default_aspect_ratio,
        clock=clock,
    )


def build_lease(
    db: Database, settings: Settings, *, clock: Callable[[], float] = time.time, suffix: str = ""
) -> ProcessLease:
    """`suffix` names a helper process (the CLI) apart from the bot's instance, so it never reclaims the bot's
    reservations as its own earlier run."""
    instance = settings.instance_id or default_instance_id(settings.shard_ids)
    return ProcessLease(db, instance_id=instance + suffix, lease_seconds=settings.process_lease_seconds, clock=clock)


def build_input_judge(images: ImageWorkers, settings: Settings) -> InputJudge:
    return InputJudge(
        images,
        max_bytes=settings.max_input_image_bytes,
        max_pixels=settings.max_input_pixels,
        max_converted_pixels=settings.max_converted_input_pixels,
        max_side=settings.converted_input_max_side,
    )


def build_moderation(
    db: Database,
    settings: Settings,
    *,
    http: aiohttp.ClientSession | None = None,
    quota: QuotaLedger | None = None,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Moderation:
    """The store, with the AI second opinion and the appeal model when they are set and `http` is given; their
    calls count in `quota`'s spend."""
    ai = appeal_model = None
    if http is not None:
        ai = build_ai_moderator(http, settings, settings.moderation_ai_model, SYSTEM, quota)
        appeal_model = build_ai_moderator(http, settings, settings.moderation_appeal_model, APPEAL_SYSTEM, quota)
    return Moderation(
        db,
        enabled=settings.moderation_enabled,
        cooldown_blocks=settings.moderation_cooldown_blocks,
        cooldown_window_seconds=settings.moderation_cooldown_window_seconds,
        cooldown_seconds=settings.moderation_cooldown_seconds,
        retention_days=settings.moderation_log_retention_days,
        max_terms=settings.moderation_max_server_terms,
        ai=ai,
        appeal_model=appeal_model,
        appeals_per_day=settings.moderation_appeals_per_day,
        clock=clock,
        metrics=metrics,
    )


def build_ai_moderator(
    http: aiohttp.ClientSession, settings: Settings, model: str, system: str, quota: QuotaLedger | None
) -> AIModerator | None:
    """A Gemini text model judging prompts (None when `model` is empty or there is no key)."""
    if not model or settings.gemini_api_key is None:
        return None
    ai = AIModerator(
        http,
        settings.gemini_api_key,
        model,
        base_url=settings.gemini_base_url,
        timeout=settings.moderation_ai_timeout_seconds,
        on_error=settings.moderation_ai_on_error,
        images=settings.moderation_ai_images,
        min_confidence=settings.moderation_ai_min_confidence,
        cache_size=settings.moderation_ai_cache_size,
        input_usd_per_mtok=settings.moderation_ai_input_usd_per_mtok,
        output_usd_per_mtok=settings.moderation_ai_output_usd_per_mtok,
        system=system,
    )
    if quota is not None:
        ledger = quota

        async def charge(call: AICall) -> None:
            # Like a generation's cost: in the server's and the bot's spend (and caps), not in a member's quota.
            await ledger.add_spend(call.guild_id, call.cost_usd, provider=GOOGLE, model=call.model)

        ai.on_cost = charge
    return ai
