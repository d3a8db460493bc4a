"""A scripted day through the real core (pipeline, quota ledger, moderation, scheduler) into a real migrated SQLite
database: what the usage report and the privacy functions are tested against. Only the image provider is
scripted: each prompt says how its request ends."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from bot.config import Settings
from bot.editing.generations import Generations
from bot.errors import BotError, GenerationFailed, ImageBlocked, UpstreamError, UpstreamTimeout
from bot.models import GeneratedImage, ImageOptions, ImageRequest, InputImage, RequestKind, Usage
from bot.moderation.store import Moderation
from bot.pipeline import Delivery, Pipeline
from bot.providers.retry import RetryPolicy
from bot.quota.ledger import QuotaLedger
from bot.services import build_access, build_moderation, build_quota, build_scheduler
from bot.storage.db import Database

TZ = "Europe/Berlin"
FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"
PRICES = {FLASH: 0.039, PRO: 0.134}  # the price table's 1K images, each delivered one's real cost here
CREDITS = {FLASH: 1, PRO: 4}  # one credit is the default (Flash) model's image; Pro's 1K costs 3.4, rounded up
PROVIDERS = {FLASH: "gemini", PRO: "gateway"}  # which configured provider answers for each model
SERVER, OTHER_SERVER = 1001, 2002
ALICE, BOB, CAROL = 111, 222, 333

# Prompts that end badly at the provider (those that start so), and how. A timeout may have been billed (it counts
# in spend at the price table's estimate); the others were answered without a picture and cost nothing.
FAILURES: dict[str, Callable[[], BotError]] = {
    "a slow castle": UpstreamTimeout,
    "a broken castle": lambda: GenerationFailed("OTHER", "no image"),
    "a refused castle": lambda: ImageBlocked("IMAGE_SAFETY", "refused by Google"),
}


def local(day: str, hour: int, minute: int = 0) -> float:
    """Unix seconds of a wall-clock time in the quota time zone."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=ZoneInfo(TZ)).timestamp()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedProvider:
    """Answers as the model the request was planned for, from the provider that serves it, at its price."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.image = png()

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: object = None,
    ) -> GeneratedImage:
        model = (options.model if options else None) or self.model
        for start, failure in FAILURES.items():
            if prompt.startswith(start):
                error = failure()
                if isinstance(error, UpstreamError):
                    error.provider = PROVIDERS[model]  # who answered (or may bill), as a provider says
                raise error
        return GeneratedImage(
            self.image,
            "image/png",
            model,
            usage=Usage(12, 1290, 1302),
            provider=PROVIDERS[model],
            cost_usd=PRICES[model],
        )


@dataclass
class Core:
    db: Database
    clock: Clock
    ledger: QuotaLedger
    moderation: Moderation
    pipeline: Pipeline
    message_ids: itertools.count = field(default_factory=lambda: itertools.count(900_001))
    delivered: list[int] = field(default_factory=list)  # generation ids

    async def ask(
        self,
        user: int,
        guild: int | None,
        prompt: str,
        model: str = FLASH,
        *,
        at: float,
        kind: RequestKind = RequestKind.IMAGINE,
        parent_id: int | None = None,
        images: tuple[InputImage, ...] = (),
    ) -> Delivery | BotError:
        """One request through the real pipeline; returns the delivery, or the error the user would have seen."""
        self.clock.now = at
        request = ImageRequest(
            user_id=user,
            channel_id=5000 + user,
            prompt=prompt,
            guild_id=guild,
            kind=kind,
            parent_id=parent_id,
            images=images,
            options=ImageOptions(model=model),
        )

        async def deliver(delivery: Delivery) -> int:
            return next(self.message_ids)

        try:
            delivery = await self.pipeline.run(request, deliver)
        except BotError as exc:
            return exc
        self.delivered.append(delivery.generation_id)
        return delivery


async def open_core(db: Database, clock: Clock, *, daily_quota: int = 10) -> Core:
    settings = Settings(
        _env_file=None,
        gemini_model=FLASH,
        gemini_models=f"{FLASH},{PRO}",
        upstream_rpm=10_000,
        upstream_concurrency=8,
        circuit_failure_threshold=1000,
        daily_quota=daily_quota,
        quota_timezone=TZ,
        global_daily_image_cap=-1,
        global_daily_cost_cap_usd=-1,
    )
    ledger = build_quota(db, settings, clock=clock)
    moderation = build_moderation(db, settings, clock=clock)
    pipeline = Pipeline(
        generations=Generations(db, clock=clock),
        provider=ScriptedProvider(FLASH),
        moderator=moderation,
        quota=ledger,
        scheduler=build_scheduler(settings),
        planner=build_access(db, settings, settings.registry(), clock=clock),
        retry_policy=RetryPolicy(max_attempts=1),
        prompt_max_chars=settings.prompt_max_chars,
        history_depth=settings.conversation_max_depth,
        clock=clock,
    )
    return Core(db, clock, ledger, moderation, pipeline)


YESTERDAY, TODAY = "2026-03-09", "2026-03-10"


async def scripted_day(core: Core) -> None:
    """Yesterday: one image. Today, on SERVER: Alice gets three Flash images, Bob one Pro image, one timeout, one
    broken answer, one refused by Google and one blocked by our filter; on OTHER_SERVER Carol gets two; in a DM
    Alice gets one Pro image. Every refusal is refunded by the pipeline itself."""
    await core.ask(ALICE, SERVER, "a fox at dawn", at=local(YESTERDAY, 15))
    for minute in range(3):
        await core.ask(ALICE, SERVER, f"a fox, take {minute}", at=local(TODAY, 9, minute))
    await core.ask(BOB, SERVER, "a lighthouse in a storm", PRO, at=local(TODAY, 10))
    for minute, prompt in enumerate(FAILURES):
        await core.ask(BOB, SERVER, prompt, at=local(TODAY, 11, minute))
    await core.ask(BOB, SERVER, "a gory photo of a decapitated man", at=local(TODAY, 12))
    await core.ask(CAROL, OTHER_SERVER, "a cat", at=local(TODAY, 13))
    await core.ask(CAROL, OTHER_SERVER, "a cat again", at=local(TODAY, 13, 5))
    await core.ask(ALICE, None, "a private dragon", PRO, at=local(TODAY, 14))
    await core.ledger.drain()


async def dump(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, on either engine."""
    if db.dialect == "sqlite":
        listed = await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        listed = await db.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name != 'schema_migrations'"
        )
    tables = sorted(row[0] for row in listed)
    return {t: [{k: row[k] for k in row.keys()} for row in await db.fetchall(f"SELECT * FROM {t}")] for t in tables}
