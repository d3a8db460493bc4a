"""Where a request came from, as the core's rules read it (`bot.ops.access.Place`), and the check every door
makes before anything else: a closed place or a member without the role gets the rule's words (ephemeral for
interactions), or nothing when the server chose to ignore messages in closed places."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.errors import NotHere
from bot.ops.access import Place
from cogs.ui.common import role_ids, send_ephemeral
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot


def place_of(bot: ImageBot, channel: object, guild_id: int | None) -> Place:
    """A thread is judged by its parent channel and that channel's category."""
    channel_id = getattr(channel, "id", 0)
    if guild_id is None:
        return Place(None, channel_id)
    if isinstance(channel, discord.Thread):
        parent = channel.parent or bot.get_channel(channel.parent_id)
        return Place(guild_id, channel.parent_id, getattr(parent, "category_id", None), in_thread=True)
    return Place(guild_id, channel_id, getattr(channel, "category_id", None))


async def check_interaction(bot: ImageBot, interaction: discord.Interaction) -> bool:
    """True when the member may use the bot where the interaction came from; otherwise they were told why."""
    place = place_of(bot, interaction.channel, interaction.guild_id)
    try:
        await bot.services.server_settings.check(place, role_ids(interaction.user))
    except NotHere as exc:
        await send_ephemeral(interaction, user_message(exc).text)
        return False
    return True


async def check_message(bot: ImageBot, message: discord.Message) -> NotHere | None:
    """None when the author may use the bot where the message was written, else the rule that refuses."""
    place = place_of(bot, message.channel, message.guild.id if message.guild else None)
    try:
        await bot.services.server_settings.check(place, role_ids(message.author))
    except NotHere as exc:
        return exc
    return None
