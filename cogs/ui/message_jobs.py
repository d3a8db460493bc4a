"""Carrying one accepted request that came as a message (a reply, a message in a bot thread).

There is no interaction token: a reply to the user's message says the request is in line, is edited as it
progresses, and becomes the result or says how the request ended. Nothing can be ephemeral here.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.errors import BotError
from bot.models import Progress
from bot.pipeline import Delivery
from cogs.ui.jobs import ProgressMessage, cancel_view
from cogs.ui.render import fit_delivery, progress_text, result_message
from cogs.ui.wording import user_message

log = logging.getLogger(__name__)


async def refuse(message: discord.Message, exc: BaseException) -> None:
    """Answer a message whose request was refused (or could not be read) in public words."""
    try:
        await reply_to(message, content=user_message(exc, public=True).text)
    except discord.HTTPException:
        log.warning("could not answer message %s", message.id, exc_info=True)


async def reply_to(message: discord.Message, **kwargs: Any) -> discord.Message:
    """Answer a user's message in its channel, even if it was deleted meanwhile (then without the reference)."""
    return await message.channel.send(reference=message.to_reference(fail_if_not_exists=False), **kwargs)


class MessageJob(ProgressMessage):
    def __init__(self, message: discord.Message, *, edit_interval: float, size_limit: int) -> None:
        # The scheduler key of a message's request is the message id (see cogs.ui.flow.run_message).
        super().__init__(
            edit_interval=edit_interval, clock=None, cancel=cancel_view(str(message.id), message.author.id)
        )
        self.message = message
        self.size_limit = size_limit
        self.reply: discord.Message | None = None

    async def refused(self, exc: BotError) -> None:
        await refuse(self.message, exc)

    async def show(self) -> bool:
        """Post the waiting reply; False when Discord refused it (the request then cannot be shown)."""
        try:
            self.reply = await reply_to(
                self.message, content=progress_text(Progress("queued")), view=self._cancel_view or discord.utils.MISSING
            )
        except discord.HTTPException as exc:
            log.warning("could not answer message %s: %s", self.message.id, exc)
            return False
        self._last_edit = self.clock.monotonic()
        return True

    def _can_edit(self) -> bool:
        return self.reply is not None

    async def _edit_progress(self, content: str, view: discord.ui.View | None) -> None:
        assert self.reply is not None
        await self.reply.edit(content=content, view=view)

    # --- endings ----------------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> int:
        await self._stop_progress()
        delivery = await fit_delivery(delivery, self.size_limit)
        message = result_message(delivery, self.message.author, self.size_limit)
        file = message.pop("file")
        if self.reply is not None:
            try:
                return (await self.reply.edit(attachments=[file], **message)).id
            except discord.NotFound:  # someone deleted the waiting reply: answer anew
                file.reset()
        return (await reply_to(self.message, file=file, **message)).id

    async def fail(self, exc: Exception) -> None:
        await self._stop_progress()
        if not isinstance(exc, BotError):
            log.error("request from message %s failed", self.message.id, exc_info=exc)
        text = user_message(exc, public=True).text
        try:
            if self.reply is not None:
                try:
                    await self.reply.edit(content=text, view=None)
                    return
                except discord.NotFound:
                    pass
            await reply_to(self.message, content=text)
        except discord.HTTPException:
            log.warning("could not tell user %s how their request ended", self.message.author.id, exc_info=True)
