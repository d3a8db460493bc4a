"""`/imagine`: a prompt in, a picture out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError, user_message
from bot.models import ASPECT_RATIOS, ImageOptions, ImageRequest, RequestKind
from bot.pipeline import Accepted
from cogs.common import role_ids, send_ephemeral
from cogs.jobs import InteractionJob

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

RATIO_NAMES = {
    "1:1": "square",
    "2:3": "portrait",
    "3:2": "landscape",
    "3:4": "portrait",
    "4:3": "landscape",
    "4:5": "portrait",
    "5:4": "landscape",
    "9:16": "tall (phone)",
    "16:9": "wide (screen)",
    "21:9": "ultra-wide",
}
RATIO_CHOICES = [app_commands.Choice(name=f"{ratio} {RATIO_NAMES[ratio]}", value=ratio) for ratio in ASPECT_RATIOS]


class Imagine(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine")
    @app_commands.describe(
        prompt="What to draw, in your own words",
        aspect_ratio="Shape of the picture (default: square)",
    )
    @app_commands.choices(aspect_ratio=RATIO_CHOICES)
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        aspect_ratio: app_commands.Choice[str] | None = None,
    ) -> None:
        """Make a picture from a description with Google's Gemini image model."""
        settings = self.bot.settings
        request = ImageRequest(
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            prompt=prompt,
            kind=RequestKind.IMAGINE,
            options=ImageOptions(aspect_ratio=aspect_ratio.value if aspect_ratio else settings.default_aspect_ratio),
            role_ids=role_ids(interaction.user),
        )
        await run_interaction_request(self.bot, interaction, request)


async def run_interaction_request(bot: ImageBot, interaction: discord.Interaction, request: ImageRequest) -> None:
    """The shared Discord side of every slash-command door: refuse ephemerally, or defer and carry it through."""
    pipeline = bot.services.pipeline
    try:
        accepted = await pipeline.accept(request, key=str(interaction.id))
    except BotError as exc:
        await send_ephemeral(interaction, user_message(exc).text)
        return
    if not await _defer(bot, interaction, accepted):
        return
    job = InteractionJob(interaction, edit_interval=bot.settings.progress_edit_interval_seconds)
    job.start()
    try:
        await pipeline.execute(accepted, job.deliver, job.progress)
    except Exception as exc:  # every ending is told to the user; BotErrors are expected, others are logged
        await job.fail(exc)


async def _defer(bot: ImageBot, interaction: discord.Interaction, accepted: Accepted) -> bool:
    try:
        await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:
        # Too late (more than 3 s) or already answered: nothing reached the user, so nothing is spent.
        log.warning("could not defer interaction %s: %s", interaction.id, exc)
        await bot.services.pipeline.abandon(accepted, "defer-failed")
        return False
    return True


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(Imagine(bot))
