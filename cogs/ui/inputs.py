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
from bot.editing.images import prepare_input
from bot.editing.inputs import (
    DOWNLOAD_FAILED,
    INPUTS_NOT_KEPT,
    NO_ACCESS,
    NO_IMAGE,
    SOURCE_DELETED,
    SOURCE_UNREADABLE,
    check_count,
    check_declared,
    looks_like_image,
)
from bot.errors import InvalidRequest


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
        check_declared(attachment.filename, attachment.content_type, attachment.size, settings.max_input_image_bytes)


async def download(pending: Sequence[Pending], settings: Settings) -> list[InputSource]:
    """Fetch and judge every image at once; the first refusal wins."""
    return list(await asyncio.gather(*(_download(item, settings) for item in pending)))


async def _download(item: Pending, settings: Settings) -> InputSource:
    attachment = item.attachment
    try:
        data = await attachment.read()
    except discord.NotFound as exc:
        raise InvalidRequest(SOURCE_DELETED) from exc
    except discord.HTTPException as exc:
        raise InvalidRequest(DOWNLOAD_FAILED) from exc
    # Decoding headers (and converting GIF/BMP) is CPU work: keep it off the event loop.
    image = await asyncio.to_thread(
        prepare_input,
        data,
        max_bytes=settings.max_input_image_bytes,
        max_pixels=settings.max_input_pixels,
        name=f"“{attachment.filename}”",
    )
    ref = item.message
    if ref is None:
        return InputSource(None, None, attachment.id, image)
    return InputSource(ref.channel_id, ref.message_id, attachment.id, image)


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


async def refetch(client: discord.Client, sources: Sequence[InputSource], settings: Settings) -> list[InputSource]:
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
    fetched = iter(await download(pending, settings))
    return [source if source.image is not None else next(fetched) for source in sources]
