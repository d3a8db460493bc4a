"""`/privacy export` and `/privacy forget` end to end: the export holds what the database holds about the member;
after forgetting (confirmed with a button) none of their words is left in any table (read with a separate SQLite
connection), today's limit still holds, and a Reroll of a forgotten picture is refused with a clear message."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cogs.edit import PROMPT_GONE
from tests.e2e.edit_helpers import ephemeral_text, generations, imagine, quota_used, result_reply
from tests.fakes.discord import FakeDiscord, Message
from tests.fakes.gemini import GeminiReply
from tests.fakes.gemini_images import png_bytes

WORDS = ("a red fox", "make it night", "decapitated")


def button(message: Message, label: str) -> str:
    return next(c["custom_id"] for c in message.walk_components() if c.get("label") == label)


def action(message: Message, name: str) -> str:
    """The custom id of a result button ("reroll", "edit") on `message`."""
    return next(c["custom_id"] for c in message.walk_components() if c.get("custom_id", "").startswith(f"gib:{name}:"))


def dump(path: str) -> dict[str, list[dict[str, Any]]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t}")] for t in tables}
    finally:
        conn.close()


def words_in(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    return [
        (table, word)
        for table, items in rows.items()
        for row in items
        for value in row.values()
        for word in WORDS
        if isinstance(value, str) and word in value
    ]


def holding(rows: dict[str, list[dict[str, Any]]], user_id: int) -> dict[str, int]:
    """Rows per table that still carry the member's id."""
    found = {t: sum(1 for r in items if user_id in (r.get("user_id"), r.get("actor_id"))) for t, items in rows.items()}
    return {t: n for t, n in found.items() if n}


async def a_day(fake: FakeDiscord, bot, gemini) -> tuple[Message, Message]:
    """A failure (refunded), a picture, a reply that edits it with an upload (kept), a block by the filter."""
    gemini.enqueue(GeminiReply.overloaded())
    failed = await fake.slash("imagine", {"prompt": "a red fox at first"})
    assert "overloaded" in await ephemeral_text(failed)
    picture = await imagine(fake, bot, "a red fox")
    ask = await fake.send_message(
        content="make it night", reply_to=picture, attachments=[("moon.png", png_bytes(20, 20))]
    )
    edited = await result_reply(fake, bot, ask)
    blocked = await fake.slash("imagine", {"prompt": "a decapitated fox"})
    await ephemeral_text(blocked)
    await generations(bot)
    return picture, edited


async def test_export_then_forget(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    async with run_bot(daily_quota=2, keep_input_images=True, gemini_max_attempts=1) as bot:
        picture, edited = await a_day(fake, bot, gemini)
        path = bot.services.db.path

        ix = await fake.slash("privacy export")
        shown = await ix.wait_for_original(lambda m: m.attachments)
        assert shown.ephemeral and shown.attachments[0].filename == f"my-data-{fake.member.id}.json"
        exported = json.loads(shown.attachments[0].data)
        before = dump(path)
        mine = [g for g in before["generations"] if g["user_id"] == fake.member.id]
        assert [g["prompt"] for g in exported["generations"]] == [g["prompt"] for g in mine]
        assert [e["id"] for e in exported["quota_entries"]] == [
            e["id"] for e in before["quota_entries"] if e["user_id"] == fake.member.id
        ]
        assert [m["text"] for m in exported["moderation_log"]] == ["a decapitated fox"]
        assert exported["generation_inputs"][0]["data"]["base64"]  # the kept upload, as base64
        assert words_in(before)

        ix = await fake.slash("privacy forget")
        question = await ix.wait_for_original()
        assert question.ephemeral and "This cannot be undone" in question.content
        confirm = await fake.click(question, button(question, "Forget me"))
        await confirm.wait_for_callback()
        await fake.wait_for(lambda: question.content.startswith("🧹 Done."), what="the forget answer")
        assert "Your id stays on today's entries until the day ends" in question.content

        after = dump(path)
        assert words_in(after) == []
        assert after["generation_inputs"] == []
        # Her id stays only on today's ledger entries (and the note of up to which one), for today's limits, and on
        # the block still inside the cool-down window (without its text).
        assert holding(after, fake.member.id) == {"quota_entries": 3, "quota_forgotten": 1, "moderation_log": 1}
        states = sorted(e["state"] for e in after["quota_entries"] if e["user_id"] == fake.member.id)
        assert states == ["committed", "committed", "refunded"]  # the refunded call counts toward her attempts
        assert await quota_used(bot, fake) == (2, 0)

        # Today's limit holds: she has used her two.
        refused = await fake.slash("imagine", {"prompt": "a cat"})
        assert "You've used all 2 of your credits for today" in await ephemeral_text(refused)
        # The forgotten pictures' buttons say why they no longer work, for anyone.
        for who in (fake.member, bob):
            reroll = await fake.click(picture, action(picture, "reroll"), user=who)
            assert await ephemeral_text(reroll) == PROMPT_GONE
        edit = await fake.click(edited, action(edited, "edit"), user=bob)
        assert await ephemeral_text(edit) == PROMPT_GONE
        assert len(gemini.requests) == 3  # nothing more reached the model


async def test_keep_my_data_changes_nothing(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot() as bot:
        await imagine(fake, bot, "a red fox")
        before = dump(bot.services.db.path)
        ix = await fake.slash("privacy forget")
        question = await ix.wait_for_original()
        keep = await fake.click(question, button(question, "Keep my data"))
        await keep.wait_for_callback()
        await fake.wait_for(lambda: question.content == "Nothing was deleted.", what="the answer")
        assert dump(bot.services.db.path) == before
