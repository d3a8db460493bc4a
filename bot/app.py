"""The Discord side's composition root: the Bot subclass that owns the core services and loads the cogs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.services import Services
from cogs.ui.common import send_ephemeral
from cogs.ui.views import PERSISTENT_ITEMS, ResultActions
from cogs.ui.wording import user_message

log = logging.getLogger(__name__)

# Loaded in this order in setup_hook; each module ends with `async def setup(bot)`.
EXTENSIONS: tuple[str, ...] = ("cogs.imagine", "cogs.edit", "cogs.quota", "cogs.moderation", "cogs.queue")


_PERMISSION_NAMES = {
    "manage_guild": "Manage Server",
    "manage_messages": "Manage Messages",
    "administrator": "Administrator",
}


class ImageBot(commands.Bot):
    services: Services
    # The editing cog, which does the work of the buttons under results (set while it is loaded).
    result_actions: ResultActions | None = None

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time, serving: bool = True) -> None:
        """`serving`: this process answers Discord (False for `python -m bot sync`, which only logs in)."""
        intents = discord.Intents.default()
        # Privileged: only asked for when the operator enabled it in the developer portal as well,
        # otherwise Discord refuses the login.
        intents.message_content = settings.message_content_intent
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: the bot has no prefix commands
            intents=intents,
            help_command=None,
            # A prompt can contain "@everyone"; nothing the bot echoes may ping anyone unless said so.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.clock = clock
        self.serving = serving

    async def setup_hook(self) -> None:
        if self.serving:  # `python -m bot sync` only needs the command tree: no database, no HTTP session
            self.services = await Services.start(self.settings, clock=self.clock)
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        self.add_dynamic_items(*PERSISTENT_ITEMS)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.discord_guild_id:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to server %s", len(synced), self.settings.discord_guild_id)

    async def on_message(self, message: discord.Message) -> None:
        # Prefix commands are not used; replies that mention the bot are handled by the editing cog.
        return

    async def on_ready(self) -> None:
        log.info("logged in as %s (id %s) in %d servers", self.user, self.user and self.user.id, len(self.guilds))

    async def close(self) -> None:
        services = getattr(self, "services", None)
        if services is not None:
            # Users still waiting are told while the gateway is still up; then the connections close.
            await services.stop_accepting()
        await super().close()
        if services is not None:
            await services.close()

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Last resort for errors a cog did not answer itself: the user always hears something."""
        original = getattr(error, "original", error)
        if isinstance(error, app_commands.MissingPermissions):
            needed = " and ".join(_PERMISSION_NAMES.get(p, p) for p in error.missing_permissions)
            text = f"🔒 Only members with the {needed} permission can use this command."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You don't have permission to use this command here."
        else:
            log.error("command %s failed", interaction.command and interaction.command.name, exc_info=original)
            text = user_message(original).text
        await send_ephemeral(interaction, text)
