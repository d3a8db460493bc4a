"""Moderation end to end: the real bot between the fake Discord and the fake Gemini.

A blocked prompt must never reach Google, cost no quota, leave an audit row and tell the user whose rule it
was; `/moderation` must be usable by server admins only and change the rules for the very next request.
"""

from __future__ import annotations

import pytest

from bot.errors import ModerationBlocked, PromptBlocked
from bot.models import ImageRequest
from bot.moderation.store import AuditEntry, Moderation
from cogs.moderation import fit_lines
from tests.fakes.discord import FakeDiscord, Interaction, InteractionRefused, Member
from tests.fakes.discord_state import FLAG_EPHEMERAL, MANAGE_GUILD
from tests.fakes.gemini import GeminiReply

OURS = "This server's rules don't allow that prompt"
GOOGLES = "Google's safety filter"


async def imagine(fake: FakeDiscord, prompt: str, user: Member | None = None) -> Interaction:
    return await fake.slash("imagine", {"prompt": prompt}, user=user or fake.member)


async def refusal(ix: Interaction) -> str:
    """The ephemeral answer to a request refused before anything started."""
    callback = await ix.wait_for_callback()
    assert ix.ephemeral, callback.data
    return callback.data["content"]


async def delivered(ix: Interaction) -> None:
    await ix.wait_for_original(lambda m: m.attachments)


async def admin(fake: FakeDiscord, command: str, **options) -> dict:
    """Run `/moderation <command>` as the server admin; returns the (ephemeral) answer."""
    ix = await fake.slash(f"moderation {command}", options, user=fake.admin)
    callback = await ix.wait_for_callback()
    assert callback.data["flags"] & FLAG_EPHEMERAL, callback.data
    return callback.data


async def quota_used(bot, fake: FakeDiscord) -> int:
    """The member's images charged today, once every request ended; none may still be held."""
    assert await bot.services.pipeline.drain(within=5)
    status = await bot.services.quota.status(fake.member.id, fake.guild.id, ())
    assert status.reserved == 0
    return status.used


@pytest.mark.parametrize(
    "prompt,written",
    [
        pytest.param("a nude woman on a beach", "nude", id="plain"),
        pytest.param("a n.u.d.e woman on a beach", "n.u.d.e", id="dotted"),
        pytest.param("a nuuude woman on a beach", "nuuude", id="stretched"),
        pytest.param("a nud\u0435 woman on a beach", "nud\u0435", id="cyrillic-e"),
        pytest.param("a n\u200bude woman on a beach", "n\u200bude", id="zero-width"),
    ],
)
async def test_a_blocked_prompt_never_reaches_google_costs_nothing_and_is_audited(
    run_bot, fake_discord, gemini, prompt, written
):
    async with run_bot() as bot:
        text = await refusal(await imagine(fake_discord, prompt))
        assert OURS in text and "explicit sexual content and nudity" in text
        assert f"matched “{written}”" in text and "not charged" in text
        assert gemini.requests == []
        assert await quota_used(bot, fake_discord) == 0
        (row,) = await bot.services.moderation.log(fake_discord.guild.id)
        assert (row.user_id, row.channel_id, row.text) == (fake_discord.member.id, fake_discord.channel.id, prompt)
        assert (row.category, row.source) == ("sexual", "bot")
        assert await bot.services.db.fetchall("SELECT id FROM generations") == []


@pytest.mark.parametrize(
    "reply,reason,words",
    [
        pytest.param(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"), "PROHIBITED_CONTENT", "refused", id="prompt"),
        pytest.param(GeminiReply.image_safety(), "IMAGE_SAFETY", "stopped the image", id="image"),
    ],
)
async def test_a_google_block_is_told_as_googles_and_audited_as_googles(
    run_bot, fake_discord, gemini, reply, reason, words
):
    gemini.enqueue(reply)
    async with run_bot() as bot:
        ix = await imagine(fake_discord, "a knight in a dark forest")
        told = await ix.wait_for_followup()
        assert told.ephemeral and GOOGLES in told.content and words in told.content
        assert "not this server's" in told.content and OURS not in told.content
        assert len(gemini.served) == 1
        assert await quota_used(bot, fake_discord) == 0
        (row,) = await bot.services.moderation.log(fake_discord.guild.id)
        assert (row.source, row.category, row.text) == ("google", reason, "a knight in a dark forest")


async def test_added_term_blocks_the_next_request_and_removing_it_lets_it_through(run_bot, fake_discord, gemini):
    async with run_bot() as bot:
        answer = await admin(fake_discord, "add", term="zorblax")
        assert "Blocked “zorblax”" in answer["content"]
        text = await refusal(await imagine(fake_discord, "a z0rbl4x on a hill"))
        assert OURS in text and "a term this server's moderators blocked" in text
        assert gemini.requests == []

        answer = await admin(fake_discord, "remove", term="ZORBLAX")
        assert "Removed" in answer["content"]
        await delivered(await imagine(fake_discord, "a z0rbl4x on a hill"))
        assert [call.prompt for call in gemini.served] == ["a z0rbl4x on a hill"]
        assert (await admin(fake_discord, "remove", term="zorblax"))["content"].startswith("This server has no term")
        assert [row.term for row in await bot.services.moderation.log(fake_discord.guild.id)] == ["zorblax"]


async def test_an_allowed_term_and_a_category_switched_off_apply_at_once(run_bot, fake_discord, gemini):
    async with run_bot():
        await refusal(await imagine(fake_discord, "a bloody gore scene"))
        answer = await admin(fake_discord, "category", name="gore", enabled=False)
        assert "graphic gore** is now off" in answer["content"]
        await delivered(await imagine(fake_discord, "a bloody gore scene"))

        await refusal(await imagine(fake_discord, "nude beach volleyball"))
        assert "Allowed “nude beach”" in (await admin(fake_discord, "add", term="nude beach", kind="allow"))["content"]
        await delivered(await imagine(fake_discord, "nude beach volleyball"))
        assert [call.prompt for call in gemini.served] == ["a bloody gore scene", "nude beach volleyball"]


async def test_csam_cannot_be_switched_off_or_allowed(run_bot, fake_discord):
    async with run_bot() as bot:
        answer = await admin(fake_discord, "category", name="csam", enabled=False)
        assert "always on and cannot be switched off" in answer["content"]
        answer = await admin(fake_discord, "add", term="teen porn", kind="allow")
        assert "no server setting can relax" in answer["content"]
        config = await bot.services.moderation.list_config(fake_discord.guild.id)
        assert config.enabled["csam"] and config.allowed_terms == ()


async def test_list_shows_categories_terms_and_log_channel(run_bot, fake_discord):
    log_channel = fake_discord.add_channel("mod-log")
    async with run_bot():
        await admin(fake_discord, "add", term="zorblax")
        await admin(fake_discord, "add", term="shooting range", kind="allow")
        await admin(fake_discord, "category", name="hate", enabled=False)
        await admin(fake_discord, "logchannel", channel=log_channel)
        (embed,) = (await admin(fake_discord, "list"))["embeds"]
        fields = {field["name"]: field["value"] for field in embed["fields"]}
        assert "⬜ `hate`" in fields["Categories"] and "✅ `csam`" in fields["Categories"]
        assert fields["Blocked terms (1)"] == "• zorblax" and fields["Allowed terms (1)"] == "• shooting range"
        assert fields["Log channel"] == f"<#{log_channel.id}>"


async def test_moderation_test_explains_what_the_filter_sees(run_bot, fake_discord, gemini):
    async with run_bot() as bot:
        (embed,) = (await admin(fake_discord, "test", text="a n.u.d.e woman"))["embeds"]
        assert embed["title"] == "🚫 Blocked here: explicit sexual content and nudity"
        assert embed["description"].startswith("```\nnormalised: a n.u.d.e woman\n")
        assert "“n.u.d.e” → nude [letters spaced apart] (BLOCKS)" in embed["description"]
        # Escaped, since it quotes the member's text; Discord shows "(reads as …)" all the same.
        assert embed["fields"][0]["value"] == "“n.u.d.e” \\(reads as “nude”\\) is a sexual term"

        (embed,) = (await admin(fake_discord, "test", text="a cocktail in Scunthorpe"))["embeds"]
        assert embed["title"] == "✅ Allowed here"

        # The longest text Discord lets through, full of hits: the answer still fits Discord's limits.
        (embed,) = (await admin(fake_discord, "test", text="n u d e g0re " * 461))["embeds"]
        assert len(embed["description"]) <= 4096 and "more" in embed["description"]
        assert fake_discord.rejections == []
        # Testing is neither a request nor a block.
        assert gemini.requests == [] and await bot.services.moderation.log(fake_discord.guild.id) == []


async def test_a_plain_member_cannot_use_moderation_even_when_the_command_is_forced(run_bot, fake_discord):
    async with run_bot() as bot:
        (command,) = [c for c in fake_discord.commands[fake_discord.guild.id] if c["name"] == "moderation"]
        assert int(command["default_member_permissions"]) == MANAGE_GUILD
        with pytest.raises(InteractionRefused):  # hidden from the member's client
            await fake_discord.slash("moderation list", user=fake_discord.member)

        # A server admin can grant the command to everyone in Integrations; the bot still refuses.
        del command["default_member_permissions"]
        for sub, options in [("add", {"term": "zorblax"}), ("lift", {"user": fake_discord.member}), ("log", {})]:
            ix = await fake_discord.slash(f"moderation {sub}", options, user=fake_discord.member)
            assert "permission" in await refusal(ix)
        assert (await bot.services.moderation.list_config(fake_discord.guild.id)).blocked_terms == ()


async def test_repeated_blocks_start_a_cool_down_that_an_admin_lifts(run_bot, fake_discord, gemini):
    async with run_bot(moderation_cooldown_blocks=2) as bot:
        await refusal(await imagine(fake_discord, "a nude woman"))
        await refusal(await imagine(fake_discord, "a p0rn poster"))
        text = await refusal(await imagine(fake_discord, "a red fox"))
        assert "Too many blocked prompts" in text and "<t:" in text
        assert gemini.requests == []
        # Only the member who was blocked waits.
        await delivered(await imagine(fake_discord, "a red fox", user=fake_discord.admin))

        answer = await admin(fake_discord, "lift", user=fake_discord.member)
        assert "can generate again" in answer["content"]
        await delivered(await imagine(fake_discord, "a red fox"))
        assert (
            "no cool-down that began in this server"
            in (await admin(fake_discord, "lift", user=fake_discord.member))["content"]
        )
        assert await quota_used(bot, fake_discord) == 1  # the blocked ones cost nothing


async def test_the_block_that_starts_a_cool_down_says_so(run_bot, fake_discord):
    async with run_bot(moderation_cooldown_blocks=2):
        first = await refusal(await imagine(fake_discord, "a nude woman"))
        second = await refusal(await imagine(fake_discord, "a p0rn poster"))
        assert "you can generate again" not in first
        assert "you can generate again <t:" in second


async def test_log_and_log_channel_show_ours_and_googles_blocks(run_bot, fake_discord, gemini):
    log_channel = fake_discord.add_channel("mod-log")
    gemini.enqueue(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"))
    async with run_bot(moderation_cooldown_blocks=2):
        answer = await admin(fake_discord, "logchannel", channel=log_channel)
        assert f"<#{log_channel.id}>" in answer["content"]
        told = await (await imagine(fake_discord, "a knight @everyone in a dark forest")).wait_for_followup()
        assert GOOGLES in told.content
        assert OURS in await refusal(await imagine(fake_discord, "a n.u.d.e woman"))

        posts = await fake_discord.wait_for(
            lambda: len(fake_discord.messages(log_channel)) == 2 and log_channel.messages
        )
        for message in posts:
            assert message.mentions == [] and not message.mention_everyone  # nobody is pinged
            fields = {field["name"]: field["value"] for field in message.embed["fields"]}
            assert fields["User"] == f"<@{fake_discord.member.id}>"
            assert fields["Channel"] == f"<#{fake_discord.channel.id}>"
        google, bot_block = sorted((m.embed for m in posts), key=lambda embed: "Google" not in embed["title"])
        assert "Google's safety filter" in google["title"] and "knight @everyone" in google["description"]
        assert {f["name"]: f["value"] for f in google["fields"]}["Category"] == "PROHIBITED_CONTENT"
        assert "this server's rules" in bot_block["title"] and bot_block["description"] == "||a n.u.d.e woman||"
        fields = {f["name"]: f["value"] for f in bot_block["fields"]}
        assert fields["Category"] == "explicit sexual content and nudity (term: nude)"
        assert "Cool-down" in fields  # the second block in the window started one

        (embed,) = (await admin(fake_discord, "log"))["embeds"]
        lines = embed["description"].split("\n")
        assert "explicit sexual content and nudity** · this server's rules" in lines[0]
        assert "PROHIBITED_CONTENT** · Google's safety filter" in lines[2]
        (embed,) = (await admin(fake_discord, "log", user=fake_discord.admin, limit=5))["embeds"]
        assert "No blocked prompts recorded." in embed["description"]

        answer = await admin(fake_discord, "logchannel")
        assert "no longer posted" in answer["content"]
        await refusal(await imagine(fake_discord, "a bloody gore scene", user=fake_discord.admin))
        (embed,) = (await admin(fake_discord, "log", limit=1))["embeds"]
        assert "graphic gore" in embed["description"]
        assert len(fake_discord.messages(log_channel)) == 2


async def test_a_log_channel_the_bot_cannot_post_in_changes_nothing_for_the_user(run_bot, fake_discord, caplog):
    log_channel = fake_discord.add_channel("mod-log")
    async with run_bot() as bot:
        await admin(fake_discord, "logchannel", channel=log_channel)
        route = "POST /channels/{channel_id}/messages"
        fake_discord.inject_error(route, 403, 50013, "Missing Permissions")
        assert OURS in await refusal(await imagine(fake_discord, "a nude woman"))
        await fake_discord.wait_for(lambda: any(r.route == route for r in fake_discord.rejections))
        await fake_discord.wait_for(lambda: "could not post to the moderation log channel" in caplog.text)
        assert len(await bot.services.moderation.log(fake_discord.guild.id)) == 1
        assert fake_discord.messages(log_channel) == []


@pytest.mark.parametrize(
    "lines,limit,expected",
    [
        (["aaaa", "bbbb"], 9, "aaaa\nbbbb"),
        (["a" * 5, "b" * 30, "c"], 25, "aaaaa\n… and 2 more"),
        (["a" * 10] * 100, 200, "\n".join(["a" * 10] * 17 + ["… and 83 more"])),
    ],
)
def test_fit_lines_keeps_whole_lines_within_the_limit(lines, limit, expected):
    assert fit_lines(lines, limit) == expected and len(expected) <= limit


async def test_the_store_tells_its_listener_of_every_block_and_survives_a_broken_one(db):
    """The core side of the log channel: `Moderation.on_block` hears ours and Google's blocks after they are
    stored, with the cool-down a block started; a listener that fails changes nothing for the user."""
    moderation = Moderation(db, cooldown_blocks=2, cooldown_seconds=900, clock=lambda: 1_000.0)
    heard: list[tuple[AuditEntry, float | None]] = []

    async def listener(entry: AuditEntry, until: float | None) -> None:
        heard.append((entry, until))
        raise RuntimeError("log channel gone")

    moderation.on_block = listener
    request = ImageRequest(user_id=7, channel_id=55, prompt="a nude woman", guild_id=100)
    with pytest.raises(ModerationBlocked) as ours:
        await moderation.check(request)
    google = PromptBlocked("PROHIBITED_CONTENT")
    await moderation.record_upstream_block(request, google)

    assert [(e.source, e.category, until) for e, until in heard] == [
        ("bot", "sexual", None),
        ("google", "PROHIBITED_CONTENT", 1_900.0),
    ]
    assert [e.id for e, _ in heard] == [row.id for row in reversed(await moderation.log(100))]
    assert ours.value.cooldown_until is None and google.cooldown_until == 1_900.0
