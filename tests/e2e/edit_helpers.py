"""Shared steps of the editing end-to-end tests (not a test module)."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord import FakeDiscord, Message

CHANNEL_MESSAGE = 4
# Settings for tests that follow the picture being edited as a fresh input image (what the bot sends when it has
# no signed answer of the model to send back). Multi-turn edits with the model's own answers: test_models_e2e.
FRESH = {"edit_history_turns": 0}


async def imagine(fake: FakeDiscord, bot: Any, prompt: str, **options: Any) -> Message:
    """Run `/imagine` and return the public result once its generation row is complete."""
    ix = await fake.slash("imagine", {"prompt": prompt, **options})
    shown = await ix.wait_for_original(lambda m: m.attachments)
    assert await bot.services.pipeline.drain(within=5)
    return shown


async def result_reply(fake: FakeDiscord, bot: Any, ask: Message) -> Message:
    """The bot's reply to `ask` once it shows a picture (the waiting reply becomes the result)."""
    shown = await fake.wait_for_message(ask.channel, lambda m: m.reference_id == ask.id and m.attachments, after=ask)
    assert await bot.services.pipeline.drain(within=5)
    return shown


async def text_reply(fake: FakeDiscord, ask: Message) -> str:
    reply = await fake.wait_for_reply(ask)
    return reply.content


async def ephemeral_text(ix: Any) -> str:
    """What an interaction told its user privately: the ephemeral answer, or an ephemeral followup."""

    def found() -> str | None:
        if ix.response_type == CHANNEL_MESSAGE and ix.ephemeral:
            return ix.callback.data["content"]
        return next((m.content for m in ix.followups if m.ephemeral), None)

    return await ix.wait_until(found, what="an ephemeral answer")


async def generations(bot: Any) -> list[dict[str, Any]]:
    assert await bot.services.pipeline.drain(within=5)
    return [dict(row) for row in await bot.services.db.fetchall("SELECT * FROM generations ORDER BY id")]


async def quota_used(bot: Any, fake: FakeDiscord, member: Any = None) -> tuple[int, int]:
    """(used, reserved) of a member today."""
    assert await bot.services.pipeline.drain(within=5)
    status = await bot.services.quota.status((member or fake.member).id, fake.guild.id, ())
    return status.used, status.reserved


def footer(message: Message) -> str:
    assert message.embed is not None
    return message.embed["footer"]["text"]
