"""Edits asked for in ordinary messages.

A message is for the bot when it mentions the bot (a reply pings the author it replies to by default, so a
reply to one of the bot's pictures mentions it), or when it is written by the owner of a bot thread (plain
messages: only with the message-content intent, without which Discord sends them empty). Then:
- a reply edits the picture it replies to, with the message's own attachments as further inputs;
- in a bot thread, a message that replies to nothing edits the latest picture there (`bot.editing.conversation`);
- elsewhere, a mention with attached images edits those images.
Anything else addressed to the bot gets a short explanation, never silence, except in a place the server's rules
close (`/settings`): there the message is ignored, or answered with the rule when the server asked for that.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord

from bot.editing.conversation import Incoming, MessageRef, source_of
from bot.editing.inputs import HOW_TO_EDIT, NO_INSTRUCTION, SOURCE_DELETED
from bot.errors import BotError, InvalidRequest
from bot.models import ImageRequest, RequestKind
from bot.ops.logs import request_context
from cogs.ui.flow import request_for, run_message
from cogs.ui.inputs import Pending, download, fetch_message, on_message, precheck, source_images
from cogs.ui.message_jobs import refuse
from cogs.ui.places import check_message
from cogs.ui.threads import thread_owner

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

_CONVERSATIONAL = (discord.MessageType.default, discord.MessageType.reply)


async def handle_message(bot: ImageBot, message: discord.Message) -> None:
    me = bot.user
    if me is None or message.author.bot or message.type not in _CONVERSATIONAL:
        return
    mentioned = any(user.id == me.id for user in message.mentions)
    owner = await thread_owner(bot, message.channel)
    owner_speaks = owner == message.author.id and bot.intents.message_content
    if not (mentioned or owner_speaks):
        return
    with request_context():
        closed = await check_message(bot, message)
        if closed is not None:
            log.info("message %s is in a place closed to it (%s)", message.id, closed.rule)
            if not closed.quiet:
                await refuse(message, closed)
            return
        try:
            request, pending = await _request(bot, message, me.id, in_bot_thread=owner is not None)
        except Exception as exc:  # the user always hears something; BotErrors say why, others are logged
            if not isinstance(exc, BotError):
                log.error("could not read the request in message %s", message.id, exc_info=exc)
            await refuse(message, exc)
            return
        judge = bot.services.inputs
        await run_message(bot, message, request, lambda: download(pending, judge))


async def _request(
    bot: ImageBot, message: discord.Message, bot_id: int, *, in_bot_thread: bool
) -> tuple[ImageRequest, list[Pending]]:
    """The request a message makes and the images to download for it, or the reason it makes none."""
    channel = message.channel
    reference = _replied_to(message)
    thread_parent = getattr(channel, "parent_id", None) if in_bot_thread else None
    store = bot.services.generations
    ref = await source_of(Incoming(message.id, channel.id, reference, thread_parent), store.latest_in_channel)
    attached = on_message(message, message.attachments)
    if ref is None and not attached:
        raise InvalidRequest(HOW_TO_EDIT)
    prompt = instruction(message.content, bot_id)
    if not prompt:
        raise InvalidRequest(NO_INSTRUCTION)
    pending: list[Pending] = []
    parent_id = None
    if ref is not None:
        source = await _source_message(bot, message, ref)
        pending = source_images(source, content_hidden=_may_be_hidden(bot, source, bot_id))
        parent = await store.by_message(source.id)
        parent_id = parent.id if parent else None
    pending += attached
    precheck(pending, bot.settings)
    request = request_for(
        message.author,
        channel_id=channel.id,
        guild_id=message.guild.id if message.guild else None,
        prompt=prompt,
        kind=RequestKind.THREAD if in_bot_thread and reference is None else RequestKind.REPLY,
        parent_id=parent_id,
    )
    return request, pending


def instruction(content: str, bot_id: int) -> str:
    """The message without the bot's mention: what the user asks for."""
    return re.sub(rf"<@!?{bot_id}>", " ", content).strip()


def _replied_to(message: discord.Message) -> MessageRef | None:
    reference = message.reference
    if reference is None or reference.message_id is None or reference.type is not discord.MessageReferenceType.reply:
        return None  # forwards reference a message too, but ask nothing of it
    return MessageRef(reference.channel_id, reference.message_id)


def _may_be_hidden(bot: ImageBot, message: discord.Message, bot_id: int) -> bool:
    """Whether Discord sends this message's content to the bot only with the message-content intent."""
    exempt = message.guild is None or message.author.id == bot_id or any(user.id == bot_id for user in message.mentions)
    return not (bot.intents.message_content or exempt)


async def _source_message(bot: ImageBot, message: discord.Message, ref: MessageRef) -> discord.Message:
    """The message holding the picture: the one Discord sent along with a reply, else read now."""
    reference = message.reference
    if reference is not None and reference.message_id == ref.message_id:
        if isinstance(reference.resolved, discord.DeletedReferencedMessage):
            raise InvalidRequest(SOURCE_DELETED)
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
    return await fetch_message(bot, ref)
