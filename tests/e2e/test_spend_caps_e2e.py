"""Spending that cannot be dodged (issue 12, items 3 and 4), end to end: calls that may be billed count in the
spend even when the member is refunded, each member has a daily number of upstream calls, a cap across every
server and DMs, and server admins cannot set or grant past the operator's caps."""

from __future__ import annotations

import pytest

from tests.e2e.edit_helpers import ephemeral_text, imagine
from tests.fakes.gemini import GeminiReply

ESTIMATE = 0.0336  # the default picture's price (Nano Banana 2.1 at 1K)


async def test_answers_without_a_picture_are_refunded_but_counted_and_use_up_the_daily_calls(
    run_bot, fake_discord, gemini
):
    fake = fake_discord
    gemini.enqueue(GeminiReply.text_only("Which fox do you mean?"), GeminiReply.text_only("A fox, or a wolf?"))
    async with run_bot(user_daily_upstream_attempts=2) as bot:
        for _ in range(2):
            ix = await fake.slash("imagine", {"prompt": "a fox"})
            told = await ix.wait_for_original(lambda m: "answered in words" in m.content)
            assert "quota was not charged" in told.content
        assert await bot.services.pipeline.drain(within=5)

        status = await bot.services.quota.status(fake.member.id, fake.guild.id)
        assert (status.used, status.refunded, status.attempts) == (0, 2, 2)  # the member paid nothing ...
        spend = await bot.services.quota.spend(fake.guild.id)
        # ... but the server's and the bot's spend hold what Google billed for the two answers (their tokens).
        billed = [r.response["usageMetadata"] for r in gemini.served]
        assert spend.images == 2 and 0 < spend.cost_usd < ESTIMATE and all(u["candidatesTokenCount"] for u in billed)

        refused = await fake.slash("imagine", {"prompt": "a fox, please draw it"})
        text = await ephemeral_text(refused)
        assert "asked the image model 2 times today" in text and "answers without a picture count too" in text
        assert len(gemini.requests) == 2  # nothing more reached Google


async def test_a_call_that_timed_out_after_it_was_sent_counts_at_the_estimate(run_bot, fake_discord, gemini):
    gemini.enqueue(GeminiReply.stall(), GeminiReply.stall())
    settings = {"gemini_attempt_timeout_seconds": 0.3, "gemini_max_attempts": 2}
    async with run_bot(**settings) as bot:
        ix = await fake_discord.slash("imagine", {"prompt": "a fox"})
        told = await ix.wait_for_followup(lambda m: "took too long" in m.content)
        assert "quota was not charged" in told.content
        assert await bot.services.pipeline.drain(within=5)
        await bot.services.quota.drain()
        status = await bot.services.quota.status(fake_discord.member.id, fake_discord.guild.id)
        assert (status.used, status.refunded, status.attempts) == (0, 1, 2)
        spend = await bot.services.quota.spend(None)
        assert spend.images == 1 and spend.cost_usd == pytest.approx(2 * ESTIMATE)  # two calls, maybe billed


async def test_a_member_limited_in_a_server_is_still_capped_everywhere_dms_included(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(discord_guild_id=None, user_global_daily_credits=3) as bot:
        await bot.tree.sync()  # global commands, so DMs have /imagine too
        await imagine(fake, bot, "a fox")
        await imagine(fake, bot, "a cat")
        ix = await fake.slash("quota-admin set", {"user": fake.member, "limit": 0}, user=fake.admin)
        await ix.wait_for_callback()
        refused = await fake.slash("imagine", {"prompt": "an owl"})
        assert "daily limit here is 0" in await ephemeral_text(refused)

        dm = fake.dm(fake.member)
        ix = await fake.slash("imagine", {"prompt": "an owl"}, channel=dm)
        await ix.wait_for_original(lambda m: m.attachments)  # DMs have their own limit ...
        ix = await fake.slash("imagine", {"prompt": "a bat"}, channel=dm)
        text = await ephemeral_text(ix)  # ... but the bot-wide cap per member counts every server and DMs
        assert "you have 0 of the 3 credits the bot allows one member per day across all servers and DMs" in text
        assert len(gemini.requests) == 3
        status = await bot.services.quota.status(fake.member.id, None)
        assert (status.everywhere_used, status.everywhere_cap, status.spendable) == (3, 3, 0)


async def test_admins_cannot_set_or_grant_past_the_operators_caps(run_bot, fake_discord):
    fake = fake_discord
    member = fake.member

    async def admin(command: str, **options) -> str:
        ix = await fake.slash(f"quota-admin {command}", options, user=fake.admin)
        return (await ix.wait_for_callback()).data["content"]

    async with run_bot(max_admin_limit=-1) as bot:  # before the operator capped anything
        assert "unlimited" in await admin("set", user=member, limit=-1)

    async with run_bot(max_admin_limit=20, max_admin_grant=5) as bot:
        # A limit stored before the cap is read under it.
        status = await bot.services.quota.status(member.id, fake.guild.id)
        assert (status.limit, status.source) == (20, "user override")
        for value in (21, -1):
            text = await admin("set", user=member, limit=value)
            assert "between 0 and 20 credits" in text and "operator caps what servers may set" in text
        assert "now 20 credits a day" in await admin("default", limit=20)
        assert "Granted" in await admin("grant", user=member, amount=4)
        assert "at most 1 more" in await admin("grant", user=member, amount=2)
        actions = [entry.action for entry in await bot.services.quota.audit_log(fake.guild.id)]
        assert actions == ["grant", "set_server_default", "set_user_limit"]  # refusals changed nothing
