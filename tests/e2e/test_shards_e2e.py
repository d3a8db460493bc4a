"""One bot split across processes by shard (SHARD_COUNT, SHARD_IDS) on one PostgreSQL and one Redis: each process
gets its own shards' guilds, only the one with shard 0 publishes the commands, and results, buttons, replies and
quotas work whichever process receives them, because their state is in the shared database. The processes here
are two real bots in one test process, each with its own database pool, Redis client and gateway connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import ImageBot
from bot.config import Settings
from tests.conftest import make_settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_gateway import shard_of
from tests.fakes.discord_state import Guild
from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import png_bytes

GUILD_COMMANDS = "PUT /applications/{application_id}/guilds/{guild_id}/commands"


def guild_on_shard(fake: FakeDiscord, shard: int, count: int) -> Guild:
    """A new guild whose events Discord sends to `shard` (its id's timestamp decides)."""
    while True:
        guild = fake.add_guild(f"Server on shard {shard}")
        if shard_of(guild.id, count) == shard:
            return guild
        fake.advance(0.001)  # the next id's millisecond, and so its shard, changes


@pytest.fixture
def split(gemini: FakeGemini, postgres_url: str, redis_url: str, tmp_path: Path):
    """`async with split(fake, shards=(0,), name="a") as bot:` runs one process of a bot split in two."""

    def settings(fake: FakeDiscord, shards: tuple[int, ...], name: str, **overrides: Any) -> Settings:
        return make_settings(
            fake,
            gemini,
            tmp_path / "unused.sqlite3",
            database_url=postgres_url,
            redis_url=redis_url,
            shard_count=2,
            shard_ids=shards,
            instance_id=name,
            **overrides,
        )

    @contextlib.asynccontextmanager
    async def run(fake: FakeDiscord, *, shards: tuple[int, ...], name: str) -> AsyncIterator[ImageBot]:
        async with fake.running(ImageBot(settings(fake, shards, name))) as bot:
            yield bot  # type: ignore[misc]

    return run


async def test_a_bot_split_in_two_processes_serves_every_guild_and_shares_its_state(split, gemini):
    async with FakeDiscord(shard_count=2) as fake:
        home = fake.guild  # DISCORD_GUILD_ID
        away = guild_on_shard(fake, 1 - shard_of(home.id, 2), 2)
        carol = fake.add_member("carol", guild=away)
        gemini.enqueue(*(GeminiReply.image(png_bytes(40, 40, seed=n)) for n in range(4)))
        by_shard: dict[int, Guild] = {shard_of(home.id, 2): home, shard_of(away.id, 2): away}

        async with split(fake, shards=(0,), name="a") as a, split(fake, shards=(1,), name="b") as b:
            # Each process has the guilds of its own shard, and only shard 0's published the commands.
            on = {n: {g for g in fake.guilds if shard_of(g, 2) == n} for n in (0, 1)}
            assert {g.id for g in a.guilds} == on[0] and {g.id for g in b.guilds} == on[1]
            assert by_shard[0].id in on[0] and by_shard[1].id in on[1]
            assert [r.route for r in fake.requests].count(GUILD_COMMANDS) == 1
            await a.tree.sync()  # what `python -m bot sync --global` does, so `away` has the commands too

            fox = await fake.slash("imagine", {"prompt": "a fox"})
            owl = await fake.slash("imagine", {"prompt": "an owl"}, user=carol, channel=away.channels[0])
            shown = {ix: await ix.wait_for_original(lambda m: m.attachments) for ix in (fox, owl)}
            for bot in (a, b):
                assert await bot.services.pipeline.drain(within=5)
            # Whichever process made them, both results are in the one database.
            rows = await a.services.db.fetchall("SELECT guild_id, status FROM generations ORDER BY guild_id")
            assert sorted(tuple(r) for r in rows) == sorted([(home.id, "delivered"), (away.id, "delivered")])
            owl_message = shown[owl]

        # The process that served `away` is gone; another takes its shard (a new deploy, another instance name).
        async with split(fake, shards=(shard_of(away.id, 2),), name="c") as c:
            assert c.get_guild(away.id) is not None
            button = next(c for c in owl_message.custom_ids if c.startswith("gib:reroll:"))
            reroll = await fake.click(owl_message, button, user=carol)  # a button made by the other process
            await reroll.wait_for_original(lambda m: m.attachments)
            ask = await fake.send_message(away.channels[0], "make it night", author=carol, reply_to=owl_message)
            night = await fake.wait_for_message(
                away.channels[0], lambda m: m.reference_id == ask.id and m.attachments, after=ask
            )
            assert night.attachments
            assert await c.services.pipeline.drain(within=5)
            assert gemini.served[2].prompt == "an owl" and gemini.served[3].prompt.endswith("make it night")
            # Carol's credits: one ledger, whatever process charged them.
            status = await c.services.quota.status(carol.id, away.id, ())
            assert (status.used, status.reserved) == (3, 0)
