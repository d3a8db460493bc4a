"""`/imagine`: a prompt in, a picture out, with the model, size and shape the member picks.

The model, size and aspect-ratio choices are built from the bot's own models (`GEMINI_MODEL`, `GEMINI_MODELS`)
when the extension loads, with what each costs in the choice names; a combination the chosen model lacks (Lite
at 4K, a 4:1 picture from Pro) is refused at once by the core with what is possible, before anything is spent.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.errors import NotHere
from bot.models import ImageOptions, RequestKind
from bot.providers.registry import ModelRegistry
from cogs.ui.common import send_ephemeral
from cogs.ui.flow import interaction_request, run_interaction
from cogs.ui.threads import start_thread
from cogs.ui.wording import credits, user_message

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
    "1:4": "very tall",
    "4:1": "banner",
    "1:8": "tall strip",
    "8:1": "wide strip",
}
SIZE_NAMES = {"512": "small", "1K": "standard", "2K": "sharper", "4K": "sharpest"}
MAX_CHOICES = 25  # Discord's limit per option


def credit_span(low: int, high: int) -> str:
    return credits(low) if low == high else f"{low}–{high} credits"


def model_choices(registry: ModelRegistry) -> list[app_commands.Choice[str]]:
    """Each model the bot offers with what its pictures cost, e.g. "Nano Banana Pro · 4–8 credits"."""
    return [
        app_commands.Choice(name=f"{spec.name} · {credit_span(*registry.credit_range(spec))}"[:100], value=spec.id)
        for spec in registry.enabled[:MAX_CHOICES]
    ]


def size_choices(registry: ModelRegistry) -> list[app_commands.Choice[str]]:
    """Each size some model makes, with what it costs on the default model (or which models make it)."""
    default = registry.default
    found = []
    for size in registry.sizes:
        if size in default.sizes:
            price = f"{credits(registry.credits(default, size))} on {default.name}"
        else:
            price = "on " + ", ".join(m.name for m in registry.enabled if size in m.sizes)
        found.append(app_commands.Choice(name=f"{size} · {SIZE_NAMES[size]} ({price})"[:100], value=size))
    return found


def ratio_choices(registry: ModelRegistry) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=f"{ratio} {RATIO_NAMES.get(ratio, '')}".strip(), value=ratio)
        for ratio in registry.ratios[:MAX_CHOICES]
    ]


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        registry = bot.settings.registry()  # pure: `python -m bot sync` builds the same choices without services
        # discord.py keeps a command's options in `_params`; each cog instance has its own copy of the dict, so
        # replacing entries (never mutating the shared parameter objects) gives this bot its own choices.
        params = self.imagine._params
        for name, choices in (
            ("model", model_choices(registry)),
            ("size", size_choices(registry)),
            ("aspect_ratio", ratio_choices(registry)),
        ):
            params[name] = dataclasses.replace(params[name], choices=cast("list[Choice[str | int | float]]", choices))

    @app_commands.command(name="imagine")
    @app_commands.describe(
        prompt="What to draw, in your own words",
        aspect_ratio="Shape of the picture (default: square)",
        model="Which image model draws it (default: this server's); the price is in the name",
        size="How many pixels (default: this server's); larger costs more credits",
        thread="Open a thread on the picture, where you keep editing it just by writing",
        relax="Half price from your relax allowance: made when Google has room (minutes to hours), posted here",
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        aspect_ratio: str | None = None,
        model: str | None = None,
        size: str | None = None,
        thread: bool = False,
        relax: bool = False,
    ) -> None:
        """Make a picture from a description with Google's Gemini image models."""
        # Relax mode is priced at the Flex tier; the relax lane may make it with Batch, which costs the same.
        options = ImageOptions(aspect_ratio=aspect_ratio, model=model, size=size, tier="flex" if relax else "standard")
        request = interaction_request(interaction, prompt, RequestKind.IMAGINE, options=options)
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
