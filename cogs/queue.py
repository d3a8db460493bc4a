"""`/queue`: how busy the image model's line is, privately; with several providers, each provider's own gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.scheduler.gate import SchedulerStats
from bot.scheduler.lanes import LaneReport

if TYPE_CHECKING:
    from bot.app import ImageBot


def queue_text(
    stats: SchedulerStats,
    *,
    rpm: int,
    concurrency: int,
    window: float,
    upstream: str | None = "Google",
    providers: Sequence[LaneReport] = (),
) -> str:
    """`upstream`: the name users read for the only provider (None: several, whose own gates are `providers`)."""
    whose = f"{upstream}'s model" if upstream else "Every provider"
    lines = [
        "**The image model's line**",
        f"• Waiting: {stats.queued} · generating: {stats.in_flight} (at most {concurrency} at once)",
        f"• Started in the last {window:g} s: {stats.starts_in_window} of {rpm} allowed",
    ]
    if stats.circuit == "open" and stats.circuit_until is not None:
        lines.append(f"• 🔌 {whose} kept failing, so nothing is sent until <t:{round(stats.circuit_until)}:R>")
    elif stats.circuit == "half_open":
        checking = f"{upstream}'s model" if upstream else "any provider"
        lines.append(f"• 🔌 Checking whether {checking} works again")
    if stats.paused_until is not None:
        who = upstream or "Every provider"
        lines.append(f"• ⏸️ {who} asked for a pause: nothing starts until <t:{round(stats.paused_until)}:R>")
    if len(providers) > 1:
        lines.append("**Providers, in the order they are tried**")
        lines.extend(provider_line(report, window) for report in providers)
    lines.append("Your own waiting requests show their place in line, and a Cancel button, on their messages.")
    return "\n".join(lines)


def provider_line(report: LaneReport, window: float) -> str:
    """One provider's gate: its starts in the window and requests in flight (against its own limits, if it has
    any), and whether the chain skips it (circuit open, paused after a 429) or is trying it again."""
    stats = report.stats
    started = f"{stats.starts_in_window} started in the last {window:g} s" + (
        f" (of {report.rpm})" if report.rpm is not None else ""
    )
    running = f"{stats.in_flight} generating" + (
        f" (at most {report.concurrency})" if report.concurrency is not None else ""
    )
    if stats.circuit == "open" and stats.circuit_until is not None:
        state = f"🔌 kept failing: skipped until <t:{round(stats.circuit_until)}:R>"
    elif stats.circuit == "half_open":
        state = "🔌 being tried again"
    elif stats.paused_until is not None:
        state = f"⏸️ asked for a pause: skipped until <t:{round(stats.paused_until)}:R>"
    else:
        state = "✅ working"
    return f"• {report.label}: {started} · {running} · {state}"


class QueueCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    async def queue(self, interaction: discord.Interaction) -> None:
        """See how many pictures are waiting for the image model and how busy it is."""
        settings = self.bot.settings
        services = self.bot.services
        only = services.provider.only
        text = queue_text(
            await services.scheduler.current_stats(),
            rpm=settings.upstream_rpm,
            concurrency=settings.upstream_concurrency,
            window=settings.upstream_window_seconds,
            upstream=only[1] if only else None,
            providers=services.provider_gates(),
        )
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(QueueCog(bot))
