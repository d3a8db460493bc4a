"""`/queue`: how busy the image model's line is, privately."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.scheduler.gate import SchedulerStats

if TYPE_CHECKING:
    from bot.app import ImageBot


def queue_text(stats: SchedulerStats, *, rpm: int, concurrency: int, window: float) -> str:
    lines = [
        "**The image model's line**",
        f"• Waiting: {stats.queued} · generating: {stats.in_flight} (at most {concurrency} at once)",
        f"• Started in the last {window:g} s: {stats.starts_in_window} of {rpm} allowed",
    ]
    if stats.circuit == "open" and stats.circuit_until is not None:
        lines.append(f"• 🔌 Google's model kept failing, so nothing is sent until <t:{round(stats.circuit_until)}:R>")
    elif stats.circuit == "half_open":
        lines.append("• 🔌 Checking whether Google's model works again")
    if stats.paused_until is not None:
        lines.append(f"• ⏸️ Google asked for a pause: nothing starts until <t:{round(stats.paused_until)}:R>")
    lines.append("Your own waiting requests show their place in line, and a Cancel button, on their messages.")
    return "\n".join(lines)


class QueueCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    async def queue(self, interaction: discord.Interaction) -> None:
        """See how many pictures are waiting for the image model and how busy it is."""
        settings = self.bot.settings
        text = queue_text(
            self.bot.services.scheduler.stats(),
            rpm=settings.upstream_rpm,
            concurrency=settings.upstream_concurrency,
            window=settings.upstream_window_seconds,
        )
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(QueueCog(bot))
