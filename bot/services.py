"""The long-lived objects of the core, built once from the settings and shared by every door (Discord, CLI)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bot.config import Settings
from bot.db import Database
from bot.generations import Generations
from bot.moderation_store import Moderation
from bot.pipeline import Pipeline
from bot.providers.gemini import GeminiProvider
from bot.quota import QuotaLedger
from bot.retry import RetryPolicy
from bot.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    provider: GeminiProvider
    quota: QuotaLedger
    moderation: Moderation
    scheduler: Scheduler
    pipeline: Pipeline
    generations: Generations

    @classmethod
    async def start(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time, recover: bool = True
    ) -> Services:
        """`recover`: refund reservations an earlier run left open. Only the process that serves Discord may: a
        CLI process beside a running bot would otherwise refund the bot's requests in flight."""
        db = await Database.open(settings.database_path)
        quota = QuotaLedger.from_settings(db, settings, clock=clock)
        try:
            refunded = await quota.recover() if recover else 0
        except BaseException:
            await db.close()
            raise
        if refunded:
            log.warning("refunded %d reservation(s) left open by an earlier run", refunded)
        # Everything below only builds objects: nothing can fail with the session open.
        http = aiohttp.ClientSession()
        provider = GeminiProvider.from_settings(http, settings)
        moderation = Moderation.from_settings(db, settings, clock=clock)
        moderation.attach_ai(http, settings)  # the optional AI second opinion and its appeals
        scheduler = Scheduler.from_settings(settings)
        pipeline = Pipeline(
            db=db,
            provider=provider,
            moderator=moderation,
            quota=quota,
            scheduler=scheduler,
            retry_policy=RetryPolicy.from_settings(settings),
            prompt_max_chars=settings.prompt_max_chars,
            price_per_image_usd=settings.price_per_image_usd,
            clock=clock,
        )
        generations = Generations(db, keep_input_images=settings.keep_input_images, clock=clock)
        return cls(settings, db, http, provider, quota, moderation, scheduler, pipeline, generations)

    async def stop_accepting(self) -> None:
        """Refuse new requests, let running ones finish up to the grace period, refund the ones still waiting,
        and wait until every request has told its user how it ended."""
        grace = self.settings.shutdown_grace_seconds
        await self.scheduler.shutdown(grace)
        if not await self.pipeline.drain(within=grace + 5):
            log.warning("some requests were still finishing when the bot stopped")

    async def close(self) -> None:
        await self.http.close()
        await self.quota.drain()  # ledger writes still batched go in before the file closes
        await self.db.close()
