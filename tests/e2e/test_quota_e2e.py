"""Quotas end to end: the real bot between the fake Discord and the fake Gemini.

A member's limit must hold (nothing reaches Google past it), failures must cost nothing and say so, `/quota`
must show exactly what the ledger decides with (the same line as under each image), and `/quota-admin` must be
usable by server admins only, change the very next request and answer with the state it left.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from bot.app import ImageBot
from bot.models import GeneratedImage, ImageRequest
from bot.pipeline import Delivery
from bot.quota.ledger import QuotaLedger
from cogs.ui.render import quota_line
from cogs.ui.wording import footer_text
from tests.fakes.discord import FakeDiscord, Interaction, InteractionRefused, Member, User
from tests.fakes.discord_state import FLAG_EPHEMERAL, MANAGE_GUILD
from tests.fakes.gemini import GeminiReply

BUDGET = "This server's daily image budget is used up"


def fields(embed: dict) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed.get("fields", [])}


async def quota(fake: FakeDiscord, user: Member | User | None = None, **where) -> dict:
    """`/quota` as `user` (default the member): its one ephemeral embed."""
    ix = await fake.slash("quota", user=user or fake.member, **where)
    callback = await ix.wait_for_callback()
    assert callback.data["flags"] & FLAG_EPHEMERAL, callback.data
    (embed,) = callback.data["embeds"]
    return embed


def headline(embed: dict) -> str:
    return embed["description"].split("\n")[0]


async def admin(fake: FakeDiscord, command: str, *, by: Member | User | None = None, **options) -> dict:
    """`/quota-admin <command>` as the server admin (or `by`): the ephemeral answer."""
    ix = await fake.slash(f"quota-admin {command}", options, user=by or fake.admin)
    callback = await ix.wait_for_callback()
    assert callback.data["flags"] & FLAG_EPHEMERAL, callback.data
    return callback.data


async def imagine(fake: FakeDiscord, user: Member | None = None, prompt: str = "a red fox") -> Interaction:
    return await fake.slash("imagine", {"prompt": prompt}, user=user or fake.member)


async def image_line(bot, fake: FakeDiscord, user: Member | None = None) -> str:
    """The quota line under a delivered image after what it cost ("1 credit · "), checked against the ledger once
    the request has ended."""
    ix = await imagine(fake, user)
    result = await ix.wait_for_original(lambda m: m.attachments)
    assert await bot.services.pipeline.drain(within=5)
    who = user or fake.member
    status = await bot.services.quota.status(who.id, fake.guild.id, [fake.guild.id, *(r.id for r in who.roles)])
    # What the image says is what the ledger holds afterwards.
    assert result.content == f"1 credit · {footer_text(status)}"
    return result.content.removeprefix("1 credit · ")


async def real_cost(bot: ImageBot) -> float:
    """What the delivered pictures really cost, as recorded with each generation (from Google's usage)."""
    row = await bot.services.db.fetchone("SELECT TOTAL(cost_micros) FROM generations WHERE status = 'delivered'")
    return row[0] / 1_000_000


async def refusal(ix: Interaction) -> str:
    callback = await ix.wait_for_callback()
    assert ix.ephemeral, callback.data
    return callback.data["content"]


async def test_a_limit_of_two_gives_two_images_then_a_clear_refusal(run_bot, fake_discord, gemini):
    async with run_bot(daily_quota=2) as bot:
        assert headline(await quota(fake_discord)).startswith("**2 of 2 left today · resets <t:")
        assert (await image_line(bot, fake_discord)).startswith("1 of 2 left today")
        assert (await image_line(bot, fake_discord)).startswith("0 of 2 left today")

        text = await refusal(await imagine(fake_discord))
        assert "You've used all 2 of your credits for today" in text and "resets <t:" in text
        assert len(gemini.requests) == 2

        embed = await quota(fake_discord)
        got = fields(embed)
        assert (got["Used"], got["In progress"], got["Left"]) == ("2", "0", "0")
        assert got["Daily limit"] == "2 credits a day · global default"
        assert headline(embed).startswith("**0 of 2 left today")


async def test_quota_shows_the_reset_as_an_absolute_and_a_relative_time(run_bot, fake_discord):
    async with run_bot(quota_timezone="Asia/Tokyo") as bot:
        embed = await quota(fake_discord)
        reset = int(bot.services.quota.days.next_reset(time.time()))
        assert fields(embed)["Resets"] == f"<t:{reset}:f> (<t:{reset}:R>)"
        assert embed["footer"]["text"].endswith("(Asia/Tokyo)")


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param([GeminiReply.overloaded()] * 3, id="overloaded"),
        pytest.param([GeminiReply.api_key_invalid()], id="bad-key"),
    ],
)
async def test_an_upstream_failure_leaves_quota_unchanged_and_says_so(run_bot, fake_discord, gemini, replies):
    gemini.enqueue(*replies)
    async with run_bot(daily_quota=3, gemini_max_attempts=3) as bot:
        before = await quota(fake_discord)
        told = await (await imagine(fake_discord)).wait_for_followup()
        assert told.ephemeral and "Your quota was not charged." in told.content
        assert await bot.services.pipeline.drain(within=5)

        after = await quota(fake_discord)
        assert headline(after) == headline(before) and headline(after).startswith("**3 of 3 left today")
        got = fields(after)
        assert (got["Used"], got["In progress"], got["Left"]) == ("0", "0", "3")
        assert got["Refunded today"].startswith("1 ")
        assert len(gemini.requests) == len(replies)  # the failure did reach Google: it was refunded, not skipped


async def test_a_member_without_manage_server_cannot_use_quota_admin_even_when_forced(run_bot, fake_discord):
    async with run_bot() as bot:
        (command,) = [c for c in fake_discord.commands[fake_discord.guild.id] if c["name"] == "quota-admin"]
        assert int(command["default_member_permissions"]) == MANAGE_GUILD
        with pytest.raises(InteractionRefused):  # hidden from the member's client
            await fake_discord.slash("quota-admin show", {"user": fake_discord.member}, user=fake_discord.member)

        # A server admin can grant the command to everyone in Integrations; the bot still refuses.
        del command["default_member_permissions"]
        member = fake_discord.member
        for sub, options in [
            ("set", {"user": member, "limit": 1000}),
            ("grant", {"user": member, "amount": 50}),
            ("default", {"limit": -1}),
            ("spend", {}),
        ]:
            ix = await fake_discord.slash(f"quota-admin {sub}", options, user=member)
            assert "Manage Server" in await refusal(ix)
        assert await bot.services.quota.audit_log(fake_discord.guild.id) == []
        assert headline(await quota(fake_discord)).startswith("**10 of 10 left today")


async def test_an_admins_set_shows_in_the_members_quota_and_clear_removes_it(run_bot, fake_discord):
    member = fake_discord.member
    # Admins may set unlimited, and no bot-wide cap per member shows through it.
    async with run_bot(max_admin_limit=-1, user_global_daily_credits=-1) as bot:
        answer = await admin(fake_discord, "set", user=member, limit=3)
        assert answer["content"] == f"{member.mention}'s daily limit here is now 3 credits a day."
        (embed,) = answer["embeds"]
        assert fields(embed)["Daily limit"] == "3 credits a day · user override" and member.name in embed["title"]

        embed = await quota(fake_discord)
        assert headline(embed).startswith("**3 of 3 left today")
        assert fields(embed)["Daily limit"] == "3 credits a day · user override"
        assert (await image_line(bot, fake_discord)).startswith("2 of 3 left today")

        answer = await admin(fake_discord, "set", user=member, limit=-1)
        assert fields(answer["embeds"][0])["Left"] == "unlimited"
        assert (await image_line(bot, fake_discord)).startswith("No daily limit · resets <t:")

        answer = await admin(fake_discord, "set", user=member, clear=True)
        assert "Removed" in answer["content"]
        embed = await quota(fake_discord)
        assert fields(embed)["Daily limit"] == "10 credits a day · global default" and fields(embed)["Used"] == "2"

        log = (await admin(fake_discord, "log"))["embeds"][0]["description"].split("\n")
        actor = fake_discord.admin.mention
        assert log[0].endswith(f"{actor} removed {member.mention}'s own limit")
        assert log[1].endswith(f"{actor} set {member.mention}'s limit to unlimited")
        assert log[2].endswith(f"{actor} set {member.mention}'s limit to 3 credits a day")


@pytest.mark.parametrize(
    "command,options,words",
    [
        pytest.param("set", {"limit": 100_001}, "between 0 and 100000, or -1 for unlimited", id="too-high"),
        pytest.param("set", {"limit": -2}, "between 0 and 100000, or -1 for unlimited", id="below-unlimited"),
        pytest.param("set", {}, "Give a `limit`", id="no-value"),
        pytest.param("set", {"limit": 5, "clear": True}, "not both", id="both"),
        pytest.param("grant", {"amount": 0}, "A grant must be between 1 and 100000", id="zero-grant"),
        pytest.param("grant", {"amount": -3}, "A grant must be between 1 and 100000", id="negative-grant"),
        pytest.param("default", {"limit": 10**9}, "between 0 and 100000", id="default-too-high"),
        pytest.param("default", {}, "or `clear: True` to remove the server default", id="default-no-value"),
    ],
)
async def test_bad_values_are_refused_with_a_clear_message_and_change_nothing(
    run_bot, fake_discord, command, options, words
):
    if command != "default":
        options = {"user": fake_discord.member, **options}
    async with run_bot(max_admin_limit=-1) as bot:  # no operator cap: the bot's own bounds (see the cap's test)
        answer = await admin(fake_discord, command, **options)
        assert words in answer["content"] and not answer.get("embeds")
        assert await bot.services.quota.audit_log(fake_discord.guild.id) == []
        assert headline(await quota(fake_discord)).startswith("**10 of 10 left today")


async def test_a_role_limit_applies_to_members_with_the_role_and_the_most_generous_wins(run_bot, fake_discord):
    artists = fake_discord.add_role("Artists")
    guests = fake_discord.add_role("Guests")
    bob = fake_discord.add_member("bob", roles=[artists, guests])
    async with run_bot(daily_quota=2) as bot:
        answer = await admin(fake_discord, "role", role=guests, limit=1)
        answer = await admin(fake_discord, "role", role=artists, limit=5)
        assert answer["content"] == f"{artists.mention}'s daily limit is now 5 credits a day."
        roles = fields(answer["embeds"][0])["Role limits (2)"].split("\n")
        assert sorted(roles) == sorted([f"{artists.mention}: 5 credits a day", f"{guests.mention}: 1 credit a day"])

        embed = await quota(fake_discord, bob)
        assert headline(embed).startswith("**5 of 5 left today")
        assert fields(embed)["Daily limit"] == f"5 credits a day · role {artists.mention}"
        assert (await image_line(bot, fake_discord, bob)).startswith("4 of 5 left today")
        shown = await admin(fake_discord, "show", user=bob)
        assert fields(shown["embeds"][0])["Daily limit"] == f"5 credits a day · role {artists.mention}"
        # Members without the role keep the default.
        assert fields(await quota(fake_discord))["Daily limit"] == "2 credits a day · global default"

        await admin(fake_discord, "role", role=artists, clear=True)
        assert fields(await quota(fake_discord, bob))["Daily limit"] == f"1 credit a day · role {guests.mention}"


async def test_everyone_cannot_get_a_role_limit(run_bot, fake_discord):
    async with run_bot() as bot:
        answer = await admin(fake_discord, "role", role=fake_discord.guild.everyone, limit=50)
        assert "use `/quota-admin default`" in answer["content"]
        assert await bot.services.quota.audit_log(fake_discord.guild.id) == []


async def test_a_grant_adds_for_today_only(fake_discord, settings_for, gemini):
    shift = [0.0]
    bot = ImageBot(settings_for(fake_discord, daily_quota=1), clock=lambda: time.time() + shift[0])
    member = fake_discord.member
    async with fake_discord.running(bot):
        await image_line(bot, fake_discord)
        assert "used all 1" in await refusal(await imagine(fake_discord))

        answer = await admin(fake_discord, "grant", user=member, amount=2)
        assert answer["content"] == f"Granted {member.mention} 2 more credits for today."
        assert fields(answer["embeds"][0])["Left"] == "2"
        embed = await quota(fake_discord)
        assert fields(embed)["Daily limit"] == "1 credit a day · global default + 2 granted today"
        assert headline(embed).startswith("**2 of 3 left today")
        assert (await image_line(bot, fake_discord)).startswith("1 of 3 left today")

        # Past midnight in the quota time zone the grant is gone and the day starts afresh.
        shift[0] = bot.services.quota.days.next_reset(time.time()) - time.time() + 1
        embed = await quota(fake_discord)
        assert headline(embed).startswith("**1 of 1 left today")
        assert fields(embed)["Daily limit"] == "1 credit a day · global default"
        assert len(gemini.requests) == 2


async def test_reset_gives_the_day_back_but_spend_still_counts(run_bot, fake_discord, gemini):
    member = fake_discord.member
    async with run_bot(daily_quota=1) as bot:
        await image_line(bot, fake_discord)
        assert "used all 1" in await refusal(await imagine(fake_discord))

        answer = await admin(fake_discord, "reset", user=member)
        assert "no longer count against them" in answer["content"]
        got = fields(answer["embeds"][0])
        assert (got["Used"], got["Left"]) == ("0", "1")
        assert (await image_line(bot, fake_discord)).startswith("0 of 1 left today")

        spend = fields((await admin(fake_discord, "spend"))["embeds"][0])
        cost = await real_cost(bot)
        assert spend["This server"].splitlines() == [  # the total, then where it went (the forgiven one too)
            f"2 images of 200 · ${cost:.3f} of $5.00",
            f"• Google · Nano Banana 2.1: 2 pictures · ${cost:.4f}",
        ]
        log = (await admin(fake_discord, "log", limit=1))["embeds"][0]["description"]
        assert log.endswith(f"reset {member.mention}'s day (1 forgiven)")
        assert len(gemini.requests) == 2


async def test_the_server_default_applies_below_overrides_and_roles(run_bot, fake_discord):
    vip = fake_discord.add_role("VIP")
    bob = fake_discord.add_member("bob", roles=[vip])
    async with run_bot(max_admin_limit=-1) as bot:  # admins may set unlimited
        await admin(fake_discord, "role", role=vip, limit=-1)
        answer = await admin(fake_discord, "default", limit=4)
        assert answer["content"] == "The server default is now 4 credits a day."
        (embed,) = answer["embeds"]
        assert fields(embed)["Default limit"] == "4 credits a day · server default"

        assert fields(await quota(fake_discord))["Daily limit"] == "4 credits a day · server default"
        assert fields(await quota(fake_discord, bob))["Daily limit"] == f"unlimited · role {vip.mention}"
        await admin(fake_discord, "set", user=fake_discord.member, limit=1)
        assert (await image_line(bot, fake_discord)).startswith("0 of 1 left today")

        answer = await admin(fake_discord, "default", clear=True)
        assert fields(answer["embeds"][0])["Default limit"] == "10 credits a day · global default"
        await admin(fake_discord, "set", user=fake_discord.member, clear=True)
        assert headline(await quota(fake_discord)).startswith("**9 of 10 left today")


async def test_a_server_spending_cap_is_the_servers_budget_not_the_users_quota(run_bot, fake_discord, gemini):
    async with run_bot(daily_quota=5, server_daily_image_cap=1) as bot:
        await image_line(bot, fake_discord)
        text = await refusal(await imagine(fake_discord, fake_discord.admin))
        assert BUDGET in text and "not your personal quota" in text and "used all" not in text
        assert len(gemini.requests) == 1

        embed = await quota(fake_discord)
        assert headline(embed).startswith("**4 of 5 left today")
        assert BUDGET in embed["description"]

        spend = (await admin(fake_discord, "spend"))["embeds"][0]
        cost = await real_cost(bot)  # Google's token counts at the price table's rates
        assert fields(spend)["This server"].splitlines()[0] == f"1 image of 1 · ${cost:.3f} of $5.00 · ⚠️ cap reached"
        assert "The whole bot" not in fields(spend)  # other servers' spending is the operator's business
        spend = (await admin(fake_discord, "spend", by=fake_discord.owner))["embeds"][0]
        assert fields(spend)["The whole bot"].splitlines() == [
            f"1 image of 500 · ${cost:.3f} of $20.00",
            f"• Google · Nano Banana 2.1: 1 picture · ${cost:.4f}",
        ]


async def test_a_global_cost_cap_is_the_bots_budget_not_the_users_quota(run_bot, fake_discord, gemini):
    prices = {"model_prices": "gemini-nano-banana-2.1:1K=0.05", "credit_usd": 0.05}  # $0.05 a picture
    async with run_bot(daily_quota=5, global_daily_cost_cap_usd=0.12, **prices) as bot:
        await image_line(bot, fake_discord)
        await image_line(bot, fake_discord)  # $0.10 spent; one more would pass $0.12
        text = await refusal(await imagine(fake_discord, fake_discord.admin))
        assert "The bot's daily image budget is used up" in text and "not your personal quota" in text
        spend = await bot.services.quota.spend(None)
        assert (spend.images, round(spend.cost_usd, 2)) == (2, 0.1)
        assert len(gemini.requests) == 2


async def test_quota_in_a_dm_shows_the_bots_own_limit(run_bot, fake_discord):
    async with run_bot(discord_guild_id=None, daily_quota=7) as bot:
        await bot.tree.sync()  # global commands, as `python -m bot sync` does
        embed = await quota(fake_discord, channel=fake_discord.dm(fake_discord.member))
        assert headline(embed).startswith("**7 of 7 left today")
        assert "Outside servers the bot's own limit applies" in embed["description"]
        assert fields(embed)["Daily limit"] == "7 credits a day · global default"


async def test_the_line_under_an_image_can_follow_the_ledger_at_delivery(db):
    """Two requests held at once: the reservation alone still counts the other as free, `/quota` does not."""
    ledger = QuotaLedger(db, daily_quota=3)
    request = ImageRequest(user_id=1, channel_id=2, prompt="a fox", guild_id=9)
    first, _second = await ledger.reserve(request), await ledger.reserve(request)
    delivery = Delivery(1, request, GeneratedImage(b"", "image/png", "m"), first, 0)

    status = await ledger.status(1, 9)
    assert quota_line(first).startswith("1 credit · 2 of 3 left") and footer_text(status).startswith("1 of 3 left")
    fresh = dataclasses.replace(delivery, reservation=await ledger.current(first, request))
    assert quota_line(fresh.reservation) == f"1 credit · {footer_text(status)}"
    assert fresh.reservation.id == first.id  # the same unit is committed or refunded


async def test_two_requests_at_once_both_carry_the_ledgers_count(run_bot, fake_discord, gemini):
    gemini.latency = 0.2  # both hold a unit before either is delivered
    async with run_bot(daily_quota=3):
        first, second = await imagine(fake_discord), await imagine(fake_discord)
        for ix in (first, second):
            result = await ix.wait_for_original(lambda m: m.attachments)
            assert result.content.startswith("1 credit · 1 of 3 left today")
