"""Budget alerts in Discord: after each request, today's spend of its server and of the whole bot is compared to
the caps (`bot.ops.budget`), and an alert that became due goes to the server's alert channel (`/settings`) or,
for the whole bot's caps, to `USAGE_ALERT_CHANNEL`. Each alert is sent once per day and process; a channel the
bot cannot post in is logged, never shown to the member whose request crossed the line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.ops.budget import BudgetAlert, BudgetAlerts

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)


class BudgetWatch:
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        self.alerts = BudgetAlerts()

    async def after_request(self, guild_id: int | None) -> None:
        """Check the caps a request could have moved; never raises."""
        try:
            services = self.bot.services
            spends = [await services.quota.spend(None)]
            if guild_id is not None:
                spends.append(await services.quota.spend(guild_id))
            for spend in spends:
                for alert in self.alerts.check(spend):
                    await self._send(alert)
        except Exception:
            log.exception("budget alert check failed")

    async def _send(self, alert: BudgetAlert) -> None:
        if alert.guild_id is None:
            channel_id = self.bot.settings.usage_alert_channel
        else:
            channel_id = (await self.bot.services.server_settings.rules(alert.guild_id)).alert_channel_id
        log.warning("budget alert: %s", alert.text)
        if channel_id is None:
            return
        try:
            channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                raise TypeError(f"channel {channel_id} takes no messages")
            await channel.send(f"💸 {alert.text}")
        except (discord.HTTPException, TypeError) as exc:
            log.warning("could not post a budget alert to channel %s: %s", channel_id, exc)
