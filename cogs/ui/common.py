"""Small helpers every cog uses to talk to Discord."""

from __future__ import annotations

import logging

import discord

log = logging.getLogger(__name__)


async def send_ephemeral(interaction: discord.Interaction, text: str, view: discord.ui.View | None = None) -> None:
    """Answer ephemerally whether or not the interaction was already answered."""
    shown = view or discord.utils.MISSING
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, view=shown)
        else:
            await interaction.response.send_message(text, ephemeral=True, view=shown)
    except discord.HTTPException:
        log.warning("could not tell the user about an error (interaction %s)", interaction.id)


def role_ids(user: discord.abc.User) -> tuple[int, ...]:
    """The member's role ids (empty outside servers), for per-role quota limits."""
    roles = getattr(user, "roles", None) or ()
    return tuple(role.id for role in roles)
