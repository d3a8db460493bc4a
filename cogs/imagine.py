"""`/imagine`: a prompt in, a picture out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import NotHere
from bot.models import ASPECT_RATIOS, ImageOptions, RequestKind
from cogs.ui.common import send_ephemeral
from cogs.ui.flow import interaction_request, run_interaction
from cogs.ui.threads import start_thread
from cogs.ui.wording import user_message

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


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine")
    @app_commands.describe(
        prompt="What to draw, in your own words",
        aspect_ratio="Shape of the picture (default: square)",
        thread="Open a thread on the picture, where you keep editing it just by writing",
    )
    @app_commands.choices(aspect_ratio=RATIO_CHOICES)
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        aspect_ratio: app_commands.Choice[str] | None = None,
        thread: bool = False,
    ) -> None:
        """Make a picture from a description with Google's Gemini image model."""
        settings = self.bot.settings
        ratio = aspect_ratio.value if aspect_ratio else settings.default_aspect_ratio
        request = interaction_request(
            interaction, prompt, RequestKind.IMAGINE, options=ImageOptions(aspect_ratio=ratio)
        )
        delivery = await run_interaction(self.bot, interaction, request)
        if thread and delivery is not None:
            if (
                interaction.guild_id
                and not (await self.bot.services.server_settings.rules(interaction.guild_id)).threads
            ):
                await send_ephemeral(interaction, user_message(NotHere("thread")).text)
            else:
                await start_thread(self.bot, interaction, delivery)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(ImagineCog(bot))
