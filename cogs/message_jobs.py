"""Carrying one accepted request that came as a message (a reply, a message in a bot thread).

There is no interaction token: a reply to the user's message says the request is in line, is edited as it
progresses, and becomes the result or says how the request ended. Nothing can be ephemeral here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import discord

from bot.errors import BotError, user_message
from bot.models import Progress
from bot.pipeline import Delivery
from cogs.render import fit_delivery, progress_text, result_message

log = logging.getLogger(__name__)


async def reply_to(message: discord.Message, **kwargs: Any) -> discord.Message:
    """Answer a user's message in its channel, even if it was deleted meanwhile (then without the reference)."""
    return await message.channel.send(reference=message.to_reference(fail_if_not_exists=False), **kwargs)


class MessageJob:
    def __init__(self, message: discord.Message, *, edit_interval: float, size_limit: int) -> None:
        self.message = message
        self.edit_interval = edit_interval
        self.size_limit = size_limit
        self.reply: discord.Message | None = None
        self._last_edit = 0.0
        self._pending: Progress | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._done = False
        self._edit_lock = asyncio.Lock()  # edits of the reply go out one at a time, in order

    async def start(self) -> bool:
        """Post the waiting reply; False when Discord refused it (the request then cannot be shown)."""
        try:
            self.reply = await reply_to(self.message, content=progress_text(Progress("queued")))
        except discord.HTTPException as exc:
            log.warning("could not answer message %s: %s", self.message.id, exc)
            return False
        self._last_edit = time.monotonic()
        return True

    # --- progress ---------------------------------------------------------------------------------------

    async def progress(self, progress: Progress) -> None:
        """Edit the waiting reply at most once per `edit_interval`; the latest state wins."""
        self._pending = progress
        wait = self._last_edit + self.edit_interval - time.monotonic()
        if progress.state == "generating" or wait <= 0:
            await self._flush()
        elif self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._flush_task = None
        await self._flush()

    async def _flush(self) -> None:
        progress, self._pending = self._pending, None
        if progress is None or self.reply is None:
            return
        async with self._edit_lock:
            if self._done:
                return
            self._last_edit = time.monotonic()
            try:
                await self.reply.edit(content=progress_text(progress))
            except discord.HTTPException as exc:
                log.info("progress edit failed for message %s: %s", self.message.id, exc)

    async def _stop_progress(self) -> None:
        """No progress edit may land after the ending; waits for one under way."""
        self._done = True
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        async with self._edit_lock:
            pass

    # --- endings ----------------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> int:
        await self._stop_progress()
        delivery = await fit_delivery(delivery, self.size_limit)
        message = result_message(delivery, self.message.author, size_limit=self.size_limit)
        file = message.pop("file")
        if self.reply is not None:
            try:
                return (await self.reply.edit(attachments=[file], **message)).id
            except discord.NotFound:  # someone deleted the waiting reply: answer anew
                file.reset()
        return (await reply_to(self.message, file=file, **message)).id

    async def fail(self, exc: BaseException) -> None:
        await self._stop_progress()
        if not isinstance(exc, BotError):
            log.error("request from message %s failed", self.message.id, exc_info=exc)
        text = user_message(exc).text
        try:
            if self.reply is not None:
                try:
                    await self.reply.edit(content=text)
                    return
                except discord.NotFound:
                    pass
            await reply_to(self.message, content=text)
        except discord.HTTPException:
            log.warning("could not tell user %s how their request ended", self.message.author.id, exc_info=True)
