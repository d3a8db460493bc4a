"""`/settings` (Manage Server): where the bot may be used in this server, who may make images, and where budget
alerts go, shown and changed in one ephemeral message with selects and buttons.

The rules (`bot.ops.access`) apply to every door: slash commands, the Edit menu, buttons under pictures, replies,
mentions and thread messages. Discord's own Server Settings → Integrations page can additionally hide the slash
commands per channel and role; it cannot reach replies, mentions or buttons, which is why the bot has these.
Every change is stored at once (`bot.ops.server_settings`) and the message shows the rules as they now stand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.ops.access import MAX_ENTRIES, ServerRules
from cogs.ui.checks import manage_guild_only
from cogs.ui.common import send_ephemeral
from cogs.ui.render import ACCENT
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

VIEW_SECONDS = 14 * 60  # an ephemeral message can be edited for 15 minutes
PLACE_TYPES = [
    discord.ChannelType.text,
    discord.ChannelType.news,
    discord.ChannelType.forum,
    discord.ChannelType.voice,
    discord.ChannelType.category,
]
INTEGRATIONS = (
    "Slash commands also follow Discord's own settings: Server Settings → Integrations → this bot, where each "
    "command can be limited to channels and roles."
)
NOT_ADMIN = "🔒 Only members with the Manage Server permission can change these settings."


def _list(ids: Sequence[int], mention: str, empty: str) -> str:
    return ", ".join(mention.format(i) for i in ids) if ids else empty


def settings_embed(rules: ServerRules, *, allow_dms: bool) -> discord.Embed:
    embed = discord.Embed(title="Where the bot may be used here", colour=ACCENT, description=INTEGRATIONS)
    embed.add_field(name="Channels", value=_list(rules.allowed, "<#{}>", "every channel"), inline=False)
    embed.add_field(name="Never in", value=_list(rules.denied, "<#{}>", "nowhere excluded"), inline=False)
    embed.add_field(name="Who may make images", value=_list(rules.roles, "<@&{}>", "everyone"), inline=False)
    embed.add_field(name="Threads", value="allowed" if rules.threads else "not allowed", inline=True)
    embed.add_field(
        name="Messages in closed places",
        value="answered with the rule" if rules.explain else "ignored",
        inline=True,
    )
    embed.add_field(
        name="Budget alerts (80 % and 100 % of a daily cap)",
        value=f"<#{rules.alert_channel_id}>" if rules.alert_channel_id else "not posted",
        inline=False,
    )
    embed.set_footer(
        text="A category covers its channels; a thread follows its channel. Direct messages with the bot are "
        + ("open (the operator's ALLOW_DMS)." if allow_dms else "closed by the operator (ALLOW_DMS).")
    )
    return embed


def _ids(values: Iterable[Any]) -> tuple[int, ...]:
    # Resolved channels and roles, or their ids if Discord sent none.
    return tuple(int(getattr(value, "id", value)) for value in values)


class SettingsView(discord.ui.View):
    def __init__(self, bot: ImageBot, rules: ServerRules) -> None:
        super().__init__(timeout=VIEW_SECONDS)
        self.bot = bot
        self.rules = rules
        places = [discord.Object(id=i) for i in rules.allowed]
        self.allowed: discord.ui.ChannelSelect[SettingsView] = discord.ui.ChannelSelect(
            custom_id="settings:allowed",
            placeholder="Only in these channels or categories (none: everywhere)",
            channel_types=PLACE_TYPES,
            min_values=0,
            max_values=MAX_ENTRIES,
            default_values=places,
            row=0,
        )
        self.denied: discord.ui.ChannelSelect[SettingsView] = discord.ui.ChannelSelect(
            custom_id="settings:denied",
            placeholder="Never in these channels or categories",
            channel_types=PLACE_TYPES,
            min_values=0,
            max_values=MAX_ENTRIES,
            default_values=[discord.Object(id=i) for i in rules.denied],
            row=1,
        )
        self.roles: discord.ui.RoleSelect[SettingsView] = discord.ui.RoleSelect(
            custom_id="settings:roles",
            placeholder="Only members with one of these roles (none: everyone)",
            min_values=0,
            max_values=MAX_ENTRIES,
            default_values=[discord.Object(id=i) for i in rules.roles],
            row=2,
        )
        alert = [discord.Object(id=rules.alert_channel_id)] if rules.alert_channel_id else []
        self.alerts: discord.ui.ChannelSelect[SettingsView] = discord.ui.ChannelSelect(
            custom_id="settings:alerts",
            placeholder="Post budget alerts in… (none: not posted)",
            channel_types=[discord.ChannelType.text, discord.ChannelType.news],
            min_values=0,
            max_values=1,
            default_values=alert,
            row=3,
        )
        self.allowed.callback = self._on_allowed  # type: ignore[method-assign]
        self.denied.callback = self._on_denied  # type: ignore[method-assign]
        self.roles.callback = self._on_roles  # type: ignore[method-assign]
        self.alerts.callback = self._on_alerts  # type: ignore[method-assign]
        for item in (self.allowed, self.denied, self.roles, self.alerts):
            self.add_item(item)
        self.threads.label = "Threads: allowed" if rules.threads else "Threads: not allowed"
        self.explain.label = "Closed places: answer" if rules.explain else "Closed places: ignore"

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        permissions = interaction.permissions
        if permissions.manage_guild or permissions.administrator:
            return True
        await send_ephemeral(interaction, NOT_ADMIN)
        return False

    async def _current(self, interaction: discord.Interaction) -> ServerRules:
        """As stored now: another admin may have changed them since this message was drawn."""
        assert interaction.guild_id is not None
        return await self.bot.services.server_settings.rules(interaction.guild_id)

    async def _apply(self, interaction: discord.Interaction, **changes: Any) -> None:
        assert interaction.guild_id is not None
        store = self.bot.services.server_settings
        rules = await store.update(interaction.guild_id, by=interaction.user.id, **changes)
        self.stop()
        await interaction.response.edit_message(
            embed=settings_embed(rules, allow_dms=store.allow_dms), view=SettingsView(self.bot, rules)
        )

    async def _on_allowed(self, interaction: discord.Interaction) -> None:
        await self._apply(interaction, allowed=_ids(self.allowed.values))

    async def _on_denied(self, interaction: discord.Interaction) -> None:
        await self._apply(interaction, denied=_ids(self.denied.values))

    async def _on_roles(self, interaction: discord.Interaction) -> None:
        await self._apply(interaction, roles=_ids(self.roles.values))

    async def _on_alerts(self, interaction: discord.Interaction) -> None:
        chosen = _ids(self.alerts.values)
        await self._apply(interaction, alert_channel_id=chosen[0] if chosen else None)

    @discord.ui.button(custom_id="settings:threads", style=discord.ButtonStyle.secondary, row=4)
    async def threads(self, interaction: discord.Interaction, button: discord.ui.Button[SettingsView]) -> None:
        await self._apply(interaction, threads=not (await self._current(interaction)).threads)

    @discord.ui.button(custom_id="settings:explain", style=discord.ButtonStyle.secondary, row=4)
    async def explain(self, interaction: discord.Interaction, button: discord.ui.Button[SettingsView]) -> None:
        await self._apply(interaction, explain=not (await self._current(interaction)).explain)

    @discord.ui.button(custom_id="settings:reset", label="Open everywhere", style=discord.ButtonStyle.danger, row=4)
    async def reset(self, interaction: discord.Interaction, button: discord.ui.Button[SettingsView]) -> None:
        await self._apply(interaction, allowed=(), denied=(), roles=(), threads=True, explain=False)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[SettingsView]
    ) -> None:
        log.error("settings change failed", exc_info=error)
        await send_ephemeral(interaction, user_message(error).text)


class SettingsCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @manage_guild_only()
    @app_commands.command(name="settings")
    async def settings(self, interaction: discord.Interaction) -> None:
        """Choose where the bot may be used here, who may make images, and where budget alerts go."""
        assert interaction.guild_id is not None
        store = self.bot.services.server_settings
        rules = await store.rules(interaction.guild_id)
        await interaction.response.send_message(
            embed=settings_embed(rules, allow_dms=store.allow_dms), view=SettingsView(self.bot, rules), ephemeral=True
        )


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(SettingsCog(bot))
