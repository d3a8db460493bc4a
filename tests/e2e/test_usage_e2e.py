"""`/usage` end to end: after a scripted day through the real bot (delivered, refunded, blocked by us and by
Google, two models across a restart), what the admin reads, the chart and the CSV all equal what the ledger and
the audit tables hold."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from bot.ops.usage import usage_report
from bot.ops.usage_render import CSV_HEADER, chart_figure, render_png, usd
from tests.e2e.edit_helpers import generations
from tests.fakes.discord import FakeDiscord, Interaction, InteractionRefused, Member
from tests.fakes.gemini import GeminiReply

FLASH, PRO = "gemini-2.5-flash-image", "gemini-3-pro-image"
# matplotlib's first two colours: the stacked bars of the first and second model, in name order.
FIRST_BAR, SECOND_BAR = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)


def fields(embed: dict) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed.get("fields", [])}


async def ask(fake: FakeDiscord, bot, prompt: str, user=None) -> Interaction:
    ix = await fake.slash("imagine", {"prompt": prompt}, user=user or fake.member)
    await ix.wait_until(lambda: ix.original is not None and not ix.original.loading or ix.followups)
    assert await bot.services.pipeline.drain(within=5)
    return ix


async def scripted_day(fake: FakeDiscord, run_bot, gemini) -> Member:
    """Flash: two of the member's images, a failure (refunded), one refused by Google (refunded, logged), one
    blocked by our own filter (never charged). Then the operator switches to Pro and Bob gets one."""
    bob = fake.add_member("bob")
    gemini.enqueue(GeminiReply.image(), GeminiReply.image(), GeminiReply.overloaded(), GeminiReply.image_safety())
    async with run_bot(gemini_model=FLASH, gemini_max_attempts=1) as bot:
        await ask(fake, bot, "a red fox")
        await ask(fake, bot, "a blue fox")
        await ask(fake, bot, "a green fox")
        await ask(fake, bot, "a fox in a storm", bob)
        await ask(fake, bot, "a gory photo of a decapitated man", bob)
    async with run_bot(gemini_model=PRO) as bot:
        await ask(fake, bot, "a lighthouse", bob)
    return bob


def plural(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}"


async def test_usage_equals_the_ledger(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = await scripted_day(fake, run_bot, gemini)
    async with run_bot(gemini_model=PRO) as bot:
        db = bot.services.db
        ix = await fake.slash("usage", {"period": 1}, user=fake.admin)
        shown = await ix.wait_for_original(lambda m: m.attachments)
        assert shown.ephemeral

        # What the ledger and the audit tables hold, read directly: what each delivered image cost, the calls
        # refunded to their member, why, and what those may cost anyway; the blocks.
        spent = await db.fetchall(
            "SELECT e.user_id, g.model, e.credits, e.cost_micros FROM quota_entries e JOIN generations g"
            " ON g.id = e.generation_id WHERE e.state = 'committed' AND e.guild_id = ? ORDER BY e.id",
            (fake.guild.id,),
        )
        refunded = await db.fetchall("SELECT reason, cost_micros FROM quota_entries WHERE state = 'refunded'")
        blocks = await db.fetchall("SELECT source, category FROM moderation_log ORDER BY source")
        assert [(row[0], row[1]) for row in spent] == [(fake.member.id, FLASH), (fake.member.id, FLASH), (bob.id, PRO)]
        assert sorted(row[0] for row in refunded) == ["ImageBlocked", "UpstreamUnavailable"]
        assert [tuple(row) for row in blocks] == [("bot", "gore"), ("google", "IMAGE_SAFETY")]
        flash = [row for row in spent if row[1] == FLASH]
        pro = [row for row in spent if row[1] == PRO]
        billed = sum(row[1] for row in refunded)  # what the refunded calls may cost anyway
        assert billed > 0  # Google answered the refused picture: it may bill it
        total = sum(row[3] for row in spent) + billed

        embed = shown.embed
        assert embed["title"].startswith("Usage of this server, today")
        credits = sum(row[2] for row in spent)
        assert embed["description"].split("\n")[0] == (
            f"**3 images** · **{plural(credits, 'credit')}** · **{usd(total / 1e6)}**"
        )
        got = fields(embed)
        lines = {
            FLASH: f"`{FLASH}` (gemini): 2 images · {plural(sum(r[2] for r in flash), 'credit')} · "
            + usd((sum(r[3] for r in flash) + billed) / 1e6),
            PRO: f"`{PRO}` (gemini): 1 image · {plural(pro[0][2], 'credit')} · {usd(pro[0][3] / 1e6)}",
        }
        assert sorted(got["By model"].splitlines()) == sorted(lines.values())
        members = got["Busiest members"].splitlines()
        assert sorted(members) == sorted(
            [
                f"<@{fake.member.id}>: 2 images · {usd(sum(r[3] for r in flash) / 1e6)}",
                f"<@{bob.id}>: 1 image · {usd((pro[0][3] + billed) / 1e6)}",
            ]
        )
        assert got["Refunded (2)"].splitlines() == ["ImageBlocked: 1", "UpstreamUnavailable: 1"]
        assert got["Blocked (2)"].splitlines() == ["local · gore: 1", "upstream · IMAGE_SAFETY: 1"]
        assert got["Failed (2)"].splitlines() == ["ImageBlocked: 1", "UpstreamUnavailable: 1"]

        png, table = sorted(shown.attachments, key=lambda a: a.filename.endswith(".csv"))
        assert png.filename == f"usage-{fake.guild.id}-1d.png"
        assert embed["image"]["url"] == f"attachment://{png.filename}"
        with Image.open(io.BytesIO(png.data)) as picture:
            picture.load()
            assert picture.format == "PNG" and picture.size == (1000, 600)
            colours = {colour for _, colour in picture.convert("RGB").getcolors(1_000_000)}
        assert {FIRST_BAR, SECOND_BAR} <= colours  # both models' bars are drawn
        report = await usage_report(db, guild_id=fake.guild.id, days=1, timezone="UTC", now=bot.clock())
        assert png.data == render_png(report)  # the attached chart is this report's ...
        images, _ = chart_figure(report).axes
        assert [len(bars) for bars in images.containers] == [1, 1]  # ... with one bar per model on the day
        assert [bars[0].get_height() for bars in images.containers] == [2, 1]  # Flash, then Pro (name order)

        rows = list(csv.DictReader(io.StringIO(table.data.decode())))
        assert tuple(rows[0]) == CSV_HEADER
        assert [(r["model"], int(r["images"]), float(r["cost_usd"])) for r in rows] == [
            (FLASH, 2, pytest.approx((sum(r[3] for r in flash) + billed) / 1e6)),
            (PRO, 1, pytest.approx(pro[0][3] / 1e6)),
        ]


async def test_usage_is_for_admins_and_the_whole_bot_for_its_owner(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot() as bot:
        await ask(fake, bot, "a red fox")
        with pytest.raises(InteractionRefused):  # hidden from members without Manage Server
            await fake.slash("usage", user=fake.member)
        refused = await fake.slash("usage", {"everything": True}, user=fake.admin)
        callback = await refused.wait_for_callback()
        assert "Only the bot's owner" in callback.data["content"] and refused.ephemeral

        ix = await fake.slash("usage", {"period": 7, "everything": True}, user=fake.owner)
        shown = await ix.wait_for_original(lambda m: m.attachments)
        assert shown.embed["title"].startswith("Usage of the whole bot, last 7 days")
        rows = list(
            csv.DictReader(io.StringIO(next(a for a in shown.attachments if a.filename.endswith(".csv")).data.decode()))
        )
        assert len(rows) == 7 and sum(int(r["images"]) for r in rows) == 1  # every day of the week, one image
        assert len(await generations(bot)) == 1
