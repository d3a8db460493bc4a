"""Relax jobs across restarts: at every start, each relax request an earlier run left waiting (in line, at Flex
or in a Batch job) is carried on through the pipeline, and its picture or its ending is posted in its channel,
mentioning the member. Asking for relax mode is `/imagine relax:True` (`cogs.imagine`), and the offer to a member
out of credits comes with the refusal (`cogs.ui.flow.relax_offer`)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from discord.ext import commands

from cogs.ui.relax import RelaxDoor

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)


class RelaxCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        self._tasks: set[asyncio.Task[object]] = set()

    async def cog_load(self) -> None:
        if not self.bot.serving:  # `python -m bot sync` has no services
            return
        services = self.bot.services
        for job in services.take_resumable():
            # Posting needs only the channel's id and the bot's token, so this can start before the gateway is up.
            task = asyncio.create_task(services.pipeline.resume(job, RelaxDoor.resumed(self.bot, job)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            log.info("resumed %d relax job(s)", len(self._tasks))


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(RelaxCog(bot))
