"""The composition root: every long-lived object of the core, built once from the settings and shared by every
door (Discord, CLI). `Services.start` wires together what the builders in `bot.build` make (each `build_*` takes
what one service needs, so a command builds only what it uses: `python -m bot sync` builds none of them)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any

import aiohttp

# Re-exported: callers (the CLI, tests, bench) import the builders from here, the composition root.
from bot.build import (  # noqa: F401
    build_access,
    build_ai_moderator,
    build_input_judge,
    build_lane,
    build_lease,
    build_metrics,
    build_moderation,
    build_provider,
    build_quota,
    build_registry,
    build_relax,
    build_retry_policy,
    build_scheduler,
    build_shared_gate,
)
from bot.config import Settings
from bot.editing.generations import Generations
from bot.editing.images import ImageWorkers
from bot.editing.inputs import InputJudge, InputRefusals
from bot.models import RequestOwner
from bot.moderation.store import Moderation
from bot.ops.metrics import Metrics
from bot.ops.privacy import ForgetReport, RetentionReport, apply_retention, export_member, forget_member
from bot.ops.server_settings import ServerSettings
from bot.pipeline import Pipeline
from bot.providers.failover import FailoverProvider
from bot.providers.registry import ModelRegistry
from bot.quota.access import ModelAccess
from bot.quota.ledger import QuotaLedger
from bot.relax import RelaxJob, RelaxJobs, RelaxLane
from bot.scheduler.lanes import GateLane, LaneReport
from bot.scheduler.scheduler import Scheduler
from bot.storage.db import Database
from bot.storage.leases import ProcessLease

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    registry: ModelRegistry
    provider: FailoverProvider
    quota: QuotaLedger
    access: ModelAccess
    moderation: Moderation
    scheduler: Scheduler
    pipeline: Pipeline
    generations: Generations
    metrics: Metrics
    server_settings: ServerSettings
    images: ImageWorkers  # the bounded pool for image work (inputs, and results re-encoded to fit a channel)
    inputs: InputJudge
    lease: ProcessLease
    relax: RelaxLane
    # Relax jobs an earlier run left waiting: the Discord side resumes them (`take_resumable`) once it can post.
    resumable: list[RelaxJob]

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        recover: bool = True,
        metrics: Metrics | None = None,
    ) -> Services:
        """`recover`: this is the bot (not a CLI helper): it reclaims its instance's earlier run and sweeps what
        dead processes left open, at start and every third of a lease. Without it the process still holds a
        lease of its own (under a name of its own), so the bot's sweeps leave its request alone. `metrics`: the
        process's registry when something serves it (the bot's health server), else one that records nothing."""
        db = await Database.open(settings.database, pool_size=settings.database_pool_size)
        lease = build_lease(db, settings, clock=clock, suffix="" if recover else f"-cli-{os.getpid()}")
        quota = build_quota(db, settings, clock=clock, owner=lease.owner)
        try:
            await lease.register()
            # Relax jobs keep their reservations across a restart: the run that serves Discord resumes those no
            # live process carries on, and holds their reservations under its own lease from now on.
            resumable = await RelaxJobs(db, clock=clock).alive() if recover else []
            adopted = await quota.adopt({job.entry_id for job in resumable})
            resumable = [job for job in resumable if job.entry_id in adopted]
            refunded = await quota.recover() if recover else 0
        except BaseException:
            await db.close()
            raise
        if refunded:
            log.warning("refunded %d reservation(s) left open by an earlier run or a dead process", refunded)
        if resumable:
            log.info("%d relax job(s) of an earlier run will be resumed", len(resumable))
        lease.start(quota.recover if recover else None)
        # Everything below only builds objects: nothing can fail with the session open.
        http = aiohttp.ClientSession()
        metrics = metrics or Metrics.disabled()
        registry = build_registry(settings)
        provider = build_provider(http, settings, registry, metrics=metrics)
        relax = build_relax(http, db, settings, registry, clock=clock)
        access = build_access(db, settings, registry, clock=clock)
        moderation = build_moderation(db, settings, http=http, quota=quota, clock=clock, metrics=metrics)
        scheduler = build_scheduler(settings, metrics=metrics)
        generations = Generations(
            db,
            keep_input_images=settings.keep_input_images,
            max_turn_bytes=settings.edit_history_max_bytes,
            clock=clock,
        )
        images = ImageWorkers(settings.image_workers)
        pipeline = Pipeline(
            generations=generations,
            provider=provider,
            moderator=moderation,
            quota=quota,
            scheduler=scheduler,
            planner=access,
            retry_policy=build_retry_policy(settings),
            prompt_max_chars=settings.prompt_max_chars,
            history_depth=settings.conversation_max_depth,
            history_turns=settings.edit_history_turns,
            history_max_bytes=settings.edit_history_max_bytes,
            relax=relax,
            input_refusals=InputRefusals(
                limit=settings.input_refusal_limit, window=settings.input_refusal_window_seconds, clock=clock
            ),
            max_loading=settings.image_workers,
            sole_provider=provider.only,
            clock=clock,
            metrics=metrics,
        )
        server_settings = ServerSettings(db, allow_dms=settings.allow_dms, clock=clock)
        judge = build_input_judge(images, settings)
        return cls(
            settings,
            db,
            http,
            registry,
            provider,
            quota,
            access,
            moderation,
            scheduler,
            pipeline,
            generations,
            metrics,
            server_settings,
            images,
            judge,
            lease,
            relax,
            resumable,
        )

    def provider_gates(self) -> list[LaneReport]:
        """Each provider's own gate, in the order they are tried (none for a single provider: the scheduler's
        gate is its gate)."""
        return [m.lane.report() for m in self.provider.members if isinstance(m.lane, GateLane)]

    def take_resumable(self) -> list[RelaxJob]:
        """The relax jobs to resume, once (the caller starts each with `pipeline.resume`)."""
        jobs, self.resumable = self.resumable, []
        return jobs

    def owner(self, key: str) -> RequestOwner | None:
        """Who made the request `key` and where, while it can still be cancelled: waiting in the fast line (or
        between its attempts), or a relax job at any stage."""
        ticket = self.scheduler.find(key)
        if ticket is not None:
            return RequestOwner(ticket.user_id, ticket.guild_id) if ticket.cancellable else None
        return self.relax.owner(key)

    def cancel(self, key: str) -> bool:
        """Cancel the request `key`: waiting in the fast line, or a relax job at any stage. False when there is
        no such request that can still be cancelled."""
        return self.scheduler.cancel(key) or self.relax.cancel(key)

    # --- privacy: the member's own data, and the daily retention pass ------------------------------------------

    async def export_member(self, user_id: int) -> dict[str, Any]:
        await self.quota.drain()  # ledger writes still batched belong in the export
        return await export_member(self.db, user_id)

    async def forget_member(self, user_id: int) -> ForgetReport:
        await self.quota.drain()
        now = self.quota.clock()
        report = await forget_member(
            self.db,
            user_id,
            today=self.quota.days.day_key(now),
            now=now,
            cooldown_window_seconds=self.settings.moderation_cooldown_window_seconds,
        )
        log.info("forgot user %s: %s", user_id, report.as_dict())
        return report

    async def retention(self) -> RetentionReport:
        """Redact prompts older than PROMPT_RETENTION_DAYS, finish forgetting members whose day has ended, purge
        the moderation log past its retention. Run hourly by the bot (cheap when there is nothing to do)."""
        now = self.quota.clock()
        report = await apply_retention(
            self.db,
            prompt_retention_days=self.settings.prompt_retention_days,
            today=self.quota.days.day_key(now),
            now=now,
            cooldown_window_seconds=self.settings.moderation_cooldown_window_seconds,
        )
        await self.moderation.purge_expired()
        if any(astuple(report)):
            log.info("retention: %s", report)
        return report

    async def stop_accepting(self) -> None:
        """Refuse new requests, suspend relax jobs (the next start resumes them), let running ones finish up to the
        grace period, refund the ones still waiting, and wait until every request has told its user how it
        ended."""
        grace = self.settings.shutdown_grace_seconds
        self.relax.suspend()
        await self.scheduler.shutdown(grace)
        if not await self.pipeline.drain(within=grace + 5):
            log.warning("some requests were still finishing when the bot stopped")

    async def close(self) -> None:
        await self.scheduler.aclose()
        self.images.close()
        await self.http.close()
        await self.quota.drain()  # ledger writes still batched go in before the file closes
        await self.lease.close()
        await self.db.close()
