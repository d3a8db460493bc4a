"""Carrying one accepted request that came as a message (a reply, a message in a bot thread).

There is no interaction token: a reply to the user's message says the request is in line, is edited as it
progresses, and becomes the result or says how the request ended. Nothing can be ephemeral here.

Every write here shares the channel's rate limits with everyone else's requests in that channel, so results go
first (`cogs.ui.lanes`): the waiting reply is posted only when the channel has room for progress, and otherwise
a ⏳ reaction on the member's message says the request was seen; neither holds up the request, which goes to
the image model at once. Progress edits wait for room, and the result or the ending never waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from bot.editing.images import ImageWorkers
from bot.errors import BotError
from bot.models import Progress
from bot.pipeline import Delivery
from cogs.ui.jobs import ProgressMessage, cancel_view
from cogs.ui.lanes import ChannelLanes
from cogs.ui.render import fit_delivery, progress_text, result_message
from cogs.ui.views import appeal_view
from cogs.ui.wording import user_message

log = logging.getLogger(__name__)

WAITING = "⏳"
# Reaction removals run after the result; strong references keep them alive until they are done.
_cleanups: set[asyncio.Task[None]] = set()


async def refuse(message: discord.Message, exc: BaseException) -> None:
    """Answer a message whose request was refused (or could not be read) in public words."""
    try:
        view = appeal_view(exc, message.author.id) or discord.utils.MISSING
        await reply_to(message, content=user_message(exc, public=True).text, view=view)
    except discord.HTTPException:
        log.warning("could not answer message %s", message.id, exc_info=True)


async def reply_to(message: discord.Message, **kwargs: Any) -> discord.Message:
    """Answer a user's message in its channel, even if it was deleted meanwhile (then without the reference)."""
    return await message.channel.send(reference=message.to_reference(fail_if_not_exists=False), **kwargs)


class MessageJob(ProgressMessage):
    def __init__(
        self,
        message: discord.Message,
        *,
        edit_interval: float,
        size_limit: int,
        images: ImageWorkers | None = None,
        lanes: ChannelLanes | None = None,
        me: discord.abc.Snowflake | None = None,
    ) -> None:
        """`lanes`: the bot's record of its writes per channel (one per job when not given); `me`: the bot's
        user, whose ⏳ reaction is taken away at the end."""
        # The scheduler key of a message's request is the message id (see cogs.ui.flow.run_message).
        super().__init__(
            edit_interval=edit_interval,
            clock=None,
            cancel=cancel_view(str(message.id), message.author.id),
            images=images,
        )
        self.message = message
        self.size_limit = size_limit
        self.lanes = lanes or ChannelLanes()
        self.me = me
        self.channel_id = message.channel.id
        self.reply: discord.Message | None = None
        self._posting: asyncio.Task[None] | None = None
        self._reacting: asyncio.Task[bool] | None = None

    async def refused(self, exc: BotError) -> None:
        async with self.lanes.result_write(self.channel_id, "create"):
            await refuse(self.message, exc)

    async def show(self) -> bool:
        """Say the request is in line without holding it up: a waiting reply if the channel has room for
        progress, else a ⏳ reaction. Always True: the result can be posted as a reply of its own."""
        if self.lanes.may_progress(self.channel_id, "create"):
            self.lanes.wrote(self.channel_id, "create")
            self._posting = asyncio.create_task(self._post_waiting())
        elif self.channel_id not in self.lanes.no_reactions:
            self._reacting = asyncio.create_task(self._react())
        return True

    async def _post_waiting(self) -> None:
        try:
            self.reply = await reply_to(
                self.message, content=progress_text(Progress("queued")), view=self._cancel_view or discord.utils.MISSING
            )
        except discord.HTTPException as exc:
            log.warning("could not answer message %s: %s", self.message.id, exc)
            return
        self._last_edit = self.clock.monotonic()
        if self._pending is not None:  # progress that came while the reply was on its way
            await self._flush()

    async def _react(self) -> bool:
        try:
            await self.message.add_reaction(WAITING)
        except discord.Forbidden:  # no Add Reactions here: stop asking (each refusal counts against the bot)
            self.lanes.no_reactions.add(self.channel_id)
            return False
        except discord.HTTPException as exc:
            log.info("could not react to message %s: %s", self.message.id, exc)
            return False
        return True

    def _can_edit(self) -> bool:
        return self.reply is not None

    def _take_room(self) -> float:
        wait = self.lanes.wait(self.channel_id, "edit")
        if wait <= 0:
            self.lanes.wrote(self.channel_id, "edit")
        return wait

    async def _edit_progress(self, content: str, view: discord.ui.View | None) -> None:
        assert self.reply is not None
        await self.reply.edit(content=content, view=view)

    # --- endings ----------------------------------------------------------------------------------------

    async def _end(self) -> None:
        """No more progress; the waiting reply, if one is on its way, is there before the ending is written
        (it was posted only when the channel had room, so this is one round trip at most)."""
        await self._stop_progress()
        if self._posting is not None:
            await self._posting

    def _unreact(self) -> None:
        reacting, self._reacting = self._reacting, None
        if reacting is None or self.me is None:
            return
        me = self.me

        async def unreact() -> None:
            if not await reacting:
                return
            try:
                await self.message.remove_reaction(WAITING, me)
            except discord.HTTPException as exc:
                log.info("could not remove the waiting reaction from message %s: %s", self.message.id, exc)

        task = asyncio.create_task(unreact())
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)

    async def deliver(self, delivery: Delivery) -> int:
        await self._end()
        delivery = await fit_delivery(delivery, self.size_limit, self.images)
        message = result_message(delivery, self.message.author, self.size_limit)
        file = message.pop("file")
        try:
            if self.reply is not None:
                async with self.lanes.result_write(self.channel_id, "edit"):
                    try:
                        return (await self.reply.edit(attachments=[file], **message)).id
                    except discord.NotFound:  # someone deleted the waiting reply: answer anew
                        file.reset()
            async with self.lanes.result_write(self.channel_id, "create"):
                return (await reply_to(self.message, file=file, **message)).id
        finally:
            self._unreact()

    async def fail(self, exc: Exception) -> None:
        await self._end()
        if not isinstance(exc, BotError):
            log.error("request from message %s failed", self.message.id, exc_info=exc)
        text = user_message(exc, public=True).text
        appeal = appeal_view(exc, self.message.author.id)  # under a block by the AI moderator
        try:
            if self.reply is not None:
                async with self.lanes.result_write(self.channel_id, "edit"):
                    try:
                        await self.reply.edit(content=text, view=appeal)
                        return
                    except discord.NotFound:
                        pass
            async with self.lanes.result_write(self.channel_id, "create"):
                await reply_to(self.message, content=text, view=appeal or discord.utils.MISSING)
        except discord.HTTPException:
            log.warning("could not tell user %s how their request ended", self.message.author.id, exc_info=True)
        finally:
            self._unreact()
