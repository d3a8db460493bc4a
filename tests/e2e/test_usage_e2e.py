"""`/usage` end to end: after a scripted day through the real bot (delivered, refunded, blocked by us and by
Google, two models across a restart), what the admin reads, the chart and the CSV all equal what the ledger and
the audit tables hold."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from bot.ops.usage import usage_report
from bot.ops.usage_render import CSV_HEADER, chart_figure, render_png
from tests.e2e.edit_helpers import generations
from tests.fakes.discord import FakeDiscord, Interaction, InteractionRefused, Member
from tests.fakes.gemini import GeminiReply

FLASH, PRO = "gemini-2.5-flash-image", "gemini-3-pro-image"
PRICES = {FLASH: 0.039, PRO: 0.134}
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
    async with run_bot(gemini_max_attempts=1) as bot:
        await ask(fake, bot, "a red fox")
        await ask(fake, bot, "a blue fox")
        await ask(fake, bot, "a green fox")
        await ask(fake, bot, "a fox in a storm", bob)
        await ask(fake, bot, "a gory photo of a decapitated man", bob)
    async with run_bot(gemini_model=PRO, price_per_image_usd=PRICES[PRO]) as bot:
        await ask(fake, bot, "a lighthouse", bob)
    return bob


async def test_usage_equals_the_ledger(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = await scripted_day(fake, run_bot, gemini)
    async with run_bot(gemini_model=PRO, price_per_image_usd=PRICES[PRO]) as bot:
        db = bot.services.db
        ix = await fake.slash("usage", {"period": 1}, user=fake.admin)
        shown = await ix.wait_for_original(lambda m: m.attachments)
        assert shown.ephemeral

        # What the ledger and the audit tables hold, read directly.
        spent = await db.fetchall(
            "SELECT e.user_id, g.model, e.cost_micros FROM quota_entries e JOIN generations g"
            " ON g.id = e.generation_id WHERE e.state = 'committed' AND e.guild_id = ?",
            (fake.guild.id,),
        )
        refunds = dict(
            await db.fetchall("SELECT reason, COUNT(*) FROM quota_entries WHERE state = 'refunded' GROUP BY 1")
        )
        blocks = await db.fetchall("SELECT source, category FROM moderation_log ORDER BY source")
        assert [(row[1], row[2]) for row in spent] == [(FLASH, 39_000), (FLASH, 39_000), (PRO, 134_000)]
        assert refunds == {"UpstreamUnavailable": 1, "ImageBlocked": 1}
        assert [tuple(row) for row in blocks] == [("bot", "gore"), ("google", "IMAGE_SAFETY")]

        embed = shown.embed
        assert embed["title"].startswith("Usage of this server, today")
        assert embed["description"] == "**3 images** · **3 credits** · **$0.212**"
        got = fields(embed)
        assert got["By model"].splitlines() == [
            f"`{PRO}` (gemini): 1 image · 1 credit · $0.134",
            f"`{FLASH}` (gemini): 2 images · 2 credits · $0.078",
        ]
        assert got["Busiest members"].splitlines() == [  # by credits: two cheap images outrank one dear
            f"<@{fake.member.id}>: 2 images · $0.078",
            f"<@{bob.id}>: 1 image · $0.134",
        ]
        assert got["Refunded (2)"].splitlines() == ["ImageBlocked: 1", "UpstreamUnavailable: 1"]
        assert got["Blocked (2)"].splitlines() == ["local · gore: 1", "upstream · IMAGE_SAFETY: 1"]
        assert got["Failed (2)"].splitlines() == ["ImageBlocked: 1", "UpstreamUnavailable: 1"]

        png, table = sorted(shown.attachments, key=lambda a: a.filename.endswith(".csv"))
        assert (
            png.filename == f"usage-{fake.guild.id}-1d.png" and embed["image"]["url"] == f"attachment://{png.filename}"
        )
        with Image.open(io.BytesIO(png.data)) as picture:
            picture.load()
            assert picture.format == "PNG" and picture.size == (1000, 600)
            colours = {colour for _, colour in picture.convert("RGB").getcolors(1_000_000)}
        assert {FIRST_BAR, SECOND_BAR} <= colours  # both models' bars are drawn
        report = await usage_report(db, guild_id=fake.guild.id, days=1, timezone="UTC", now=bot.clock())
        assert png.data == render_png(report)  # the attached chart is this report's ...
        images, cost = chart_figure(report).axes
        assert [len(bars) for bars in images.containers] == [1, 1]  # ... with one bar per model on the day
        assert [bars[0].get_height() for bars in images.containers] == [2, 1]  # Flash, then Pro (name order)

        rows = list(csv.DictReader(io.StringIO(table.data.decode())))
        assert tuple(rows[0]) == CSV_HEADER
        assert [(r["model"], int(r["images"]), float(r["cost_usd"])) for r in rows] == [
            (FLASH, 2, 0.078),
            (PRO, 1, 0.134),
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
