"""`/usage`: what the bot cost a server (or, for the bot's owner, the whole bot) today, over 7 or over 30 days.

The numbers are `bot.ops.usage.usage_report`, read from the ledger and the audit tables (the same report
`python -m bot report` prints): images, credits and cost by model and provider, the busiest members (as mentions,
which Discord shows as names and which ping nobody: the bot sends no mentions), refunds and why, blocks by tier
and category, failures. The chart (daily images and cost, stacked by model) is drawn in a worker thread; the CSV
holds the same daily rows. Everything is ephemeral: usage is the admins' business.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.ops.usage import UsageReport, usage_report
from bot.ops.usage_render import number, render_png, to_csv, usd
from cogs.ui.checks import require_manage_guild
from cogs.ui.render import ACCENT, fit_lines

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

FIELD_LIMIT = 1024  # Discord: embed field value
PERIOD_CHOICES = [
    app_commands.Choice(name="Today", value=1),
    app_commands.Choice(name="Last 7 days", value=7),
    app_commands.Choice(name="Last 30 days", value=30),
]
NO_SERVER = "Use `/usage` in a server you manage (the bot's owner can ask for `everything: True` anywhere)."
OWNER_ONLY = "Only the bot's owner can see the whole bot's usage; without `everything` you see this server's."


def count(n: float, what: str) -> str:
    return f"{number(n)} {what}{'' if n == 1 else 's'}"


def spend_line(images: int, credits: float, cost_usd: float) -> str:
    return f"{count(images, 'image')} · {count(credits, 'credit')} · {usd(cost_usd)}"


def usage_embed(report: UsageReport, chart_name: str) -> discord.Embed:
    p = report.period
    span = p.last_day if p.days == 1 else f"{p.first_day} to {p.last_day}"
    whose = "the whole bot" if report.guild_id is None else "this server"
    summary = (
        f"**{count(report.images, 'image')}** · **{count(report.credits, 'credit')}** · **{usd(report.cost_usd)}**"
    )
    if report.billed_failures:
        failed = count(report.billed_failures, "failed call")
        summary += f"\nThe cost includes {failed} the provider may bill (members were not charged for them)"
    if report.checks:
        summary += f"\nand {count(report.checks, 'call')} of the moderation model"
    if report.held:
        summary += f" · {report.held} being made now"
    embed = discord.Embed(title=f"Usage of {whose}, {p.label} ({span})", description=summary, colour=ACCENT)
    sections = (
        (
            "By model",
            [
                f"`{m.model}`"
                + (f" ({m.provider})" if m.provider else "")
                + f": {spend_line(m.images, m.credits, m.cost_usd)}"
                for m in report.by_model
            ],
        ),
        (
            "Busiest members",
            [f"<@{m.user_id}>: {count(m.images, 'image')} · {usd(m.cost_usd)}" for m in report.busiest],
        ),
        (f"Refunded ({report.refunded})", [f"{r.reason}: {r.count}" for r in report.refunds]),
        (f"Blocked ({report.blocked})", [f"{b.tier} · {b.category}: {b.count}" for b in report.blocks]),
        (f"Failed ({report.failed})", [f"{f.reason}: {f.count}" for f in report.failures]),
    )
    for name, lines in sections:
        embed.add_field(name=name, value=fit_lines(lines, FIELD_LIMIT) if lines else "none", inline=False)
    embed.set_image(url=f"attachment://{chart_name}")
    embed.set_footer(text="Images delivered (refunded requests cost nothing); cost as committed in the ledger.")
    return embed


def file_stem(report: UsageReport) -> str:
    return f"usage-{'all' if report.guild_id is None else report.guild_id}-{report.period.days}d"


class UsageCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage")
    @app_commands.describe(
        period="How far back to look (default: the last 7 days)",
        everything="The whole bot, every server and DMs (the bot's owner only)",
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    @app_commands.default_permissions(manage_guild=True)
    async def usage(
        self,
        interaction: discord.Interaction,
        period: app_commands.Choice[int] | None = None,
        everything: bool = False,
    ) -> None:
        """See images, credits and cost by model, the busiest members, refunds, blocks and failures, with a chart."""
        owner = await self.bot.is_owner(interaction.user)
        if everything and not owner:
            await interaction.response.send_message(OWNER_ONLY, ephemeral=True)
            return
        if interaction.guild_id is None and not owner:
            await interaction.response.send_message(NO_SERVER, ephemeral=True)
            return
        if not (everything or interaction.guild_id is None or owner):
            require_manage_guild(interaction)  # raises MissingPermissions, answered by the tree's error handler
        guild_id = None if everything or interaction.guild_id is None else interaction.guild_id
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        await services.quota.drain()  # what was just delivered is in the numbers
        report = await usage_report(
            services.db,
            guild_id=guild_id,
            days=period.value if period else 7,
            timezone=self.bot.settings.quota_timezone,
            now=self.bot.clock(),
        )
        # Drawing takes tens of milliseconds: never on the event loop.
        chart = await asyncio.to_thread(render_png, report)
        stem = file_stem(report)
        files = [
            discord.File(io.BytesIO(chart), filename=f"{stem}.png"),
            discord.File(io.BytesIO(to_csv(report).encode()), filename=f"{stem}.csv"),
        ]
        await interaction.followup.send(embed=usage_embed(report, f"{stem}.png"), files=files, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(UsageCog(bot))
