"""The AI moderator end to end: the real bot and discord.py client between the fake Discord and the fake Gemini,
whose text models answer scripted JSON verdicts (the image model is the same fake's).

What a member sees: the block with its reason and an Appeal button, pressing it (also after a restart), the
answer, and the prompt going through once the appeal overturned the block. What a moderator sees: the log
channel. What the operator sees: the model's cost in the day's spend.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.edit_helpers import ephemeral_text
from tests.fakes.discord import FakeDiscord, Interaction, Member, Message
from tests.fakes.gemini import FakeGemini, RecordedRequest
from tests.fakes.gemini_images import png_bytes

AI, APPEALS = "gemini-2.5-flash-lite", "gemini-2.5-flash"
SETTINGS: dict[str, Any] = {"moderation_ai_model": AI, "moderation_appeal_model": APPEALS}


def verdict(category: str, confidence: float = 0.9, reason: str = "scripted") -> dict[str, Any]:
    return {"category": category, "confidence": confidence, "reason": reason}


def script(gemini: FakeGemini, ai: dict[str, Any], appeals: dict[str, Any] | None = None) -> None:
    """Per model, {words of the prompt: answer}; anything else is judged harmless."""
    by_model = {AI: ai, APPEALS: appeals or {}}

    def answer(request: RecordedRequest) -> Any:
        found = [v for k, v in by_model.get(request.model or "", {}).items() if k in request.prompt]
        return found[0] if found else verdict("none", 0.9, "harmless")

    gemini.text_answers = answer


def text_calls(gemini: FakeGemini, model: str) -> list[str]:
    return [r.prompt.removeprefix("Prompt to judge:\n") for r in gemini.requests if r.model == model]


def image_calls(gemini: FakeGemini) -> list[RecordedRequest]:
    return [r for r in gemini.requests if r.model not in (AI, APPEALS)]


async def imagine(fake: FakeDiscord, prompt: str, user: Member | None = None) -> Interaction:
    return await fake.slash("imagine", {"prompt": prompt}, user=user or fake.member)


async def blocked(ix: Interaction) -> Message:
    """The private message that tells the member of the block (it replaces the public waiting message)."""
    message = await ix.wait_for_followup(lambda m: m.ephemeral)
    assert ix.original is None or ix.original.deleted  # nothing about the request stays in the channel
    return message


def appeal_id(message: Message) -> str:
    (custom_id,) = [c for c in message.custom_ids if c.startswith("gib:appeal:")]
    return custom_id


async def press(fake: FakeDiscord, message: Message, user: Member | None = None) -> str:
    """Press Appeal; returns what the presser was told (privately)."""
    return await ephemeral_text(await fake.click(message, appeal_id(message), user=user))


async def spend(bot: Any, guild_id: int) -> float:
    return (await bot.services.quota.spend(guild_id)).cost_usd


async def test_a_block_with_its_reason_an_appeal_that_overturns_it_and_the_prompt_then_drawn(
    run_bot, fake_discord, gemini
):
    fake = fake_discord
    log_channel = fake.add_channel("mod-log")
    prompt = "a woman wearing only sunlight"
    script(
        gemini, {"sunlight": verdict("sexual", 0.92, "reads as nudity")}, {"sunlight": verdict("none", 0.8, "poetic")}
    )
    async with run_bot(**SETTINGS) as bot:
        await bot.services.moderation.set_log_channel(fake.guild.id, log_channel.id)
        message = await blocked(await imagine(fake, prompt))
        assert "🤖 The AI moderator judged that prompt as **explicit sexual content and nudity**" in message.content
        assert "> reads as nudity" in message.content and "quota was not charged" in message.content
        assert "press **Appeal**" in message.content
        (block,) = await bot.services.moderation.log(fake.guild.id)
        assert appeal_id(message) == f"gib:appeal:{block.id}:{fake.member.id}"
        assert (block.tier, block.text, block.category) == ("ai", prompt, "sexual")
        assert image_calls(gemini) == [] and text_calls(gemini, AI) == [prompt]
        assert (await bot.services.quota.status(fake.member.id, fake.guild.id)).used == 0

        told = await press(fake, message)
        assert told.startswith("⚖️ Appeal accepted") and "poetic" in told and "Send the prompt again" in told
        assert text_calls(gemini, APPEALS) == [prompt]
        posts = await fake.wait_for(lambda: len(log_channel.messages) == 2 and log_channel.messages)
        block_post, appeal_post = (m.embed for m in posts)
        assert block_post["title"] == "🤖 Prompt blocked by the AI moderator"
        assert {f["name"]: f["value"] for f in block_post["fields"]}["Source"] == "the AI moderator"
        assert appeal_post["title"] == "⚖️ Appeal of an AI moderator block: ✅ overturned"
        fields = {f["name"]: f["value"] for f in appeal_post["fields"]}
        assert (fields["Decided by"], fields["Reason"], fields["User"]) == (APPEALS, "poetic", f"<@{fake.member.id}>")

        drawn = await (await imagine(fake, prompt)).wait_for_original(lambda m: m.attachments)
        assert drawn.attachments and not drawn.ephemeral
        assert [r.prompt for r in image_calls(gemini)] == [prompt]
        assert text_calls(gemini, AI) == [prompt]  # the overturned verdict was remembered: no second call
        assert await bot.services.pipeline.drain(within=5)
        assert (await bot.services.quota.status(fake.member.id, fake.guild.id)).used == 1
        (block,) = await bot.services.moderation.log(fake.guild.id)
        assert block.overturned_at is not None
        assert fake.rejections == []


async def test_the_appeal_limit_and_the_button_after_a_restart(run_bot, fake_discord, gemini):
    fake = fake_discord
    script(
        gemini, {"aftermath": verdict("gore", 0.9, "graphic")}, {"aftermath": verdict("gore", 0.95, "still graphic")}
    )
    async with run_bot(**SETTINGS, moderation_appeals_per_day=1):
        first = await blocked(await imagine(fake, "the aftermath of the battle"))
        second = await blocked(await imagine(fake, "the aftermath of the crash"))

    async with run_bot(**SETTINGS, moderation_appeals_per_day=1) as bot:  # a new process, the same database
        told = await press(fake, first)
        assert told.startswith("⚖️ Appeal turned down") and "still graphic" in told and "0 appeals left" in told
        assert "used your 1 appeals for today" in await press(fake, second)
        assert "already appealed" in await press(fake, first)
        assert text_calls(gemini, APPEALS) == ["the aftermath of the battle"]
        assert image_calls(gemini) == []
        assert all(row.overturned_at is None for row in await bot.services.moderation.log(fake.guild.id))


@pytest.mark.parametrize("on_error", ["allow", "block"])
async def test_a_moderator_that_does_not_answer_in_time_follows_on_error(run_bot, fake_discord, gemini, on_error):
    fake = fake_discord
    gemini.text_delay = 3.0
    settings = {**SETTINGS, "moderation_ai_on_error": on_error, "moderation_ai_timeout_seconds": 0.2}
    async with run_bot(**settings) as bot:
        ix = await imagine(fake, "a lighthouse at dusk")
        if on_error == "allow":
            await ix.wait_for_original(lambda m: m.attachments)
            assert len(image_calls(gemini)) == 1
        else:
            message = await blocked(ix)
            assert "could not check that prompt just now, so it was held back" in message.content
            assert "press **Appeal**" in message.content and image_calls(gemini) == []
            (block,) = await bot.services.moderation.log(fake.guild.id)
            assert (block.tier, block.category) == ("ai", "ai_unavailable")


async def test_a_reply_blocked_by_the_ai_is_appealed_by_its_author_only(run_bot, fake_discord, gemini):
    """The message door: the waiting reply becomes the block, with the Appeal button, in public."""
    fake = fake_discord
    bob = fake.add_member("bob")
    script(gemini, {"every detail": verdict("gore", 0.9, "graphic injury")}, {"every detail": verdict("none")})
    async with run_bot(**SETTINGS) as bot:
        shown = await (await imagine(fake, "a knight")).wait_for_original(lambda m: m.attachments)
        ask = await fake.send_message(content="show his wounds, every detail", reply_to=shown)
        reply = await fake.wait_for_message(
            ask.channel, lambda m: m.reference_id == ask.id and any(c.startswith("gib:appeal:") for c in m.custom_ids)
        )
        assert "🤖 The AI moderator judged that prompt as **graphic gore**" in reply.content
        assert "graphic injury" not in reply.content  # the model's reason is for the member, not the channel
        assert "Only the member whose prompt was blocked can appeal it." == await press(fake, reply, user=bob)
        assert text_calls(gemini, APPEALS) == []
        assert (await press(fake, reply)).startswith("⚖️ Appeal accepted")
        assert len(image_calls(gemini)) == 1
        assert await bot.services.pipeline.drain(within=5)


async def test_the_models_cost_counts_in_the_days_spend(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(**SETTINGS) as bot:
        await (await imagine(fake, "a red fox in the snow")).wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        ai = bot.services.moderation.ai
        assert ai is not None and ai.calls == 1 and ai.spent_usd > 0
        rows = await bot.services.db.fetchall("SELECT cost_micros FROM quota_entries WHERE state = 'committed'")
        image_cost = sum(row[0] for row in rows) / 1_000_000
        assert await spend(bot, fake.guild.id) == pytest.approx(image_cost + ai.spent_usd, abs=2e-6)
        assert await spend(bot, fake.guild.id) > image_cost


async def test_moderation_test_shows_the_ai_moderators_answer(run_bot, fake_discord, gemini):
    fake = fake_discord
    script(gemini, {"aftermath": verdict("gore", 0.9, "graphic injury")})
    async with run_bot(**SETTINGS) as bot:
        ix = await fake.slash("moderation test", {"text": "the aftermath, every detail"}, user=fake.admin)
        answer = await ix.wait_for_followup()
        assert answer.ephemeral
        (embed,) = answer.embeds
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert embed["title"] == "🚫 Blocked here: graphic gore"
        assert fields["Decided by"] == f"AI second opinion · rule: {AI}, confidence 0.90"
        assert "AI second opinion: gore (0.90): graphic injury" in embed["description"]
        assert await bot.services.moderation.log(fake.guild.id) == []  # a test is no block
        assert image_calls(gemini) == []


async def test_word_list_blocks_never_reach_the_ai_moderator_and_offer_no_appeal(run_bot, fake_discord, gemini):
    """Word-list blocks never reach the AI moderator, and never get an Appeal button."""
    fake = fake_discord
    async with run_bot(**SETTINGS):
        ix = await imagine(fake, "a nude woman")
        callback = await ix.wait_for_callback()
        assert ix.ephemeral and "This server's rules don't allow that prompt" in callback.data["content"]
        assert not callback.data.get("components")
        assert gemini.requests == []


@pytest.mark.parametrize("images", [False, True])
async def test_a_members_own_image_reaches_the_ai_moderator_only_when_switched_on(
    run_bot, fake_discord, gemini, images
):
    fake = fake_discord
    moon = png_bytes(24, 24, color=(250, 250, 200))
    async with run_bot(**SETTINGS, moderation_ai_images=images) as bot:
        shown = await (await imagine(fake, "a red fox")).wait_for_original(lambda m: m.attachments)
        ask = await fake.send_message(content="add this moon", reply_to=shown, attachments=[("moon.png", moon)])
        await fake.wait_for_message(ask.channel, lambda m: m.reference_id == ask.id and m.attachments)
        assert await bot.services.pipeline.drain(within=5)
    judged = [r for r in gemini.requests if r.model == AI]
    assert [r.prompt.splitlines()[-1] for r in judged] == ["a red fox", "add this moon"]
    assert (("image/png", moon) in judged[1].images) is images
    assert judged[0].images == [] and (images or judged[1].images == [])
