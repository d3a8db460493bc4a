"""Waiting for the image model, end to end: live place in line under a strict upstream rate window, Cancel,
results after the 15-minute token, the circuit breaker, and stopping the bot with requests still in line.

The shared fake Gemini is switched to a strict sliding window (it answers 429 above it) where a test needs one;
the bot's window is the same length, with a margin for the hop between the bot's start and Gemini's count."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from typing import Any

import pytest

from bot.__main__ import serve
from bot.services import build_quota
from bot.storage.db import Database
from tests.fakes.discord import FakeDiscord, Interaction, Member
from tests.fakes.discord_state import MANAGE_MESSAGES
from tests.fakes.gemini import FakeGemini, GeminiReply

CHANNEL_MESSAGE, DEFERRED_UPDATE = 4, 6
# A window of WINDOW seconds, with 0.05 s of margin (the margin setting is per 60 s).
WINDOW = 0.5
SCALED = {"upstream_window_seconds": WINDOW, "upstream_window_margin_seconds": 0.05 * 60 / WINDOW}
# Long enough that whoever is in line stays there for the whole test.
FOREVER = {"upstream_rpm": 1, "upstream_window_seconds": 60.0}
POSITION = re.compile(r"position (\d+) in line|(you're next)")
EDIT_ORIGINAL = "PATCH /webhooks/{application_id}/{token}/messages/{message_id}"
ETA = re.compile(r"should start <t:\d+:R>|starting any moment")


def positions(ix: Interaction) -> list[int]:
    """The places in line the user was shown, in order."""
    found = []
    for edit in ix.edits:
        match = POSITION.search(edit.get("content") or "")
        if match:
            found.append(int(match.group(1) or 1))
    return found


async def gemini_busy(fake: FakeDiscord, gemini: FakeGemini) -> None:
    await fake.wait_for(lambda: gemini.in_flight, what="a request generating at Gemini")


def cancel_id(ix: Interaction) -> str:
    original = ix.original
    assert original is not None
    (custom_id,) = [c for c in original.custom_ids if c.startswith("gib:cancel:")]
    return custom_id


async def waiting(ix: Interaction) -> None:
    """Until the user is shown a place in line with a Cancel button."""
    await ix.wait_for_original(lambda m: POSITION.search(m.content) and m.custom_ids)


async def quota(bot: Any, fake: FakeDiscord, member: Member) -> tuple[int, int]:
    status = await bot.services.quota.status(member.id, fake.guild.id, ())
    return status.used, status.reserved


async def test_more_users_than_the_limit_never_meet_a_429_and_watch_their_place_go_down(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.rpm, gemini.window = 2, WINDOW  # Gemini's own strict window: a 429 for any start above it
    users = [fake.member] + [fake.add_member(f"user{i}") for i in range(5)]
    async with run_bot(upstream_rpm=2, upstream_concurrency=4, **SCALED) as bot:
        ixs = [await fake.slash("imagine", {"prompt": f"fox {i}"}, user=user) for i, user in enumerate(users)]
        results = [await ix.wait_for_original(lambda m: m.attachments) for ix in ixs]
        assert await bot.services.pipeline.drain(within=5)

        assert gemini.rate_limit_hits == 0 and len(gemini.served) == len(users)
        starts = sorted(r.at for r in gemini.requests)
        assert all(later - earlier >= WINDOW for earlier, later in zip(starts, starts[2:], strict=False))
        # Everyone got their own picture; the ones who waited saw their place go down, then "generating".
        assert sorted(r.embed["description"] for r in results) == sorted(f"**fox {i}**" for i in range(6))
        shown = [positions(ix) for ix in ixs]
        assert all(seen == sorted(seen, reverse=True) for seen in shown)
        assert sum(1 for seen in shown if len(set(seen)) >= 2) >= 2  # places that went down, seen live
        assert max(max(seen, default=0) for seen in shown) >= 3
        for ix in ixs:
            contents = [edit.get("content") or "" for edit in ix.edits]
            assert "Generating" in contents[-2] and ix.edits[-1].get("attachments")
            assert not ix.original.custom_ids[0].startswith("gib:cancel:")  # the result's own buttons only
        # Each place in line came with an estimated start, and a Cancel button.
        in_line = [edit for ix in ixs for edit in ix.edits if POSITION.search(edit.get("content") or "")]
        assert all(ETA.search(edit["content"]) and edit["components"] for edit in in_line)
        assert any("should start <t:" in edit["content"] for edit in in_line)
        for user in users:
            assert await quota(bot, fake, user) == (1, 0)


async def test_cancel_is_for_the_requester_or_a_moderator_and_refunds(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob, carol = fake.add_member("bob"), fake.add_member("carol")
    mod = fake.add_member("mod", roles=[fake.add_role("mods", permissions=MANAGE_MESSAGES)])
    gemini.latency = 0.2
    async with run_bot(**FOREVER) as bot:
        first = await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        mine = await fake.slash("imagine", {"prompt": "a cat"}, user=bob)
        theirs = await fake.slash("imagine", {"prompt": "a dog"}, user=carol)
        await waiting(mine)
        await waiting(theirs)

        refused = await fake.click(mine.original, cancel_id(mine), user=carol)
        await refused.wait_for_callback()
        assert refused.ephemeral and "Only the person who asked" in refused.callback.data["content"]
        assert cancel_id(mine)  # still waiting, still cancellable

        pressed = await fake.click(mine.original, cancel_id(mine), user=bob)
        moderated = await fake.click(theirs.original, cancel_id(theirs), user=mod)
        for ix, press in ((mine, pressed), (theirs, moderated)):
            told = await ix.wait_for_original(lambda m: m.content.startswith("Cancelled"))
            assert "quota was not charged" in told.content and told.custom_ids == []  # the button is gone
            assert press.response_type == DEFERRED_UPDATE and not press.followups

        await first.wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        assert [call.prompt for call in gemini.requests] == ["a fox"]  # the cancelled never reached Google
        assert await quota(bot, fake, bob) == (0, 0) and await quota(bot, fake, carol) == (0, 0)
        assert await quota(bot, fake, fake.member) == (1, 0)
        rows = await bot.services.db.fetchall("SELECT prompt, status, error_kind FROM generations ORDER BY id")
        assert [tuple(r) for r in rows] == [
            ("a fox", "delivered", None),
            ("a cat", "failed", "Cancelled"),
            ("a dog", "failed", "Cancelled"),
        ]


async def test_stopping_finishes_the_running_request_and_tells_and_refunds_those_in_line(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob, carol = fake.add_member("bob"), fake.add_member("carol")
    gemini.latency = 0.3  # still generating when the bot is told to stop; well within the 1 s of grace
    async with run_bot(**FOREVER) as bot:
        running = await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        in_line = [await fake.slash("imagine", {"prompt": "a cat"}, user=who) for who in (bob, carol)]
        for ix in in_line:
            await waiting(ix)
        settings = bot.settings
    # Leaving the block closes the bot as SIGTERM does (bot.close()); only the fakes are left to ask.

    assert running.original.attachments and gemini.served[0].prompt == "a fox" and len(gemini.requests) == 1
    for ix in in_line:
        told = ix.original
        assert told.content.startswith("The bot is restarting") and "quota was not charged" in told.content
        assert told.custom_ids == [] and not told.ephemeral

    # The database was closed cleanly (the write-ahead log folded in) and holds no open reservation.
    assert not settings.database_path.with_name(settings.database_path.name + "-wal").exists()
    db = await Database.open(settings.database_path)
    try:
        assert await build_quota(db, settings).recover() == 0
        rows = await db.fetchall("SELECT user_id, status, error_kind FROM generations ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (fake.member.id, "delivered", None),
            (bob.id, "failed", "ShuttingDown"),
            (carol.id, "failed", "ShuttingDown"),
        ]
        ledger = build_quota(db, settings)
        for member, used in ((fake.member, 1), (bob, 0), (carol, 0)):
            status = await ledger.status(member.id, fake.guild.id, ())
            assert (status.used, status.reserved) == (used, 0)
    finally:
        await db.close()


async def test_stopping_waits_until_those_in_line_were_told_even_when_discord_is_slow(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    async with run_bot(**FOREVER):
        first = await fake.slash("imagine", {"prompt": "a fox"})
        await first.wait_for_original(lambda m: m.attachments)
        ix = await fake.slash("imagine", {"prompt": "a cat"}, user=bob)
        await waiting(ix)
        # Nothing is running, so only the telling keeps the bot from closing its connections; Discord asks it to
        # slow down, and discord.py retries the edit a moment later.
        fake.inject_error(EDIT_ORIGINAL, 429, retry_after=0.1)
    assert ix.original.content.startswith("The bot is restarting"), ix.original.content
    assert [r.status for r in fake.requests if r.route == EDIT_ORIGINAL][-2:] == [429, 200]


LATE_ENDINGS = [
    pytest.param(GeminiReply.image(), "your image is ready", True, id="image"),
    pytest.param(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"), "Google's safety filter refused", False, id="fail"),
]


@pytest.mark.parametrize("reply,words,delivered", LATE_ENDINGS)
async def test_an_ending_after_the_15_minute_token_is_a_reply_that_mentions_the_user(
    run_bot, fake_discord, gemini, reply, words, delivered
):
    fake = fake_discord
    gemini.enqueue(reply)
    gemini.latency = 0.2
    async with run_bot() as bot:
        ix = await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        await ix.wait_for_original(lambda m: "Generating" in m.content)
        fake.advance(15 * 60 + 1)  # the interaction's token is dead when the answer comes

        late = await fake.wait_for_message(predicate=lambda m: m.reference_id == ix.original.id)
        assert words in late.content and late.mentions_user(fake.member.user)
        assert bool(late.attachments) is delivered
        assert "Generating" in ix.original.content  # the token could no longer edit it
        assert await bot.services.pipeline.drain(within=5)
        assert await quota(bot, fake, fake.member) == (int(delivered), 0)
        (row,) = await bot.services.db.fetchall("SELECT status, message_id FROM generations")
        assert row["status"] == ("delivered" if delivered else "failed")
        if delivered:
            assert row["message_id"] == late.id


async def test_after_repeated_failures_users_are_told_at_once_instead_of_waiting(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob, carol, dave = (fake.add_member(name) for name in ("bob", "carol", "dave"))
    gemini.enqueue(GeminiReply.overloaded(), GeminiReply.overloaded())
    gemini.latency = 0.2
    settings = {"circuit_failure_threshold": 2, "gemini_max_attempts": 1, "upstream_concurrency": 1}
    async with run_bot(**settings) as bot:
        first = await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        second = await fake.slash("imagine", {"prompt": "a cat"}, user=bob)
        third = await fake.slash("imagine", {"prompt": "a dog"}, user=carol)
        await waiting(third)
        for ix in (first, second):
            told = await ix.wait_for_followup(lambda m: "overloaded" in m.content)
            assert told.ephemeral
        # The one in line behind them is told at once, without its own attempt.
        paused = await third.wait_for_followup(lambda m: "paused sending" in m.content)
        assert paused.ephemeral and "quota was not charged" in paused.content
        # A new request is refused straight away.
        late = await fake.slash("imagine", {"prompt": "a bird"}, user=dave)
        await late.wait_for_callback()
        assert late.response_type == CHANNEL_MESSAGE and late.ephemeral
        assert "paused sending" in late.callback.data["content"]

        assert len(gemini.requests) == 2
        assert await bot.services.pipeline.drain(within=5)
        for member in (fake.member, bob, carol, dave):
            assert await quota(bot, fake, member) == (0, 0)


async def test_queue_shows_how_busy_the_line_is(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    gemini.latency = 2.0  # the fox must still be generating when /queue is read, however loaded the machine
    async with run_bot(**FOREVER):
        await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        await waiting(await fake.slash("imagine", {"prompt": "a cat"}, user=bob))
        ix = await fake.slash("queue", user=bob)
        await ix.wait_for_callback()
        text = ix.callback.data["content"]
        assert ix.ephemeral and "Waiting: 1 · generating: 1" in text and "1 of 1 allowed" in text


async def test_sigterm_stops_the_bot_gracefully(fake_discord, settings_for, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    server = asyncio.create_task(serve(settings_for(fake, **FOREVER)))
    await fake.wait_for(lambda: fake.connected and fake.commands, what="the bot to log in and sync")
    first = await fake.slash("imagine", {"prompt": "a fox"})
    await first.wait_for_original(lambda m: m.attachments)
    ix = await fake.slash("imagine", {"prompt": "a cat"}, user=bob)
    await waiting(ix)

    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # or the signal would end the test run
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(server, fake.timeout)
    assert ix.original.content.startswith("The bot is restarting") and not fake.connected


async def test_a_reply_edit_waiting_in_line_can_be_cancelled_too(run_bot, fake_discord, gemini):
    from tests.e2e.edit_helpers import imagine

    fake = fake_discord
    async with run_bot(**FOREVER) as bot:
        picture = await imagine(fake, bot, "a fox")  # uses the one start of this minute: the edit must wait
        ask = await fake.send_message(content="make it night", reply_to=picture)
        waiting_reply = await fake.wait_for_message(
            ask.channel, lambda m: m.reference_id == ask.id and POSITION.search(m.content) and m.custom_ids, after=ask
        )
        (custom_id,) = [c for c in waiting_reply.custom_ids if c.startswith("gib:cancel:")]
        await fake.click(waiting_reply, custom_id)
        told = await fake.wait_for(
            lambda: (m := fake.message(waiting_reply.id)) and m.content.startswith("Cancelled") and m, what="cancel"
        )
        assert "quota was not charged" in told.content and told.custom_ids == []
        assert await bot.services.pipeline.drain(within=5)
        assert [call.prompt for call in gemini.requests] == ["a fox"]  # the edit never reached Google
        assert await quota(bot, fake, fake.member) == (1, 0)
