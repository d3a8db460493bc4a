"""Nobody can make the bot speak markdown or post a masked link in its own voice (issue 12, item 6).

Prompts, the model's words, Google's messages, file names and blocked prompts in the log channel are echoed with
every markdown character escaped. Checked on the wire: every string of every request the bot sent to the fake
Discord, read the way Discord's markdown reads it (a backslash escapes the next punctuation character).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.gemini import GeminiReply

LINK = "[free nitro](https://evil.example/claim)"
# Escaped as typed, but an escaper that leaves the user's own backslash alone makes it "\\\\[": a live link again.
SLASHED_LINK = "\\[claim here](<https://evil.example/x>)"
# discord.utils.escape_markdown escapes only the first of two links (its pattern is greedy).
TWO_LINKS = "[one](https://evil.example/1) and [two](https://evil.example/2)"
ANGLED_LINK = "[verify](<https://evil.example/v>)"
_ESCAPED = re.compile(r"\\[^0-9A-Za-z\s]")
_MASKED = re.compile(r"\[[^\]\n]*\]\(\s*<?\s*https?://")


def live_links(text: str) -> list[str]:
    """The masked links Discord would render in `text`."""
    return _MASKED.findall(_ESCAPED.sub("\0", text))


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def wire_links(fake: FakeDiscord) -> list[str]:
    return [link for request in fake.requests for text in strings(request.json) for link in live_links(text)]


def test_the_reader_sees_what_discord_renders():
    assert live_links(LINK) and live_links(ANGLED_LINK) and len(live_links(TWO_LINKS)) == 2
    assert not live_links(SLASHED_LINK) and live_links("\\" + SLASHED_LINK)  # an escaped backslash, then a link
    assert not live_links("\\" + LINK) and not live_links("\\[free nitro\\]\\(https://evil.example/claim\\)")


async def test_prompts_and_model_words_are_echoed_without_markdown(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.enqueue(
        GeminiReply.image(text=f"Done! {ANGLED_LINK} **now**"),
        GeminiReply.text_only(f"I can't draw that. {LINK}"),
        GeminiReply.image_safety(f"Blocked, see {SLASHED_LINK}"),
        GeminiReply.image(),
    )
    async with run_bot() as bot:
        drawn = await fake.slash("imagine", {"prompt": f"a fox {LINK} # huge **bold**"})
        result = await drawn.wait_for_original(lambda m: m.attachments)
        # The prompt reads as typed: every character is there, none of it is markup.
        description = result.embed["description"]
        assert "a fox" in description and "free nitro" in description
        assert "now" in result.embed["fields"][0]["value"]

        words = await fake.slash("imagine", {"prompt": f"a cat {SLASHED_LINK}"})
        told = await words.wait_for_original(lambda m: "answered in words" in m.content)
        assert "I can't draw that." in told.content

        safety = await fake.slash("imagine", {"prompt": "a dog"})
        await safety.wait_until(lambda: safety.followups or (safety.original and "safety" in safety.original.content))

        ask = await fake.send_message(content=f"a bird {ANGLED_LINK}", mentions_bot=True, reply_to=result)
        reply = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == ask.id and m.attachments)
        assert "a bird" in reply.embed["description"]
        assert await bot.services.pipeline.drain(within=5)
    assert wire_links(fake) == []


async def test_file_names_and_blocked_prompts_in_the_log_channel_are_escaped(run_bot, fake_discord):
    fake = fake_discord
    log_channel = fake.add_channel("mod-log")
    async with run_bot() as bot:
        await bot.services.moderation.set_log_channel(fake.guild.id, log_channel.id)
        blocked = await fake.slash("imagine", {"prompt": f"a nude woman {SLASHED_LINK} {TWO_LINKS} ||x"})
        await blocked.wait_for_callback()
        await fake.wait_for(lambda: fake.messages(log_channel), what="the block posted in the log channel")
        (posted,) = fake.messages(log_channel)
        assert "nude" in posted.embed["description"]

        upload = ("[photo](https://evil.example).txt", b"not a picture", "text/plain")
        refused = await fake.slash("edit", {"image": upload, "instruction": "make it night"})
        await refused.wait_for_callback()
        assert "photo" in refused.callback.data["content"]
    assert wire_links(fake) == []
