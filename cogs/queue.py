"""`/queue`: how busy the image model's line is, privately; and the relax lane's jobs with their age, the
member's own ones by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.relax import RelaxJobInfo
from bot.scheduler.gate import SchedulerStats
from cogs.ui.render import clip
from cogs.ui.wording import escape

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


STAGES = {
    "queued": "in the relax line",
    "flex": "at Google's Flex tier",
    "submitting": "being sent to Google's batch queue",
    "batch": "in Google's batch queue",
}
MAX_OWN_JOBS = 5


def relax_text(jobs: list[RelaxJobInfo], user_id: int, *, concurrency: int) -> str:
    """The relax lane: how many jobs wait where, the oldest one's age, and the member's own jobs."""
    counts = {stage: sum(1 for job in jobs if job.stage == stage) for stage in STAGES}
    lines = [
        "**The relax lane** (half price: Google makes these when it has room)",
        f"• {len(jobs)} relax request{'s' if len(jobs) != 1 else ''}: {counts['queued']} in line · "
        f"{counts['flex']} at Flex (at most {concurrency} at once) · {counts['batch'] + counts['submitting']} in "
        "Google's batch queue",
    ]
    if jobs:
        lines.append(f"• The oldest was asked for <t:{round(jobs[0].created_at)}:R>")
    mine = [job for job in jobs if job.user_id == user_id]
    for job in mine[:MAX_OWN_JOBS]:
        # The member's prompt on one line, shown as typed: nothing in it may turn into markup or a masked link.
        prompt = escape(clip(" ".join(job.prompt.split()), 60))
        lines.append(f"• Yours: “{prompt}” — {STAGES[job.stage]}, asked <t:{round(job.created_at)}:R>")
    if len(mine) > MAX_OWN_JOBS:
        lines.append(f"• … and {len(mine) - MAX_OWN_JOBS} more of yours")
    return "\n".join(lines)


class QueueCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    async def queue(self, interaction: discord.Interaction) -> None:
        """See how many pictures are waiting for the image model and how busy it is."""
        settings = self.bot.settings
        services = self.bot.services
        text = queue_text(
            services.scheduler.stats(),
            rpm=settings.upstream_rpm,
            concurrency=settings.upstream_concurrency,
            window=settings.upstream_window_seconds,
        )
        jobs = services.relax.jobs()
        if jobs or services.relax.upstream is not None and settings.relax_daily_quota != 0:
            text += "\n\n" + relax_text(jobs, interaction.user.id, concurrency=settings.relax_concurrency)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(QueueCog(bot))
