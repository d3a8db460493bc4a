"""Where the bot may be used: each server's rules for its channels, categories, threads and roles, and whether
direct messages are open (`ALLOW_DMS`). Pure: the Discord side says where a request came from (`Place`), the
store (`bot.ops.server_settings`) holds the rules, `check` decides.

Discord gates slash commands by itself (Server Settings → Integrations → the bot: per-command channel and role
overrides), but not the doors that are plain messages (replies, thread messages, mentions) or buttons under a
picture. These rules apply to every door alike, so a server that closes a channel here closes it everywhere.
A thread follows its parent channel (and that channel's category); denied entries win over allowed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.errors import NotHere

MAX_ENTRIES = 25  # what one Discord select menu can hold


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request came from. In a thread, `channel_id` is the thread's parent channel."""

    guild_id: int | None  # None: a direct message
    channel_id: int
    category_id: int | None = None
    in_thread: bool = False


@dataclass(frozen=True, slots=True)
class ServerRules:
    """A server's rules; the defaults are what a server that never ran `/settings` gets: open everywhere."""

    guild_id: int
    allowed: tuple[int, ...] = ()  # channels or categories; empty: every channel
    denied: tuple[int, ...] = ()  # channels or categories; these win
    roles: tuple[int, ...] = ()  # roles that may generate; empty: everyone
    threads: bool = True
    explain: bool = False  # a message in a closed place is answered with the rule (else ignored)
    alert_channel_id: int | None = None  # where this server's budget alerts go

    @property
    def open_everywhere(self) -> bool:
        return not (self.allowed or self.denied or self.roles) and self.threads


Rule = Literal["dms", "channel", "thread", "role"]


def check(rules: ServerRules | None, place: Place, role_ids: tuple[int, ...], *, allow_dms: bool) -> None:
    """Raise `NotHere` when `rules` (None: the server has none) close `place` to a member with `role_ids`."""
    if place.guild_id is None:
        if not allow_dms:
            raise NotHere("dms")
        return
    if rules is None:
        return
    quiet = not rules.explain
    if place.in_thread and not rules.threads:
        raise NotHere("thread", quiet=quiet)
    where = {place.channel_id} | ({place.category_id} if place.category_id is not None else set())
    if where & set(rules.denied) or (rules.allowed and not where & set(rules.allowed)):
        raise NotHere("channel", quiet=quiet, allowed=rules.allowed)
    if rules.roles and not set(role_ids) & set(rules.roles):
        raise NotHere("role", quiet=quiet, roles=rules.roles)
