"""The images an edit starts from, read from Discord: attachments checked by their metadata first, then
downloaded fresh (attachment URLs expire, ids do not) and judged by their bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.config import Settings
from bot.editing.conversation import MessageRef
from bot.editing.generations import InputSource
from bot.editing.inputs import (
    DOWNLOAD_FAILED,
    INPUTS_NOT_KEPT,
    NO_ACCESS,
    NO_IMAGE,
    SOURCE_DELETED,
    SOURCE_UNREADABLE,
    InputJudge,
    check_count,
    check_declared,
    looks_like_image,
)
from bot.errors import InvalidRequest
from cogs.ui.wording import escape


@dataclass(frozen=True, slots=True)
class Pending:
    """An attachment to download, and the message it sits on (None for uploads to a slash command)."""

    attachment: discord.Attachment
    message: MessageRef | None = None


def on_message(message: discord.Message, attachments: Sequence[discord.Attachment]) -> list[Pending]:
    ref = MessageRef(message.channel.id, message.id)
    return [Pending(attachment, ref) for attachment in attachments]


def source_images(message: discord.Message, *, content_hidden: bool = False) -> list[Pending]:
    """The pictures of the message being edited, or why there are none. `content_hidden`: Discord may have sent
    the message emptied (no message-content intent), so an empty message means "unreadable", not "no image"."""
    found = [a for a in message.attachments if looks_like_image(a.filename, a.content_type)]
    if found:
        return on_message(message, found)
    empty = not (message.content or message.embeds or message.attachments)
    raise InvalidRequest(SOURCE_UNREADABLE if content_hidden and empty else NO_IMAGE)


def precheck(pending: Sequence[Pending], settings: Settings) -> None:
    """Everything that can be judged before downloading: how many, what type and how large they claim to be."""
    check_count(len(pending), settings.max_input_images)
    for item in pending:
        attachment = item.attachment
        # A file name is the user's text: it is echoed escaped, like a prompt.
        name = escape(attachment.filename)
        check_declared(name, attachment.content_type, attachment.size, settings.max_input_image_bytes)


async def download(pending: Sequence[Pending], judge: InputJudge) -> list[InputSource]:
    """Fetch every image, then judge them one at a time in the bounded image workers, stopping at the first
    refusal: an image after a refused one is never decoded."""
    downloads = [asyncio.ensure_future(_read(item.attachment)) for item in pending]
    try:
        contents = await asyncio.gather(*downloads)
    except BaseException:
        for task in downloads:  # one failed: the others are not needed
            task.cancel()
        raise
    sources = []
    for item, data in zip(pending, contents, strict=True):
        attachment, ref = item.attachment, item.message
        image = await judge.judge(data, f"“{escape(attachment.filename)}”")
        if ref is None:
            sources.append(InputSource(None, None, attachment.id, image))
        else:
            sources.append(InputSource(ref.channel_id, ref.message_id, attachment.id, image))
    return sources


async def _read(attachment: discord.Attachment) -> bytes:
    try:
        return await attachment.read()
    except discord.NotFound as exc:
        raise InvalidRequest(SOURCE_DELETED) from exc
    except discord.HTTPException as exc:
        raise InvalidRequest(DOWNLOAD_FAILED) from exc


async def fetch_message(client: discord.Client, ref: MessageRef) -> discord.Message:
    """A message read now from Discord, so its attachment URLs are fresh."""
    try:
        return await client.get_partial_messageable(ref.channel_id).fetch_message(ref.message_id)
    except discord.NotFound as exc:
        raise InvalidRequest(SOURCE_DELETED) from exc
    except discord.Forbidden as exc:
        raise InvalidRequest(NO_ACCESS) from exc
    except discord.HTTPException as exc:
        raise InvalidRequest(DOWNLOAD_FAILED) from exc


async def refetch(
    client: discord.Client, sources: Sequence[InputSource], settings: Settings, judge: InputJudge
) -> list[InputSource]:
    """The inputs of an earlier request again: kept bytes as they are, the rest from their Discord messages."""
    messages: dict[MessageRef, discord.Message] = {}
    pending: list[Pending] = []
    for source in sources:
        if source.image is not None:
            continue
        if source.channel_id is None or source.message_id is None:
            raise InvalidRequest(INPUTS_NOT_KEPT)
        ref = MessageRef(source.channel_id, source.message_id)
        if ref not in messages:
            messages[ref] = await fetch_message(client, ref)
        attachment = next((a for a in messages[ref].attachments if a.id == source.attachment_id), None)
        if attachment is None:
            raise InvalidRequest(SOURCE_DELETED)
        pending.append(Pending(attachment, ref))
    precheck(pending, settings)
    fetched = iter(await download(pending, judge))
    return [source if source.image is not None else next(fetched) for source in sources]
