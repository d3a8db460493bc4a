"""Messages and their attachments: the records tests read, and creating, editing and deleting them
(whoever sends them) while telling the bot through the gateway."""

from __future__ import annotations

import io
import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakes.discord_limits import MAX_FILES, UNKNOWN_MESSAGE, check_message, invalid, too_long
from tests.fakes.discord_state import (
    DM,
    FLAG_COMPONENTS_V2,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    TYPE_DEFAULT,
    TYPE_REPLY,
    Channel,
    Guild,
    User,
    iso,
    walk_components,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

_EXTRA_TYPES = {".webp": "image/webp", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
SUPPRESS_EMBEDS = 1 << 2
_FIELDS = ("content", "embeds", "components", "sticker_ids", "poll")


def guess_content_type(filename: str) -> str | None:
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(filename)[0]


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # not an image, or not one Pillow knows: Discord then sends no width/height
        return None


@dataclass(frozen=True)
class UploadedFile:
    """One `files[n]` part of a multipart request, exactly as it arrived."""

    index: int
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(eq=False)
class Attachment:
    id: int
    filename: str
    data: bytes = field(repr=False)
    url: str
    proxy_url: str
    content_type: str | None = None
    description: str | None = None
    ephemeral: bool = False
    dimensions: tuple[int, int] | None = field(init=False)

    def __post_init__(self) -> None:
        is_image = bool(self.content_type and self.content_type.startswith("image/"))
        self.dimensions = image_size(self.data) if is_image else None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        if self.dimensions:
            data["width"], data["height"] = self.dimensions
        return data


@dataclass(eq=False)
class Message:
    id: int
    channel: Channel = field(repr=False)
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list, repr=False)
    components: list[dict[str, Any]] = field(default_factory=list, repr=False)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = TYPE_DEFAULT
    referenced: Message | None = field(default=None, repr=False)
    webhook_id: int | None = None
    interaction_metadata: dict[str, Any] | None = field(default=None, repr=False)
    created_at: float = 0.0
    edited_at: float | None = None
    mentions: list[User] = field(default_factory=list, repr=False)
    mention_roles: list[int] = field(default_factory=list, repr=False)
    mention_everyone: bool = False
    reactions: dict[str, set[int]] = field(default_factory=dict, repr=False)
    thread: Channel | None = field(default=None, repr=False)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still showing "thinking"."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def reference_id(self) -> int | None:
        return self.referenced.id if self.referenced else None

    @property
    def files(self) -> list[tuple[str, bytes]]:
        return [(attachment.filename, attachment.data) for attachment in self.attachments]

    @property
    def embed(self) -> dict[str, Any] | None:
        return self.embeds[0] if self.embeds else None

    def walk_components(self) -> list[dict[str, Any]]:
        return walk_components(self.components)

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.walk_components() if "custom_id" in c]

    def component(self, custom_id: str) -> dict[str, Any] | None:
        return next((c for c in self.walk_components() if c.get("custom_id") == custom_id), None)

    def mentions_user(self, user: User) -> bool:
        return any(mentioned is user for mentioned in self.mentions)

    def payload(self, strip: Callable[[Message], bool] | None = None, *, referenced: bool = True) -> dict[str, Any]:
        """The message as Discord renders it; what the MESSAGE_CONTENT intent guards is emptied where `strip`
        says so (for this message and for the message it replies to)."""
        stripped = bool(strip and strip(self))
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "author": self.author.payload(),
            "content": "" if stripped else self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": False,
            "mention_everyone": self.mention_everyone,
            "mentions": [user.payload() for user in self.mentions],
            "mention_roles": [str(role_id) for role_id in self.mention_roles],
            "attachments": [] if stripped else [a.payload() for a in self.attachments],
            "embeds": [] if stripped else list(self.embeds),
            "components": [] if stripped else list(self.components),
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.channel.guild is not None:
            data["guild_id"] = str(self.channel.guild.id)
        if self.webhook_id:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction_metadata:
            data["interaction_metadata"] = self.interaction_metadata
        if self.reactions:
            data["reactions"] = [
                {"emoji": {"id": None, "name": emoji}, "count": len(users), "me": False,
                 "count_details": {"burst": 0, "normal": len(users)}, "burst_colors": [], "me_burst": False}
                for emoji, users in self.reactions.items()
            ]  # fmt: skip
        if self.thread is not None:
            data["thread"] = self.thread.payload()
        if self.referenced is not None:
            ref = self.referenced
            data["message_reference"] = {
                "type": 0,
                "message_id": str(ref.id),
                "channel_id": str(ref.channel.id),
            }
            if ref.channel.guild is not None:
                data["message_reference"]["guild_id"] = str(ref.channel.guild.id)
            if referenced:
                data["referenced_message"] = None if ref.deleted else ref.payload(strip, referenced=False)
        return data


def parse_mentions(
    content: str, allowed: dict[str, Any] | None, *, guild: Guild | None, users: dict[int, User]
) -> tuple[list[User], list[int], bool]:
    """Who a message pings: (users, role ids, everyone), as allowed_mentions permits (absent: all)."""
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or ())
    allowed_users = {int(u) for u in (allowed or {}).get("users") or ()}
    allowed_roles = {int(r) for r in (allowed or {}).get("roles") or ()}
    mentioned: list[User] = []
    for match in _USER_MENTION.finditer(content):
        user = users.get(int(match.group(1)))
        if user and ("users" in parse or user.id in allowed_users) and user not in mentioned:
            mentioned.append(user)
    role_ids = {role.id for role in guild.roles} if guild else set()
    roles = [
        int(m.group(1))
        for m in _ROLE_MENTION.finditer(content)
        if int(m.group(1)) in role_ids and ("roles" in parse or int(m.group(1)) in allowed_roles)
    ]
    everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
    return mentioned, roles, everyone


# A new file waiting for validation before it is stored: (upload, filename, description).
_Pending = tuple[UploadedFile, str, str | None]


class Messages:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def create(
        self,
        channel: Channel,
        author: User,
        body: dict[str, Any],
        files: Sequence[UploadedFile] = (),
        *,
        size_limit: int,
        type: int | None = None,
        webhook: bool = False,
        interaction_metadata: dict[str, Any] | None = None,
        loading: bool = False,
    ) -> Message:
        """Validate and store a message; a deferred response (`loading`) may be empty until it is edited."""
        referenced = self._reference(channel, body.get("message_reference"))
        flags = body.get("flags") or 0
        keep = FLAG_EPHEMERAL | SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2
        flags = (flags & keep) | (FLAG_LOADING if loading else 0)
        attachments = self._attachments(body, list(files), [])
        if not loading:
            check_message({**body, "flags": flags}, file_sizes=_sizes(attachments), size_limit=size_limit)
        fake = self.fake
        message = Message(
            id=fake.mint(),
            channel=channel,
            author=author,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=self._store(attachments, channel),
            flags=flags,
            type=type if type is not None else (TYPE_REPLY if referenced else TYPE_DEFAULT),
            referenced=referenced,
            webhook_id=fake.application_id if webhook else None,
            interaction_metadata=interaction_metadata,
            created_at=fake.now(),
        )
        self._mention(message, body.get("allowed_mentions"))
        fake.store_message(message)
        return message

    def edit(
        self, message: Message, body: dict[str, Any], files: Sequence[UploadedFile] = (), *, size_limit: int
    ) -> None:
        if message.deleted:
            raise UNKNOWN_MESSAGE()
        fields = {key: body.get(key, getattr(message, key, None)) for key in _FIELDS}
        flags = message.flags & ~(FLAG_LOADING | SUPPRESS_EMBEDS)
        flags |= (body.get("flags") or 0) & (SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2)
        if "flags" not in body:
            flags |= message.flags & SUPPRESS_EMBEDS
        attachments = self._attachments(body, list(files), message.attachments)
        check_message({**fields, "flags": flags}, file_sizes=_sizes(attachments), size_limit=size_limit)
        message.content = fields["content"] or ""
        message.embeds = list(fields["embeds"] or [])
        message.components = list(fields["components"] or [])
        message.attachments = self._store(attachments, message.channel)
        message.flags = flags
        message.edited_at = self.fake.now()
        if "content" in body or "allowed_mentions" in body:
            self._mention(message, body.get("allowed_mentions"))
        self.fake.notify()

    async def delete(self, message: Message) -> None:
        message.deleted = True
        if message in message.channel.messages:
            message.channel.messages.remove(message)
        self.fake.notify()
        data = {"id": str(message.id), "channel_id": str(message.channel.id)}
        if message.channel.guild is not None:
            data["guild_id"] = str(message.channel.guild.id)
        await self._announce("MESSAGE_DELETE", message, data)

    async def created(self, message: Message) -> None:
        await self._announce("MESSAGE_CREATE", message)

    async def updated(self, message: Message) -> None:
        await self._announce("MESSAGE_UPDATE", message)

    async def _announce(self, event: str, message: Message, data: dict[str, Any] | None = None) -> None:
        """Ephemeral messages are never dispatched; others need the guild- or direct-messages intent, and a
        bot that is not connected simply never sees them (history written before it logs in)."""
        fake = self.fake
        needed = INTENT_DIRECT_MESSAGES if message.channel.type == DM else INTENT_GUILD_MESSAGES
        if message.ephemeral or not fake.intents & needed or not fake.connected:
            return
        if data is None:
            data = message.payload(self.gateway_strips)
            guild = message.channel.guild
            if guild is not None and message.author.id in guild.members and not message.webhook_id:
                data["member"] = guild.members[message.author.id].payload(with_user=False)
        await fake.dispatch(event, data)

    def gateway_strips(self, message: Message) -> bool:
        """The MESSAGE_CONTENT rule for events: judged by the intents the bot identified with."""
        return not self.fake.intents & INTENT_MESSAGE_CONTENT and not self._exempt(message)

    def rest_strips(self, message: Message) -> bool:
        """The same rule for REST reads: judged by what the application is allowed in its portal settings."""
        return not self.fake.portal_intents & INTENT_MESSAGE_CONTENT and not self._exempt(message)

    def _exempt(self, message: Message) -> bool:
        bot = self.fake.bot_user
        return message.channel.type == DM or message.author is bot or message.mentions_user(bot)

    def _reference(self, channel: Channel, reference: dict[str, Any] | None) -> Message | None:
        if not reference:
            return None
        target = self.fake.message(int(reference["message_id"]))
        thread_starter = channel.parent is not None and target is not None and target.id == channel.id
        if target is None or target.ephemeral or (target.channel is not channel and not thread_starter):
            if reference.get("fail_if_not_exists", True):
                raise invalid("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return None
        return target

    def _attachments(
        self, body: dict[str, Any], files: list[UploadedFile], existing: list[Attachment]
    ) -> list[Attachment | _Pending]:
        """Kept attachments plus new files, as `attachments` in the body lists them (absent: keep all)."""
        by_index = {upload.index: upload for upload in files}
        listed = body.get("attachments")
        if listed is None:
            result: list[Attachment | _Pending] = list(existing)
        else:
            result = []
            for i, item in enumerate(listed):
                ref = int(item["id"])
                old = next((a for a in existing if a.id == ref), None)
                if old is not None:
                    result.append(old)
                elif ref in by_index:
                    upload = by_index.pop(ref)
                    result.append((upload, item.get("filename") or upload.filename, item.get("description")))
                else:
                    raise invalid(f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", f"Unknown attachment {ref}")
        result.extend((upload, upload.filename, None) for upload in by_index.values())
        if len(result) > MAX_FILES:
            raise too_long("attachments", MAX_FILES)
        return result

    def _store(self, attachments: list[Attachment | _Pending], channel: Channel) -> list[Attachment]:
        stored = []
        for item in attachments:
            if isinstance(item, tuple):
                upload, filename, description = item
                sent_type = None if upload.content_type == "application/octet-stream" else upload.content_type
                item = self.fake.store_attachment(filename, upload.data, sent_type, channel=channel)
                item.description = description
            stored.append(item)
        return stored

    def _mention(self, message: Message, allowed: dict[str, Any] | None) -> None:
        fake = self.fake
        users, roles, everyone = parse_mentions(message.content, allowed, guild=message.channel.guild, users=fake.users)
        replied = message.referenced.author if message.referenced else None
        if replied is not None and replied not in users and (allowed is None or allowed.get("replied_user")):
            users.append(replied)
        message.mentions, message.mention_roles, message.mention_everyone = users, roles, everyone


def _sizes(attachments: list[Attachment | _Pending]) -> list[int]:
    return [len(item[0].data) if isinstance(item, tuple) else item.size for item in attachments]
