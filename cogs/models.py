"""`/models` for everyone: which models the bot offers, what each size costs (credits and dollars) and what the
member may use here; `/models-admin` for server admins: the server's default model and size, and who may use
which (a rule for everyone, and role rules that add to it, e.g. a role that unlocks Pro and 4K).

The rules and their precedence live in the core (`bot.quota.access`); this cog renders and routes. Admin
changes are audited with the quota changes (`/quota-admin log`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.errors import BotError, InvalidRequest
from bot.models import IMAGE_SIZES
from bot.providers.registry import ModelRegistry, ModelSpec
from bot.quota.access import EVERYONE, ModelAccess, ServerModels
from cogs.imagine import model_choices
from cogs.ui.checks import ManageGuildGroup
from cogs.ui.common import role_ids, send_ephemeral
from cogs.ui.render import clip
from cogs.ui.wording import credits, user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

COLOUR = discord.Colour(0x4285F4)
FIELD_LIMIT = 1024
SIZE_CHOICES = [Choice(name=size, value=size) for size in IMAGE_SIZES]


# --- rendering (pure) ---------------------------------------------------------------------------------------


def price_lines(registry: ModelRegistry, spec: ModelSpec, allowed: tuple[str, ...] | None = None) -> str:
    """ "1K: 1 credit ($0.034) · 2K: 2 credits ($0.050)", sizes this member may not use struck through."""
    parts = []
    for size in spec.sizes:
        text = f"{size}: {credits(registry.credits(spec, size))} (${registry.price_usd(spec, size):.3f})"
        parts.append(text if allowed is None or size in allowed else f"~~{text}~~")
    return " · ".join(parts)


def models_embed(
    registry: ModelRegistry, offered: list[tuple[ModelSpec, tuple[str, ...]]], server: ServerModels | None
) -> discord.Embed:
    """Every model the bot offers, its prices, and what this member may use (struck through: not here)."""
    mine = {spec.id: sizes for spec, sizes in offered}
    embed = discord.Embed(
        title="Image models",
        description=(
            f"One credit is ${registry.credit_usd:.4f}: the price of the cheapest picture of {registry.default.name}. "
            "Pick a model and size in `/imagine`; edits, rerolls and re-renders keep the original's."
        ),
        colour=COLOUR,
    )
    for spec in registry.enabled:
        note = f" · {spec.note}" if spec.note else ""
        ratios = f"{len(spec.ratios)} aspect ratios · up to {spec.max_inputs} input images{note}"
        lines = [price_lines(registry, spec, mine.get(spec.id, ())), ratios]
        if spec.id not in mine:
            lines.append("Not available to you here.")
        embed.add_field(
            name=clip(f"{spec.name} ({spec.id})", 256), value=clip("\n".join(lines), FIELD_LIMIT), inline=False
        )
    default = registry.default.name
    size = None
    if server is not None and server.default_model:
        default = registry.get(server.default_model).name
    if server is not None and server.default_size:
        size = server.default_size
    embed.set_footer(text=f"Default here: {default}" + (f" at {size}" if size else ""))
    return embed


def rule_text(registry: ModelRegistry, models: tuple[str, ...] | None, max_size: str) -> str:
    names = "every model" if models is None else ", ".join(registry.get(m).name for m in models)
    return f"{names} up to {max_size}"


def server_embed(registry: ModelRegistry, server: ServerModels) -> discord.Embed:
    embed = discord.Embed(title="Models in this server", colour=COLOUR)
    default = (
        registry.get(server.default_model).name if server.default_model else f"the bot's ({registry.default.name})"
    )
    embed.add_field(name="Default model", value=default, inline=False)
    embed.add_field(name="Default size", value=server.default_size or "the bot's", inline=False)
    everyone = server.rules.get(EVERYONE)
    embed.add_field(
        name="Everyone may use",
        value=rule_text(registry, everyone.models, everyone.max_size) if everyone else "every model at every size",
        inline=False,
    )
    roles = [
        f"<@&{role}>: also {rule_text(registry, r.models, r.max_size)}" for role, r in server.rules.items() if role
    ]
    embed.add_field(
        name=f"Role tiers ({len(roles)})", value=clip("\n".join(roles), FIELD_LIMIT) or "none", inline=False
    )
    embed.set_footer(text="Members may use what everyone may, plus what any of their roles adds.")
    return embed


def parse_models(text: str | None) -> list[str] | None:
    """`models` as an admin types it: names or ids separated by commas; empty or "all": every model."""
    if text is None or text.strip().lower() in ("", "all", "*"):
        return None
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


# --- the cog ------------------------------------------------------------------------------------------------


class ModelsCog(commands.Cog):
    admin = ManageGuildGroup(name="models-admin", description="Default model and who may use which (Manage Server)")

    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        registry = bot.settings.registry()
        # Per-bot choices, as in /imagine (replacing the cog copy's parameter entries, never mutating them).
        command = self.admin.get_command("default")
        assert isinstance(command, app_commands.Command)
        params = command._params
        params["model"] = dataclasses.replace(
            params["model"], choices=cast("list[Choice[str | int | float]]", model_choices(registry))
        )

    @property
    def access(self) -> ModelAccess:
        return self.bot.services.access

    @app_commands.command(name="models")
    async def models(self, interaction: discord.Interaction) -> None:
        """See the image models, what each size costs in credits, and which ones you may use here."""
        access = self.access
        offered = await access.offer_for(interaction.guild_id, role_ids(interaction.user))
        server = await access.server(interaction.guild_id) if interaction.guild_id else None
        await interaction.response.send_message(embed=models_embed(access.registry, offered, server), ephemeral=True)

    async def _reply(
        self, interaction: discord.Interaction, change: Callable[[], Awaitable[tuple[str, ServerModels]]]
    ) -> None:
        try:
            text, server = await change()
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        embed = server_embed(self.access.registry, server)
        await interaction.response.send_message(text, embed=embed, ephemeral=True)

    @admin.command(name="default")
    @app_commands.describe(
        model="The model members get when they pick none",
        size="The size members get when they pick none (a model without it makes its nearest smaller one)",
        clear="True: use the bot's default model and size again",
    )
    @app_commands.choices(size=SIZE_CHOICES)
    async def default(
        self, interaction: discord.Interaction, model: str | None = None, size: str | None = None, clear: bool = False
    ) -> None:
        """Set this server's default model and size."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id

        async def change() -> tuple[str, ServerModels]:
            if clear and (model or size):
                raise InvalidRequest("Give a `model` and/or `size`, or `clear: True`, not both.")
            if not clear and not (model or size):
                raise InvalidRequest("Give a `model`, a `size`, or both (or `clear: True` for the bot's defaults).")
            server = await self.access.set_default(guild_id, model, size, actor_id=interaction.user.id)
            if clear:
                return "This server uses the bot's default model and size again.", server
            return "The default here is updated: members who pick nothing get it from their next picture.", server

        await self._reply(interaction, change)

    @admin.command(name="access")
    @app_commands.describe(
        max_size="The largest size they may make",
        models='Model names or ids, separated by commas ("all" or empty: every model)',
        role="The role this tier is for (empty: everyone in the server)",
        clear="True: remove this rule (everyone: every model at every size again)",
    )
    @app_commands.choices(max_size=SIZE_CHOICES)
    async def access_(
        self,
        interaction: discord.Interaction,
        max_size: str | None = None,
        models: str | None = None,
        role: discord.Role | None = None,
        clear: bool = False,
    ) -> None:
        """Choose which models and sizes everyone may use here, or what a role adds (e.g. Pro and 4K)."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        role_id = EVERYONE if role is None or role.is_default() else role.id

        async def change() -> tuple[str, ServerModels]:
            if clear == (max_size is not None):
                raise InvalidRequest("Give a `max_size` (and `models` if not all of them), or `clear: True`.")
            wanted = parse_models(models)
            server = await self.access.set_rule(guild_id, role_id, wanted, max_size, actor_id=interaction.user.id)
            whom = "everyone" if role is None or role_id == EVERYONE else role.mention
            if clear:
                return f"Removed the rule for {whom}.", server
            rule = server.rules[role_id]
            what = rule_text(self.access.registry, rule.models, rule.max_size)
            if role_id == EVERYONE:
                return f"Everyone here may use {what}; role tiers add to that.", server
            return f"{whom} may also use {what}.", server

        await self._reply(interaction, change)

    @admin.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """See this server's default model and who may use which."""
        assert interaction.guild_id is not None
        server = await self.access.server(interaction.guild_id)
        embed = server_embed(self.access.registry, server)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(ModelsCog(bot))
