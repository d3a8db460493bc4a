"""`/imagine` end to end: the real discord.py client against the fake Discord, the real bot against the fake Gemini."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.gemini import GeminiReply
from tests.fakes.gemini_images import jpeg_bytes, png_bytes

DEFERRED = 5
CHANNEL_MESSAGE = 4


async def generations(bot) -> list[dict]:
    """The generation rows once every running request has ended (the image message shows before the commit)."""
    assert await bot.services.pipeline.drain(within=5)
    rows = await bot.services.db.fetchall("SELECT * FROM generations ORDER BY id")
    return [dict(row) for row in rows]


async def test_imagine_defers_calls_gemini_and_posts_the_exact_image(run_bot, fake_discord, gemini):
    picture = png_bytes(1344, 768, seed=7)
    gemini.enqueue(GeminiReply.image(picture, text="A fox, as asked."))
    async with run_bot() as bot:
        ix = await fake_discord.slash("imagine", {"prompt": "a red fox", "aspect_ratio": "16:9"})
        result = await ix.wait_for_original(lambda m: m.attachments)

        assert ix.response_type == DEFERRED and not ix.ephemeral
        # What reached Google: the prompt, the ratio, the key in the header only.
        (call,) = gemini.served
        assert call.prompt == "a red fox" and call.aspect_ratio == "16:9"
        assert call.headers["x-goog-api-key"] == gemini.api_key and gemini.api_key not in call.query
        # What the user sees: the exact bytes, the prompt, who asked, the model, the model's words, the quota.
        (attachment,) = result.attachments
        assert attachment.data == picture and attachment.content_type == "image/png"
        assert attachment.filename.endswith(".png")
        (embed,) = result.embeds
        assert "a red fox" in embed["description"]
        assert fake_discord.member.name in embed["author"]["name"]
        # The model asked (its name and size) and the one that answered (modelVersion).
        assert embed["footer"]["text"].startswith("Nano Banana 2.1 · 1K · gemini-nano-banana-2.1")
        assert embed["fields"][0]["value"] == "A fox, as asked."
        assert embed["image"]["url"] == f"attachment://{attachment.filename}"
        assert "left today" in result.content and "<t:" in result.content
        assert result.mentions == []  # the echo pings nobody
        # Progress was shown before the image replaced it.
        assert any("In line" in (edit.get("content") or "") for edit in ix.edits)

        (row,) = await generations(bot)
        assert row["status"] == "delivered" and row["prompt"] == "a red fox"
        assert row["user_id"] == fake_discord.member.id and row["guild_id"] == fake_discord.guild.id
        assert row["output_tokens"] >= 1290 and row["message_id"] == result.id
        assert row["upstream_ms"] is not None and row["image_bytes"] == len(picture)


async def test_jpeg_output_keeps_its_real_type(run_bot, fake_discord, gemini):
    picture = jpeg_bytes(640, 480)
    gemini.enqueue(GeminiReply.jpeg(picture))
    async with run_bot():
        ix = await fake_discord.slash("imagine", {"prompt": "a lighthouse"})
        result = await ix.wait_for_original(lambda m: m.attachments)
        (attachment,) = result.attachments
        assert attachment.data == picture and attachment.filename.endswith(".jpg")
        assert "aspectRatio" not in str(gemini.served[0].request)  # none chosen, none sent


async def test_a_too_long_prompt_is_refused_ephemerally_and_nothing_is_sent(run_bot, fake_discord, gemini):
    async with run_bot(prompt_max_chars=20):
        ix = await fake_discord.slash("imagine", {"prompt": "x" * 21})
        await ix.wait_for_callback()
        assert ix.response_type == CHANNEL_MESSAGE and ix.ephemeral
        assert "21 characters long; the limit is 20" in ix.callback.data["content"]
    assert gemini.requests == []


FAILURES = [
    pytest.param(
        [GeminiReply.prompt_blocked("PROHIBITED_CONTENT")], "Google's safety filter refused", True, id="prompt"
    ),
    pytest.param([GeminiReply.image_safety("Unsafe image")], "stopped the image", True, id="image-safety"),
    pytest.param([GeminiReply.text_only("Which fox do you mean?")], "Which fox do you mean?", False, id="text-only"),
    pytest.param([GeminiReply.overloaded()] * 3, "overloaded", True, id="overloaded"),
    pytest.param([GeminiReply.api_key_invalid()], "tell the bot's operator", True, id="bad-key"),
    pytest.param([GeminiReply.no_quota()], "tell the bot's operator", True, id="limit-0"),
    pytest.param([GeminiReply.stall()] * 3, "took too long", True, id="stall"),
]


@pytest.mark.parametrize("replies,words,ephemeral", FAILURES)
async def test_each_failure_ends_in_a_specific_message_and_costs_nothing(
    run_bot, fake_discord, gemini, replies, words, ephemeral, caplog
):
    gemini.enqueue(*replies)
    settings = {"gemini_attempt_timeout_seconds": 0.3, "gemini_max_attempts": 3}
    with caplog.at_level(logging.ERROR, logger="bot"):
        async with run_bot(**settings) as bot:
            ix = await fake_discord.slash("imagine", {"prompt": "a fox"})
            if ephemeral:
                told = await ix.wait_for_followup(lambda m: words in m.content)
                assert told.ephemeral and ix.original.deleted  # the public waiting message is gone
            else:
                told = await ix.wait_for_original(lambda m: words in m.content)
                assert not told.ephemeral
            assert "quota was not charged" in told.content
            (row,) = await generations(bot)
            assert row["status"] == "failed"
            status = await bot.services.quota.status(fake_discord.member.id, fake_discord.guild.id, ())
            assert status.used == 0 and status.reserved == 0
    if "operator" in words:
        assert any("OPERATOR ACTION NEEDED" in r.getMessage() for r in caplog.records)
    assert gemini.api_key not in caplog.text


async def test_a_bookkeeping_failure_after_delivery_leaves_the_user_their_image(run_bot, fake_discord, gemini, caplog):
    async with run_bot() as bot:

        async def broken_commit(*args, **kwargs):
            raise RuntimeError("database is locked")

        bot.services.quota.commit = broken_commit
        ix = await fake_discord.slash("imagine", {"prompt": "a red fox"})
        result = await ix.wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        assert not ix.original.deleted and ix.original.attachments == result.attachments
        assert ix.followups == []  # no error message replaced or followed the picture
        assert "could not be recorded" in caplog.text
