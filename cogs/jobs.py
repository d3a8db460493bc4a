"""Carrying one accepted request through Discord: progress edits, delivery, failure messages.

An interaction token lives 15 minutes. Until then everything happens on the interaction's own message; a result
or failure that comes later is posted to the channel as a reply that mentions the user, so nothing is lost.
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
from cogs.render import progress_text, result_message

log = logging.getLogger(__name__)

# A little under Discord's 15 minutes, so an edit never races the expiry.
TOKEN_LIFETIME_SECONDS = 14.5 * 60


class InteractionJob:
    """Shows progress on the deferred response, then replaces it with the image."""

    def __init__(self, interaction: discord.Interaction, *, edit_interval: float) -> None:
        self.interaction = interaction
        self.edit_interval = edit_interval
        self.message_id: int | None = None
        self._deadline = time.monotonic() + TOKEN_LIFETIME_SECONDS - _age(interaction)
        self._last_edit = 0.0
        self._pending: Progress | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._done = False
        # Edits of the original message go out one at a time, in order.
        self._edit_lock = asyncio.Lock()

    def start(self) -> None:
        """Replace Discord's "thinking…" at once, without delaying the request: the user sees it is in line, and
        no later followup can take the place of the deferred message (which would inherit its visibility)."""
        self._pending = Progress("queued")
        self._flush_task = asyncio.create_task(self._flush_later(0))

    @property
    def token_alive(self) -> bool:
        return time.monotonic() < self._deadline

    # --- progress ---------------------------------------------------------------------------------------

    async def progress(self, progress: Progress) -> None:
        """Edit the waiting message, at most once per `edit_interval`; the latest state always wins."""
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
        if progress is None or self._done or not self.token_alive:
            return
        self._last_edit = time.monotonic()
        async with self._edit_lock:
            if self._done:
                return
            try:
                message = await self.interaction.edit_original_response(content=progress_text(progress))
                self.message_id = message.id
            except discord.HTTPException as exc:
                log.info("progress edit failed for interaction %s: %s", self.interaction.id, exc)

    async def _stop_progress(self) -> None:
        """No progress edit may land after the result; waits for one under way."""
        self._done = True
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        async with self._edit_lock:
            pass

    # --- endings ----------------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> int:
        await self._stop_progress()
        message = result_message(delivery, self.interaction.user)
        if self.token_alive:
            try:
                file = message.pop("file")
                edited = await self.interaction.edit_original_response(attachments=[file], **message)
                return edited.id
            except discord.NotFound:
                log.info("interaction %s expired before delivery; posting to the channel", self.interaction.id)
                file.reset()
                message["file"] = file
        message["content"] = f"{self.interaction.user.mention} your image is ready. {message['content']}"
        posted = await self._post_late(**message)
        return posted.id

    async def fail(self, exc: BaseException) -> None:
        """Tell the user how the request ended. Ephemeral messages replace the public waiting message."""
        await self._stop_progress()
        if not isinstance(exc, BotError):
            log.error("request from interaction %s failed", self.interaction.id, exc_info=exc)
        message = user_message(exc)
        try:
            if not self.token_alive:
                await self._post_late(content=f"{self.interaction.user.mention} {message.text}")
            elif message.ephemeral:
                await self.interaction.delete_original_response()
                await self.interaction.followup.send(message.text, ephemeral=True)
            else:
                await self.interaction.edit_original_response(content=message.text)
        except discord.HTTPException:
            log.warning("could not tell user %s how their request ended", self.interaction.user.id, exc_info=True)

    async def _post_late(self, **kwargs: Any) -> discord.Message:
        channel = self.interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        reference = None
        if self.message_id is not None:
            reference = discord.MessageReference(
                message_id=self.message_id, channel_id=channel.id, fail_if_not_exists=False
            )
        return await channel.send(
            reference=reference,  # type: ignore[arg-type]
            allowed_mentions=discord.AllowedMentions(users=[self.interaction.user]),
            **kwargs,
        )


def _age(interaction: discord.Interaction) -> float:
    return max(0.0, (discord.utils.utcnow() - interaction.created_at).total_seconds())
