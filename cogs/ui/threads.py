"""Threads for a picture: `/imagine thread:True` opens one on the result, and in it the requester keeps editing
by just writing. A bot thread is any thread opened on a result message (its id is the message's id), so it is
recognised from the database after a restart, whoever opened it; its owner is whoever asked for the picture."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.pipeline import Delivery
from cogs.ui.common import send_ephemeral
from cogs.ui.render import clip

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

NOT_HERE = "Threads can only be opened in a server's text channel, so your picture is above without one."
FAILED = "I couldn't open a thread on your picture here (I may lack the permission to create threads)."


def welcome(owner: discord.abc.User, *, reads_everything: bool) -> str:
    if reads_everything:
        return (
            f"{owner.mention}, write what to change and I'll edit the latest picture in this thread. "
            "Everyone else: reply to a picture (or mention me) to edit it."
        )
    return "Reply to a picture in this thread (or mention me) with what to change, and I'll edit it."


async def start_thread(bot: ImageBot, interaction: discord.Interaction, delivery: Delivery) -> None:
    """Open a thread on the message that shows `delivery`, or tell the requester why not."""
    generation = await bot.services.generations.get(delivery.generation_id)
    channel = interaction.channel
    if not isinstance(channel, discord.TextChannel) or generation is None or generation.message_id is None:
        await send_ephemeral(interaction, NOT_HERE)
        return
    try:
        starter = channel.get_partial_message(generation.message_id)
        thread = await starter.create_thread(name=clip(delivery.request.prompt, 100))
        await thread.send(welcome(interaction.user, reads_everything=bot.intents.message_content))
    except discord.HTTPException as exc:
        log.warning("could not open a thread on message %s: %s", generation.message_id, exc)
        await send_ephemeral(interaction, FAILED)


async def thread_owner(bot: ImageBot, channel: object) -> int | None:
    """The user whose picture a thread was opened on; None when `channel` is not such a thread."""
    if not isinstance(channel, discord.Thread):
        return None
    starter = await bot.services.generations.by_message(channel.id)
    return starter.user_id if starter else None
