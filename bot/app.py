"""The Discord side's composition root: the Bot subclass that owns the core services and loads the cogs."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.ops.health import HealthServer, rate_limit_trace, readiness_checks
from bot.ops.periodic import Periodic
from bot.services import Services, build_metrics
from cogs.ui.alerts import BudgetWatch
from cogs.ui.common import send_ephemeral
from cogs.ui.lanes import ChannelLanes
from cogs.ui.relax import OfferBook
from cogs.ui.views import PERSISTENT_ITEMS, ResultActions
from cogs.ui.wording import user_message

log = logging.getLogger(__name__)

# Loaded in this order in setup_hook; each module ends with `async def setup(bot)`.
EXTENSIONS: tuple[str, ...] = (
    "cogs.imagine",
    "cogs.edit",
    "cogs.quota",
    "cogs.models",
    "cogs.moderation",
    "cogs.queue",
    "cogs.relax",
    "cogs.usage",
    "cogs.privacy",
    "cogs.settings",
)
LATENCY_INTERVAL_SECONDS = 15.0  # how often the gateway latency gauge is refreshed (a heartbeat is ~41 s)
RETENTION_INTERVAL_SECONDS = 3600.0  # hourly: a day's end is never missed by much, and a quiet run is one query


_PERMISSION_NAMES = {
    "manage_guild": "Manage Server",
    "manage_messages": "Manage Messages",
    "administrator": "Administrator",
}


class ImageBot(commands.AutoShardedBot):
    services: Services
    # The editing cog, which does the work of the buttons under results (set while it is loaded).
    result_actions: ResultActions | None = None

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time, serving: bool = True) -> None:
        """`serving`: this process answers Discord (False for `python -m bot sync`, which only logs in)."""
        # Built before the client, whose HTTP session counts Discord's 429s into it.
        self.metrics = build_metrics(settings)
        shard_options: dict[str, Any] = {}
        if settings.shard_ids is not None:
            shard_options["shard_ids"] = list(settings.shard_ids)
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
            http_trace=rate_limit_trace(self.metrics),
            # Unset: as many shards as Discord recommends, all in this process. Split: this process's subset.
            shard_count=settings.shard_count,
            **shard_options,
        )
        self.settings = settings
        self.clock = clock
        self.serving = serving
        # Offers of relax mode to members out of credits, by the key their button carries.
        self.relax_offers = OfferBook()
        # Whether the gateway session is up: False from a disconnect until the session resumes or starts anew.
        self.gateway_up = False
        self.budget = BudgetWatch(self)
        self._housekeeping = [
            Periodic("gateway-latency", LATENCY_INTERVAL_SECONDS, self._record_latency),
            Periodic("retention", RETENTION_INTERVAL_SECONDS, self._retention),
        ]
        # What the bot wrote in each channel lately, so progress never takes a slot a result needs.
        self.channel_lanes = ChannelLanes(
            writes=settings.discord_channel_writes, window=settings.discord_channel_window_seconds
        )

    async def setup_hook(self) -> None:
        if self.serving:  # `python -m bot sync` only needs the command tree: no database, no HTTP session
            self.services = await Services.start(self.settings, clock=self.clock, metrics=self.metrics)
            for task in self._housekeeping:
                task.start()
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        self.add_dynamic_items(*PERSISTENT_ITEMS)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # One process publishes: the one with shard 0 (with every shard in one process, that one).
        if self.settings.discord_guild_id and self.settings.holds_shard_zero:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to server %s", len(synced), self.settings.discord_guild_id)

    async def on_message(self, message: discord.Message) -> None:
        # Prefix commands are not used; replies that mention the bot are handled by the editing cog.
        return

    async def on_ready(self) -> None:
        self.gateway_up = True
        log.info(
            "logged in as %s (id %s) in %d servers on shards %s of %s",
            self.user,
            self.user and self.user.id,
            len(self.guilds),
            ",".join(str(s) for s in sorted(self.shards)),
            self.shard_count,
        )

    async def on_resumed(self) -> None:
        self.gateway_up = True
        log.info("gateway session resumed")

    async def on_disconnect(self) -> None:
        if self.gateway_up and not self.is_closed():
            log.warning("gateway disconnected; discord.py reconnects")
        self.gateway_up = False

    def _record_latency(self) -> None:
        if math.isfinite(self.latency):  # inf/nan until the first heartbeat was acknowledged
            self.metrics.gateway_latency(self.latency)

    async def _retention(self) -> None:
        services = getattr(self, "services", None)
        if services is not None:
            await services.retention()

    def accepting(self) -> bool:
        """Started and not stopping: requests are taken."""
        services = getattr(self, "services", None)
        return services is not None and not self.is_closed() and not services.scheduler.closing

    def health_server(self, *, port: int | None = None, host: str | None = None) -> HealthServer:
        """The /metrics, /healthz and /readyz endpoint for this bot (METRICS_PORT and METRICS_HOST unless given);
        start it with `async with`. Ready: the gateway is up, the database answers, the bot is not stopping."""

        async def database_answers() -> bool:
            services = getattr(self, "services", None)
            if services is None:
                return False
            row = await services.db.fetchone("SELECT 1")
            return row is not None and row[0] == 1

        checks = readiness_checks(
            gateway_connected=lambda: self.gateway_up and not self.is_closed(),
            database=database_answers,
            shutting_down=lambda: not self.accepting(),
        )
        return HealthServer(
            self.metrics,
            checks,
            port=(self.settings.metrics_port or 0) if port is None else port,
            host=host or self.settings.metrics_host,
        )

    async def close(self) -> None:
        for task in self._housekeeping:
            await task.stop()
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
