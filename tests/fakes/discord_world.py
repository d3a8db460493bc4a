"""The fake Discord's state: clock and ids, users, guilds, roles, members, channels, threads, messages,
attachments and synced commands. `FakeDiscord` adds the server, the gateway and the driving API on top."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from tests.fakes.discord_messages import Attachment, Message, guess_content_type
from tests.fakes.discord_state import (
    ADMINISTRATOR,
    DM,
    EVERYONE_PERMISSIONS,
    GUILD_CATEGORY,
    GUILD_TEXT,
    INTENT_GUILD_MEMBERS,
    MANAGE_GUILD,
    PUBLIC_THREAD,
    Channel,
    Guild,
    Member,
    Role,
    Snowflakes,
    User,
)

MIB = 1024 * 1024
DEFAULT_SIZE_LIMIT = 10 * MIB  # a server without boosts


class World:
    def __init__(self, *, attachment_size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        self.base_url = "http://127.0.0.1:0"
        self.intents = 0  # what the bot identified with
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # scope (guild id, None: global) -> synced
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.attachments: dict[int, Attachment] = {}
        self._messages: dict[int, Message] = {}
        self._pending_events: list[tuple[str, dict[str, Any]]] = []
        self._offset = 0.0
        self._wall = time.time() - time.monotonic()
        self._snowflakes = Snowflakes()
        self._changed = asyncio.Event()

        self.bot_user = self.add_user("Imagine Bot", bot=True)
        self.application_id = self.bot_user.id  # as for every application created since 2018
        self.owner = self.add_user("owner")  # owns the guild and the application
        self.guild = self.add_guild("Test Server", attachment_size_limit=attachment_size_limit)
        self.channel = self.guild.channels[0]
        self.bot_member = self.guild.members[self.bot_user.id]
        self.admin = self.add_member("admin", manage_guild=True)
        self.member = self.add_member("alice")

    @property
    def connected(self) -> bool:
        return False

    def notify(self) -> None:
        """Wake everything waiting in `wait_for` to check its condition again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _announce(self, event: str, data: Callable[[], dict[str, Any]]) -> None:
        # A change made while the bot is connected is sent before the next event; before login, READY has it.
        if self.connected:
            self._pending_events.append((event, data()))

    # -- clock and ids ---------------------------------------------------------------------------------------

    def now(self) -> float:
        """The fake's clock (epoch seconds): real time plus whatever `advance` added."""
        return self._wall + time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward: deadlines (3 s to answer, 15 min per token) pass without waiting."""
        self._offset += seconds

    def mint(self) -> int:
        return self._snowflakes.mint(self.now())

    # -- the world -------------------------------------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False) -> User:
        user = User(self.mint(), name, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, attachment_size_limit: int = DEFAULT_SIZE_LIMIT) -> Guild:
        """A guild of `owner` with @everyone, a "Bot" role, a #general channel, the bot and the owner."""
        guild = Guild(self.mint(), name, self.owner, attachment_size_limit)
        bot_role = Role(self.mint(), "Bot", EVERYONE_PERMISSIONS, position=1)
        guild.roles += [Role(guild.id, "@everyone", EVERYONE_PERMISSIONS), bot_role]
        general = Channel(self.mint(), GUILD_TEXT, "general", guild, created_at=self.now())
        guild.channels.append(general)
        self.channels[general.id] = general
        guild.members[self.owner.id] = Member(self.owner, guild, joined_at=self.now())
        guild.members[self.bot_user.id] = Member(self.bot_user, guild, [bot_role], joined_at=self.now())
        self.guilds[guild.id] = guild
        self._announce("GUILD_CREATE", guild.payload)
        return guild

    def add_role(self, name: str, *, permissions: int = 0, guild: Guild | None = None) -> Role:
        guild = guild or self.guild
        role = Role(self.mint(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        self._announce("GUILD_ROLE_CREATE", lambda: {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def add_member(
        self,
        who: str | User,
        *,
        roles: Iterable[Role] = (),
        manage_guild: bool = False,
        administrator: bool = False,
        guild: Guild | None = None,
    ) -> Member:
        """A new user called `who` (or an existing user) in the guild; `manage_guild`/`administrator` give
        them a role with that permission."""
        guild = guild or self.guild
        user = self.add_user(who) if isinstance(who, str) else who
        roles = list(roles)
        if manage_guild or administrator:
            bits = (MANAGE_GUILD if manage_guild else 0) | (ADMINISTRATOR if administrator else 0)
            roles.append(self.add_role(f"{user.name}-staff", permissions=bits, guild=guild))
        member = Member(user, guild, roles, joined_at=self.now())
        guild.members[user.id] = member
        if self.intents & INTENT_GUILD_MEMBERS:
            self._announce("GUILD_MEMBER_ADD", lambda: {**member.payload(), "guild_id": str(guild.id)})
        return member

    def add_channel(
        self, name: str, *, guild: Guild | None = None, category: Channel | None = None, kind: int = GUILD_TEXT
    ) -> Channel:
        """A text channel (in `category`, if given), or a category with `kind=GUILD_CATEGORY`."""
        guild = guild or self.guild
        assert category is None or (category.type == GUILD_CATEGORY and kind != GUILD_CATEGORY)
        channel = Channel(
            self.mint(), kind, name, guild, parent=category, position=len(guild.channels), created_at=self.now()
        )
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        self._announce("CHANNEL_CREATE", channel.payload)
        return channel

    def dm(self, user: User | Member) -> Channel:
        """The DM channel between `user` and the bot."""
        user = user.user
        found = next((c for c in self.channels.values() if c.type == DM and c.recipient is user), None)
        if found is None:
            found = Channel(self.mint(), DM, "", recipient=user, created_at=self.now())
            self.channels[found.id] = found
        return found

    def bot_permissions(self, guild: Guild) -> int:
        return guild.permissions_of(guild.members[self.bot_user.id])

    def size_limit(self, channel: Channel) -> int:
        return channel.guild.attachment_size_limit if channel.guild else DEFAULT_SIZE_LIMIT

    def store_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        channel: Channel | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        """Keep a file and serve it over HTTP (`url`, `proxy_url`), so `Attachment.read()` downloads it."""
        attachment_id = self.mint()
        scope = f"attachments/{channel.id}" if channel else f"ephemeral-attachments/{self.application_id}"
        path = f"{attachment_id}/{quote(filename)}"
        attachment = Attachment(
            attachment_id, filename, bytes(data), url=f"{self.base_url}/{scope}/{path}",
            proxy_url=f"{self.base_url}/media/{channel.id if channel else 0}/{path}",
            content_type=content_type or guess_content_type(filename), ephemeral=ephemeral,
        )  # fmt: skip
        self.attachments[attachment_id] = attachment
        return attachment

    def store_message(self, message: Message) -> None:
        self._messages[message.id] = message
        if not message.ephemeral:
            message.channel.messages.append(message)
        self.notify()

    def message(self, message_id: int) -> Message | None:
        return self._messages.get(message_id)

    def messages(self, channel: Channel | None = None, *, author: User | Member | None = None) -> list[Message]:
        """What everyone sees in `channel` (default #general), oldest first; no ephemeral messages."""
        found = (channel or self.channel).messages
        return [m for m in found if author is None or m.author is author.user]

    # -- commands --------------------------------------------------------------------------------------------

    def sync_commands(self, scope: int | None, body: list[dict[str, Any]]) -> None:
        """A bulk overwrite: commands keep their id across syncs, as on Discord."""
        previous = {(c["type"], c["name"]): c["id"] for c in self.commands.get(scope, [])}
        synced = []
        for command in body:
            kind = command.get("type", 1)
            item = {**command, "type": kind, "description": command.get("description", "")}
            item.update(id=previous.get((kind, command["name"])) or str(self.mint()),
                        application_id=str(self.application_id), version=str(self.mint()))  # fmt: skip
            if scope is not None:
                item["guild_id"] = str(scope)
            synced.append(item)
        self.commands[scope] = synced

    def find_command(self, name: str, *, type: int = 1, channel: Channel | None = None) -> dict[str, Any] | None:
        """The synced command a user in `channel` sees under `name`: the guild's own first, then global."""
        guild = (channel or self.channel).guild
        scopes = ([guild.id] if guild else []) + [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command["type"] == type:
                    return command
        return None

    def add_thread(
        self,
        channel: Channel,
        name: str,
        *,
        message: Message | None = None,
        owner: User | Member | None = None,
        type: int = PUBLIC_THREAD,
    ) -> Channel:
        """A thread in `channel` (from `message` if given: then it has the message's id)."""
        assert channel.guild is not None and not channel.is_thread
        thread = Channel(
            message.id if message else self.mint(), type, name, channel.guild, parent=channel,
            owner_id=(owner or self.member).user.id, created_at=self.now(),
        )  # fmt: skip
        channel.guild.threads.append(thread)
        self.channels[thread.id] = thread
        if message is not None:
            message.thread = thread
        self._announce("THREAD_CREATE", lambda: {**thread.payload(), "newly_created": True})
        self.notify()
        return thread
