"""Permission checks for admin commands, shared by every cog that has some.

Discord's `default_member_permissions` only hides a command in the member's client: a server admin can grant it
to anyone under Server Settings > Integrations, and a crafted interaction can name it anyway. So every admin
command is also checked here, on the bot's side, against the permissions Discord computed for the member in
that channel. A refusal raises `app_commands.MissingPermissions`, which the bot's tree error handler answers
ephemerally; nothing of the command runs.

    @manage_guild_only()                       # one top-level command
    @app_commands.command(name="reset")
    async def reset(self, interaction): ...

    admin = ManageGuildGroup(name="moderation", description="...")   # a group: every subcommand is checked

    @admin.command(name="list")
    async def list_(self, interaction): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

T = TypeVar("T")

MANAGE_GUILD = discord.Permissions(manage_guild=True)


def require_manage_guild(interaction: discord.Interaction[Any]) -> bool:
    """True for a member with Manage Server (or Administrator) in a server; raises `MissingPermissions`
    otherwise, DMs included (there is no server to manage)."""
    permissions = interaction.permissions
    if interaction.guild_id is not None and (permissions.manage_guild or permissions.administrator):
        return True
    raise app_commands.MissingPermissions(["manage_guild"])


def manage_guild_only() -> Callable[[T], T]:
    """Hide a top-level command from members without Manage Server, offer it in servers only, and refuse it
    on the bot's side too. Put it above `@app_commands.command` (subcommands: use `ManageGuildGroup`)."""

    def decorator(command: T) -> T:
        command = app_commands.check(require_manage_guild)(command)
        command = app_commands.guild_only()(command)
        return app_commands.default_permissions(manage_guild=True)(command)

    return decorator


class ManageGuildGroup(app_commands.Group):
    """A slash-command group for server admins: hidden from members without Manage Server, servers only,
    and every subcommand refused on the bot's side to those members (Discord applies permissions to the
    top-level command only, so the group is the one place to check)."""

    def __init__(self, *, name: str, description: str, **kwargs: Any) -> None:
        super().__init__(
            name=name, description=description, guild_only=True, default_permissions=MANAGE_GUILD, **kwargs
        )

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return require_manage_guild(interaction)
