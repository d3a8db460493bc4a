"""Carrying one accepted request through Discord: live place in line, a Cancel button, delivery, failures.

While a request waits, its deferred message shows its place in line and when it should start, with a Cancel
button; edits go out one at a time, in order, at most one per `edit_interval` (the newest state wins), so a long
queue never runs into Discord's rate limits. "Generating" removes the button. The result or the failure replaces
the message, and no progress edit can land after it: `_done` is set first and checked again under the edit lock,
and the scheduler may still call `progress` after its `run()` returned.

An interaction token lives 15 minutes. A result or failure that comes later (by the job's own clock, or because
Discord says the token or the message is gone) is posted to the channel as a reply that mentions the user, so
nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.editing.images import ImageWorkers
from bot.errors import BotError, Cancelled
from bot.models import Progress
from bot.pipeline import Delivery
from bot.scheduler.ratelimit import Clock, SystemClock
from cogs.ui.common import send_ephemeral
from cogs.ui.render import fit_delivery, progress_text, result_message
from cogs.ui.views import appeal_view, cancel_view
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# A little under Discord's 15 minutes, so an edit never races the expiry.
TOKEN_LIFETIME_SECONDS = 14.5 * 60
# What Discord answers for an expired interaction token besides a 404 (10015 Unknown Webhook).
INVALID_WEBHOOK_TOKEN = 50027


class ProgressMessage:
    """Shows a waiting request's progress on one message, for both kinds of job: edits go out one at a time, in
    order, at most one per `edit_interval` (the newest state wins); "generating" goes out at once and takes the
    Cancel button away; after `_stop_progress` no progress edit can land. Subclasses say how to edit."""

    def __init__(
        self,
        *,
        edit_interval: float,
        clock: Clock | None,
        cancel: discord.ui.View | None,
        images: ImageWorkers | None = None,
    ) -> None:
        """`images`: the bounded pool a result too large for the channel is re-encoded in."""
        self.edit_interval = edit_interval
        self.images = images
        self.clock: Clock = clock or SystemClock()
        self._cancel_view = cancel
        self._last_edit = float("-inf")
        self._pending: tuple[Progress, float] | None = None  # with the unix time its ETA was made at
        self._flush_task: asyncio.Task[None] | None = None
        self._done = False
        self._edit_lock = asyncio.Lock()

    async def _edit_progress(self, content: str, view: discord.ui.View | None) -> None:
        raise NotImplementedError

    def _can_edit(self) -> bool:
        return True

    def _take_room(self) -> float:
        """0 when a progress edit may go now (and it is counted), else the seconds until it may be tried again
        (the channel's writes are kept for results, see `cogs.ui.lanes`)."""
        return 0.0

    async def progress(self, progress: Progress) -> None:
        self._pending = (progress, self.clock.time())  # the ETA is relative to now: pin it before any throttling
        wait = self._last_edit + self.edit_interval - self.clock.monotonic()
        if progress.state != "queued" or wait <= 0:
            await self._flush()
        elif self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, wait: float) -> None:
        await self.clock.sleep(wait)
        self._flush_task = None
        await self._flush()

    async def _flush(self) -> None:
        if self._pending is None or self._done or not self._can_edit():
            return  # what is pending stays: a message that becomes editable shows it (`MessageJob`)
        pending, self._pending = self._pending, None
        wait = self._take_room()
        if wait > 0:  # no room for progress now: the newest state goes when there is
            self._pending = self._pending or pending
            if self._flush_task is None:
                self._flush_task = asyncio.create_task(self._flush_later(wait))
            return
        progress, at = pending
        self._last_edit = self.clock.monotonic()
        async with self._edit_lock:
            if self._done:
                return
            view = self._cancel_view if progress.state == "queued" else None
            try:
                await self._edit_progress(progress_text(progress, now=at), view)
            except discord.HTTPException as exc:
                log.info("progress edit failed (%s): %s", self, exc)

    async def _stop_progress(self) -> None:
        """No progress edit may land after the ending; waits for one under way."""
        self._done = True
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        async with self._edit_lock:
            pass


class InteractionJob(ProgressMessage):
    """Shows progress on the deferred response, then replaces it with the image or says how the request ended.
    `key` is the request's scheduler key (what `Pipeline.accept` got), by default the interaction id."""

    def __init__(
        self,
        interaction: discord.Interaction,
        *,
        edit_interval: float,
        key: str | None = None,
        clock: Clock | None = None,
        images: ImageWorkers | None = None,
    ) -> None:
        super().__init__(
            edit_interval=edit_interval,
            clock=clock,
            cancel=cancel_view(key or str(interaction.id), interaction.user.id),
            images=images,
        )
        self.interaction = interaction
        self.message_id: int | None = None
        self._deadline = self.clock.monotonic() + TOKEN_LIFETIME_SECONDS - _age(interaction)
        self._expired = False

    async def refused(self, exc: BotError) -> None:
        await send_ephemeral(self.interaction, user_message(exc).text, appeal_view(exc, self.interaction.user.id))

    async def show(self) -> bool:
        """Acknowledge the interaction (Discord's "thinking…") and show the request in line; False when Discord
        refused the acknowledgement."""
        try:
            await self.interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s", self.interaction.id, exc)
            return False
        self.start()
        return True

    def start(self) -> None:
        """Replace Discord's "thinking…" at once, without delaying the request: the user sees it is in line (and
        can cancel), and no later followup can take the place of the deferred message (it would inherit its
        visibility)."""
        self._pending = (Progress("queued"), self.clock.time())
        self._flush_task = asyncio.create_task(self._flush_later(0))

    @property
    def token_alive(self) -> bool:
        return not self._expired and self.clock.monotonic() < self._deadline

    def _can_edit(self) -> bool:
        return self.token_alive

    async def _edit_progress(self, content: str, view: discord.ui.View | None) -> None:
        try:
            message = await self.interaction.edit_original_response(content=content, view=view)
        except discord.HTTPException as exc:
            self._note_expiry(exc)
            raise
        self.message_id = message.id

    # --- endings ----------------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> int:
        await self._stop_progress()
        limit = self.interaction.filesize_limit
        delivery = await fit_delivery(delivery, limit, self.images)
        message = result_message(delivery, self.interaction.user, limit)
        if self.token_alive:
            file = message.pop("file")
            try:
                edited = await self.interaction.edit_original_response(attachments=[file], **message)
                return edited.id
            except discord.HTTPException as exc:
                if not self._note_expiry(exc):
                    raise
                log.info("interaction %s expired before delivery; posting to the channel", self.interaction.id)
                file.reset()
                message["file"] = file
        message["content"] = f"{self.interaction.user.mention} your image is ready. {message['content']}"
        return (await self._post_late(**message)).id

    async def fail(self, exc: Exception) -> None:
        """Tell the user how the request ended. Private messages replace the public waiting message; a cancel
        is said in place, since the presser may be a moderator and everyone saw the request wait."""
        await self._stop_progress()
        if not isinstance(exc, BotError):
            log.error("request from interaction %s failed", self.interaction.id, exc_info=exc)
        message = user_message(exc)
        appeal = appeal_view(exc, self.interaction.user.id)  # under a block by the AI moderator
        try:
            if self.token_alive:
                try:
                    if message.ephemeral and not isinstance(exc, Cancelled):
                        await self.interaction.delete_original_response()
                        await self.interaction.followup.send(
                            message.text, ephemeral=True, view=appeal or discord.utils.MISSING
                        )
                    else:
                        await self.interaction.edit_original_response(content=message.text, view=None)
                    return
                except discord.HTTPException as error:
                    if not self._note_expiry(error):
                        raise
            await self._post_late(
                content=f"{self.interaction.user.mention} {user_message(exc, public=True).text}",
                view=appeal or discord.utils.MISSING,
            )
        except discord.HTTPException:
            log.warning("could not tell user %s how their request ended", self.interaction.user.id, exc_info=True)

    def _note_expiry(self, exc: discord.HTTPException) -> bool:
        """True (and the token counts as dead from now on) when Discord says the token or the message is
        gone: then only the channel is left."""
        expired = isinstance(exc, discord.NotFound) or exc.code == INVALID_WEBHOOK_TOKEN
        self._expired = self._expired or expired
        return expired

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
