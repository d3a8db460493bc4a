"""The fake Discord's rate limits, met by the unmodified discord.py client: headers on every answer, buckets
discord.py waits for, 429s it retries (only with `Via`), the global limit, and Cloudflare's ban.

Windows are shrunk with `time_factor` so nothing here waits long; what is asserted is what reached the fake
(statuses, headers, messages), never how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import FakeDiscord, RateLimits, Window
from tests.fakes.discord_rest import API

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After",
           "X-RateLimit-Bucket")  # fmt: skip
CREATE = "POST /channels/{channel_id}/messages"
FAST = RateLimits(time_factor=0.05)  # the real counts; 5 per 5 s becomes 5 per 0.25 s


@app_commands.command()
async def burst(interaction: discord.Interaction, count: int) -> None:
    """Answer, then send `count` followups as fast as discord.py lets them go."""
    await interaction.response.send_message("answer")
    for i in range(count):
        await interaction.followup.send(f"followup {i}")


class Bot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(), help_command=None)
        self.guild_id = guild_id

    async def setup_hook(self) -> None:
        self.tree.add_command(burst, guild=discord.Object(self.guild_id))
        await self.tree.sync(guild=discord.Object(self.guild_id))


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(rate_limits=FAST) as fake:
        yield fake


async def post_raw(fake: FakeDiscord, channel_id: int, count: int, *, token: str | None = None) -> list[int]:
    """`count` messages at once from a client that ignores rate-limit headers (another process with the same
    token, say); the statuses it got."""
    headers = {"Authorization": f"Bot {token or fake.token}"}
    url = f"{fake.base_url}{API}/channels/{channel_id}/messages"
    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(i: int) -> int:
            async with session.post(url, json={"content": f"raw {i}"}) as answer:
                await answer.read()
                return answer.status

        return list(await asyncio.gather(*(post(i) for i in range(count))))


async def test_every_answer_carries_the_rate_limit_headers_but_interaction_callbacks(fake: FakeDiscord) -> None:
    async with fake.running(Bot(fake.guild.id)) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send("hello")
        ix = await fake.slash("burst", {"count": 1})
        await ix.wait_for_followup()

    answered = [r for r in fake.requests if r.status is not None]
    callbacks = [r for r in answered if r.route.startswith("POST /interactions/")]
    others = [r for r in answered if r not in callbacks]
    assert {r.route for r in others} >= {"GET /users/@me", CREATE, "POST /webhooks/{application_id}/{token}"}
    assert all(name in r.headers for r in others for name in HEADERS), [r.route for r in others]
    assert callbacks and not any(name in r.headers for r in callbacks for name in HEADERS)
    create = next(r for r in others if r.route == CREATE)
    assert create.headers["X-RateLimit-Limit"] == "5" and create.headers["X-RateLimit-Remaining"] == "4"
    assert 0 < float(create.headers["X-RateLimit-Reset-After"]) <= 0.25
    assert not fake.rate_limited


async def test_a_burst_in_one_channel_waits_for_the_bucket_and_never_meets_a_429() -> None:
    limits = RateLimits(time_factor=0.1)  # 5 per 0.5 s: time enough to fill a window on a busy machine
    async with FakeDiscord(rate_limits=limits) as fake, fake.running(Bot(fake.guild.id)) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        await asyncio.gather(*(channel.send(f"message {i}") for i in range(12)))

        assert sorted(m.content for m in fake.messages()) == sorted(f"message {i}" for i in range(12))
        creates = [r for r in fake.requests if r.route == CREATE]
        assert [r.status for r in creates] == [200] * 12  # more than 5 per window: discord.py waited
        assert "0" in [r.headers["X-RateLimit-Remaining"] for r in creates]
        assert not fake.rate_limited and fake.invalid_requests == 0


async def test_a_client_that_ignores_the_headers_meets_429s_shaped_as_discords() -> None:
    async with FakeDiscord(rate_limits=RateLimits()) as fake:  # real windows: 5 per 5 s, nobody waits here
        statuses = await post_raw(fake, fake.channel.id, 7)
        assert sorted(statuses) == [200] * 5 + [429] * 2
        refused = fake.rate_limited
        assert len(refused) == 2 and fake.invalid_requests == 2
        for record in refused:
            assert record.headers["Via"] and record.headers["X-RateLimit-Scope"] == "user"
            assert record.headers["X-RateLimit-Remaining"] == "0" and 1 <= int(record.headers["Retry-After"]) <= 5
            assert record.response["global"] is False and 0 < record.response["retry_after"] <= 5
            assert record.response["message"] == "You are being rate limited."
        assert len(fake.messages()) == 5


async def test_followups_share_a_bucket_per_token_that_discord_py_waits_for(fake: FakeDiscord) -> None:
    async with fake.running(Bot(fake.guild.id)):
        ix = await fake.slash("burst", {"count": 8})
        await ix.wait_until(lambda: len(ix.followups) == 8, what="8 followups")
    followups = [r for r in fake.requests if r.route == "POST /webhooks/{application_id}/{token}"]
    assert [r.status for r in followups] == [200] * 8
    assert [r.headers["X-RateLimit-Limit"] for r in followups] == ["5"] * 8
    assert not fake.rate_limited


async def test_a_429_discord_py_did_not_expect_is_retried_because_it_came_through_via() -> None:
    async with FakeDiscord(rate_limits=RateLimits(time_factor=0.3)) as fake, fake.running(Bot(fake.guild.id)) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        # Another client spends the channel's bucket (5 per 1.5 s here); discord.py has no way to know.
        assert await post_raw(fake, fake.channel.id, 5) == [200] * 5
        await channel.send("mine")

        mine = [r for r in fake.requests if r.route == CREATE and r.json.get("content") == "mine"]
        assert [r.status for r in mine] == [429, 200]  # discord.py slept retry_after and sent again
        assert mine[0].headers["Via"] and mine[0].headers["X-RateLimit-Scope"] == "user"
        assert fake.messages()[-1].content == "mine"
        assert fake.rate_limited == [mine[0]] and fake.invalid_requests == 1


async def test_without_via_a_429_is_cloudflares_ban_and_discord_py_gives_up() -> None:
    limits = replace(FAST, invalid_requests=Window(3, 600.0), ban_seconds=600.0)
    async with FakeDiscord(rate_limits=limits) as fake, fake.running(Bot(fake.guild.id)) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        assert await post_raw(fake, fake.channel.id, 3, token="wrong") == [401] * 3
        assert fake.invalid_requests == 3

        with pytest.raises(discord.HTTPException) as caught:
            await channel.send("banned")
        assert caught.value.status == 429 and "1015" in caught.value.text
        banned = fake.rate_limited[-1]
        assert "Via" not in banned.headers and banned.response == "error code: 1015"
        assert "banned" not in [m.content for m in fake.messages()]


async def test_discord_py_retries_global_429s_until_every_message_is_through() -> None:
    roomy = Window(100, 0.5)  # route buckets that never bind: only the global limit is under test
    limits = RateLimits(message_create=roomy, other_routes=roomy, global_limit=Window(8, 0.5))
    async with FakeDiscord(rate_limits=limits) as fake:
        rooms = [fake.add_channel(f"room-{i}") for i in range(4)]
        async with fake.running(Bot(fake.guild.id)) as bot:
            channels = [bot.get_channel(room.id) for room in rooms]
            assert all(isinstance(channel, discord.TextChannel) for channel in channels)
            # 16 creates at once in 4 buckets: discord.py knows nothing of the global limit until a 429.
            await asyncio.gather(*(c.send(f"{c.name} {i}") for c in channels for i in range(4)))  # type: ignore[union-attr]

            assert sorted(len(fake.messages(room)) for room in rooms) == [4] * 4
            refused = fake.rate_limited
            assert refused, "16 requests at once must cross a global limit of 8 per window"
            for record in refused:
                assert record.response["global"] is True and record.headers["X-RateLimit-Global"] == "true"
                assert record.headers["X-RateLimit-Scope"] == "global" and record.headers["Via"]


async def test_the_global_limit_spares_interaction_callbacks_and_followups(fake: FakeDiscord) -> None:
    async with fake.running(Bot(fake.guild.id)):
        fake.limiter.configure(replace(FAST, global_limit=Window(2, 60.0)))  # from now on: 2 a minute
        assert await post_raw(fake, fake.channel.id, 3) == [200, 200, 429]
        assert fake.rate_limited[0].response["global"] is True

        ix = await fake.slash("burst", {"count": 2})
        await ix.wait_until(lambda: len(ix.followups) == 2, what="2 followups")
        assert ix.callback is not None and [m.content for m in ix.followups] == ["followup 0", "followup 1"]
        assert len(fake.rate_limited) == 1


async def test_rate_limits_are_off_unless_a_test_turns_them_on(fake_discord: FakeDiscord) -> None:
    assert await post_raw(fake_discord, fake_discord.channel.id, 8) == [200] * 8
    assert not any("X-RateLimit-Limit" in r.headers for r in fake_discord.requests)
