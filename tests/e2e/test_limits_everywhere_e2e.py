"""Limits one person cannot walk around (issue 12, items 4 and 7): a moderation cool-down earned in one server
holds in every other server and in DMs; a server full of members waits its turn beside a lone member of
another server; and when the whole bot's line is full, a request is refused at once, saying so, and costs
nothing."""

from __future__ import annotations

import re

from tests.e2e.test_queue_e2e import FOREVER, gemini_busy, waiting
from tests.fakes.discord import FakeDiscord, Interaction

POSITION = re.compile(r"position (\d+) in line|(you're next)")


async def private_answer(ix: Interaction) -> str:
    callback = await ix.wait_for_callback()
    assert ix.ephemeral, callback.data
    return callback.data["content"]


async def test_a_cool_down_from_one_server_holds_in_another_and_in_dms(run_bot, fake_discord, gemini):
    fake = fake_discord
    other = fake.add_guild("Other Server")
    elsewhere = other.channels[0]
    fake.add_member(fake.member.user, guild=other)
    async with run_bot(discord_guild_id=None, moderation_cooldown_blocks=2) as bot:
        await bot.tree.sync()  # global commands, usable in both servers and in DMs
        for _ in range(2):
            await private_answer(await fake.slash("imagine", {"prompt": "a nude woman"}))
        for channel in (elsewhere, fake.dm(fake.member)):
            text = await private_answer(await fake.slash("imagine", {"prompt": "a red fox"}, channel=channel))
            assert "Too many blocked prompts" in text and "began in another server or in direct messages" in text
        here = await private_answer(await fake.slash("imagine", {"prompt": "a red fox"}))
        assert "A moderator can lift this sooner" in here
    assert gemini.requests == []


async def test_a_full_line_refuses_at_once_and_charges_nothing(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob, carol = fake.add_member("bob"), fake.add_member("carol")
    gemini.latency = 0.2
    async with run_bot(queue_max_length=2, **FOREVER) as bot:
        await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        await waiting(await fake.slash("imagine", {"prompt": "a cat"}, user=bob))
        text = await private_answer(await fake.slash("imagine", {"prompt": "a dog"}, user=carol))
        assert "very busy" in text and "2 pictures are already waiting or being made" in text
        assert "try again in a few minutes" in text and "quota was not charged" in text
        status = await bot.services.quota.status(carol.id, fake.guild.id, ())
        assert (status.used, status.reserved) == (0, 0)


async def places(ix: Interaction) -> list[int]:
    return [int(m.group(1) or 1) for e in ix.edits if (m := POSITION.search(e.get("content") or ""))]


async def test_a_lone_member_of_another_server_does_not_wait_behind_a_whole_server(run_bot, fake_discord, gemini):
    fake: FakeDiscord = fake_discord
    crowd = [fake.add_member(f"member{i}") for i in range(12)]
    other = fake.add_guild("Small Server")
    lone = fake.add_member("lone", guild=other)
    gemini.latency = 0.2
    async with run_bot(discord_guild_id=None, **FOREVER) as bot:
        await bot.tree.sync()
        await fake.slash("imagine", {"prompt": "first"})
        await gemini_busy(fake, gemini)
        for member in crowd:
            await waiting(await fake.slash("imagine", {"prompt": "a crowd"}, user=member))
        mine = await fake.slash("imagine", {"prompt": "just me"}, user=lone, channel=other.channels[0])
        await waiting(mine)
        assert await places(mine) == [2]  # one of the crowd's turns, then this server's: not 13th
