"""Carrying any request (/imagine, an edit, a Reroll) through the one pipeline, from an interaction or a message.

Both kinds go: cheap checks (by the caller) -> pipeline.accept (moderation, scheduler slot, quota) -> show the
user it is in line -> download and judge the input images -> pipeline.execute. Downloading comes after
accepting so that an interaction is always answered within Discord's 3 seconds; an input refused at that point
gives its reservation back at once, so a bad image never costs quota and never reaches Google.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import discord

from bot.editing.generations import InputSource
from bot.editing.inputs import with_images
from bot.errors import BotError
from bot.models import ImageRequest, Progress
from bot.pipeline import Accepted, Delivery
from cogs.ui.common import send_ephemeral
from cogs.ui.jobs import InteractionJob
from cogs.ui.message_jobs import MessageJob, reply_to
from cogs.ui.render import DEFAULT_UPLOAD_LIMIT
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[Sequence[InputSource]]]


class Job(Protocol):
    async def deliver(self, delivery: Delivery) -> int: ...

    async def progress(self, progress: Progress) -> None: ...

    async def fail(self, exc: BaseException) -> None: ...


async def history(bot: ImageBot, parent_id: int | None) -> tuple[str, ...]:
    """The instructions that led to the picture being edited, oldest first, as many as the setting allows."""
    if parent_id is None:
        return ()
    return (await bot.services.generations.history(parent_id, bot.settings.conversation_max_depth)).instructions


async def run_interaction(
    bot: ImageBot, interaction: discord.Interaction, request: ImageRequest, load: Loader | None = None
) -> Delivery | None:
    """A slash command, context menu, modal or button: refusals are ephemeral, the rest shows publicly."""
    pipeline = bot.services.pipeline
    try:
        accepted = await pipeline.accept(request, key=str(interaction.id))
    except BotError as exc:
        await send_ephemeral(interaction, user_message(exc).text)
        return None
    async with pipeline.busy():  # stopping the bot waits until this user was told how the request ended
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s", interaction.id, exc)
            await pipeline.abandon(accepted, "defer-failed")
            return None
        job = InteractionJob(interaction, edit_interval=bot.settings.progress_edit_interval_seconds)
        job.start()
        return await _carry(bot, accepted, job, load)


async def run_message(bot: ImageBot, message: discord.Message, request: ImageRequest, load: Loader) -> Delivery | None:
    """A reply or a thread message: everything, refusals included, is answered as a reply to it."""
    pipeline = bot.services.pipeline
    try:
        accepted = await pipeline.accept(request, key=str(message.id))
    except BotError as exc:
        await refuse(message, exc)
        return None
    async with pipeline.busy():  # stopping the bot waits until this user was told how the request ended
        job = MessageJob(
            message, edit_interval=bot.settings.progress_edit_interval_seconds, size_limit=upload_limit(message)
        )
        if not await job.start():
            await pipeline.abandon(accepted, "reply-failed")
            return None
        return await _carry(bot, accepted, job, load)


async def refuse(message: discord.Message, exc: BaseException) -> None:
    try:
        await reply_to(message, content=user_message(exc, public=True).text)
    except discord.HTTPException:
        log.warning("could not answer message %s", message.id, exc_info=True)


def upload_limit(message: discord.Message) -> int:
    return message.guild.filesize_limit if message.guild else DEFAULT_UPLOAD_LIMIT


async def _carry(bot: ImageBot, accepted: Accepted, job: Job, load: Loader | None) -> Delivery | None:
    pipeline = bot.services.pipeline
    try:
        sources = list(await load()) if load else []
        request = with_images(accepted.request, tuple(s.image for s in sources if s.image is not None))
    except BaseException as exc:
        await pipeline.abandon(accepted, "input-refused" if isinstance(exc, BotError) else "internal")
        if not isinstance(exc, Exception):
            raise
        await job.fail(exc)
        return None

    async def deliver(delivery: Delivery) -> int:
        if sources:  # before the picture shows, so its Reroll button always finds them
            await bot.services.generations.record_inputs(delivery.generation_id, sources)
        return await job.deliver(delivery)

    try:
        return await pipeline.execute(dataclasses.replace(accepted, request=request), deliver, job.progress)
    except Exception as exc:  # every ending is told to the user; BotErrors are expected, others are logged
        await job.fail(exc)
        return None
