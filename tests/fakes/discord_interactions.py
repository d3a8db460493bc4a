"""Interactions: the record a test holds (`ix.original`, `ix.followups`, ...) and the payloads users produce.

What a real Discord client cannot send (a command that was never synced, an option that does not exist,
a button that is not on the message, a modal field that was never shown) raises `InteractionRefused`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tests.fakes.discord_messages import Message, UploadedFile
from tests.fakes.discord_state import (
    ADMINISTRATOR,
    FLAG_EPHEMERAL,
    USE_APPLICATION_COMMANDS,
    VIEW_CHANNEL,
    Channel,
    Member,
    Role,
    User,
    walk_components,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord
    from tests.fakes.discord_rest import RecordedRequest

# Interaction types and callback types (discord-api-docs, "Receiving and Responding").
APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = 4, 5, 6, 7, 8, 9
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {MESSAGE, DEFERRED_MESSAGE, MODAL},
    COMPONENT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}
# Option types.
(
    SUB_COMMAND,
    SUB_COMMAND_GROUP,
    STRING,
    INTEGER,
    BOOLEAN,
    USER,
    CHANNEL,
    ROLE,
    MENTIONABLE,
    NUMBER,
    ATTACHMENT,
) = range(1, 12)
MAX_STRING_OPTION = 6000

# A file a user attaches: (filename, bytes) or (filename, bytes, content type).
Upload = tuple[str, bytes] | tuple[str, bytes, str]
T = TypeVar("T")


class InteractionRefused(AssertionError):
    """The test asked for something a real Discord client cannot do."""


@dataclass(frozen=True)
class Callback:
    """One accepted `POST /interactions/{id}/{token}/callback`."""

    type: int
    data: dict[str, Any]
    files: tuple[UploadedFile, ...]
    at: float


@dataclass(eq=False)
class Interaction:
    """An interaction the fake dispatched, and everything the bot answered to it."""

    fake: FakeDiscord = field(repr=False)
    id: int
    token: str = field(repr=False)
    type: int
    name: str  # the command's name, or the custom_id of the component or modal
    user: Member | User
    channel: Channel
    created_at: float
    payload: dict[str, Any] = field(repr=False)
    message: Message | None = field(default=None, repr=False)  # the message a component sits on
    callbacks: list[Callback] = field(default_factory=list, repr=False)
    followups: list[Message] = field(default_factory=list, repr=False)
    edits: list[dict[str, Any]] = field(default_factory=list, repr=False)  # bodies of @original edits
    rejections: list[RecordedRequest] = field(default_factory=list, repr=False)
    original_id: int | None = None
    submitted: bool = False  # its modal was submitted

    @property
    def callback(self) -> Callback | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def response_type(self) -> int | None:
        return self.callback.type if self.callback else None

    @property
    def deferred(self) -> bool:
        return self.response_type in (DEFERRED_MESSAGE, DEFERRED_UPDATE)

    @property
    def ephemeral(self) -> bool:
        if self.original is not None:
            return self.original.ephemeral
        return bool(self.callback and (self.callback.data.get("flags") or 0) & FLAG_EPHEMERAL)

    @property
    def original(self) -> Message | None:
        """The original response as it is now; after a deferred update, the component's message."""
        return self.fake.message(self.original_id) if self.original_id else None

    @property
    def modal(self) -> dict[str, Any] | None:
        return self.callback.data if self.response_type == MODAL else None

    @property
    def messages(self) -> list[Message]:
        """Every message the bot made visible through this interaction, in order."""
        found = [self.original] if self.original else []
        return found + [m for m in self.followups if m is not self.original]

    async def wait_until(self, condition: Callable[[], T], *, what: str = "") -> T:
        return await self.fake.wait_for(condition, what=what or f"{self!r}")

    async def wait_for_callback(self) -> Callback:
        return await self.wait_until(lambda: self.callback, what=f"a callback to {self!r}")

    async def wait_for_original(self, predicate: Callable[[Message], Any] | None = None) -> Message:
        """The original response once it matches `predicate` (default: no longer "thinking")."""
        check = predicate or (lambda m: not m.loading)

        def ready() -> Message | None:
            original = self.original
            return original if original is not None and check(original) else None

        return await self.wait_until(ready, what=f"the original response of {self!r}")

    async def wait_for_followup(self, predicate: Callable[[Message], Any] | None = None) -> Message:
        """The first followup (in order) matching `predicate` (default: any)."""
        check = predicate or (lambda m: True)
        return await self.wait_until(
            lambda: next((m for m in self.followups if check(m)), None),
            what=f"a followup to {self!r}",
        )

    async def wait_for_modal(self) -> dict[str, Any]:
        await self.wait_for_callback()
        if self.modal is None:
            raise AssertionError(f"{self!r} was answered with callback type {self.response_type}")
        return self.modal

    async def wait_for_rejection(self) -> RecordedRequest:
        """The first request about this interaction that the fake refused."""
        return await self.wait_until(
            lambda: self.rejections[0] if self.rejections else None,
            what=f"a rejection for {self!r}",
        )


def member_or_user(who: Member | User, channel: Channel) -> Member | User:
    return channel.guild.members[who.id] if channel.guild and who.id in channel.guild.members else who.user


def build_options(
    fake: FakeDiscord,
    schema: list[dict[str, Any]],
    given: Mapping[str, Any],
    path: list[str],
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The `options` and `resolved` of a slash command, validated against its synced definition."""
    resolved: dict[str, dict[str, Any]] = {}
    if path:
        sub = next(
            (o for o in schema if o["name"] == path[0] and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)),
            None,
        )
        if sub is None:
            raise InteractionRefused(f"no subcommand {path[0]!r}; synced: {[o['name'] for o in schema]}")
        inner, resolved = build_options(fake, sub.get("options") or [], given, path[1:])
        return [{"name": sub["name"], "type": sub["type"], "options": inner}], resolved
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
        raise InteractionRefused(f"a subcommand must be chosen among {[o['name'] for o in schema]}")
    specs = {o["name"]: o for o in schema}
    options = []
    for name, value in given.items():
        if name not in specs:
            raise InteractionRefused(f"no option {name!r}; synced: {sorted(specs)}")
        spec = specs[name]
        options.append({"name": name, "type": spec["type"], "value": _option_value(fake, spec, value, resolved)})
    missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
    if missing:
        raise InteractionRefused(f"required options missing: {missing}")
    return options, resolved


def _option_value(fake: FakeDiscord, spec: dict[str, Any], value: Any, resolved: dict[str, dict[str, Any]]) -> Any:
    kind, name = spec["type"], spec["name"]
    expected: dict[int, type | tuple[type, ...]] = {
        STRING: str, INTEGER: int, NUMBER: (int, float), BOOLEAN: bool, USER: (Member, User),
        CHANNEL: Channel, ROLE: Role, MENTIONABLE: (Member, User, Role), ATTACHMENT: tuple,
    }  # fmt: skip
    if not isinstance(value, expected[kind]) or (kind in (INTEGER, NUMBER) and isinstance(value, bool)):
        raise InteractionRefused(f"option {name!r} (type {kind}) cannot take {value!r}")
    choices = spec.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise InteractionRefused(f"option {name!r} only offers {[c['value'] for c in choices]}, not {value!r}")
    if kind == STRING:
        low, high = spec.get("min_length", 0), spec.get("max_length", MAX_STRING_OPTION)
        if not low <= len(value) <= min(high, MAX_STRING_OPTION):
            raise InteractionRefused(f"option {name!r} must be {low}-{high} characters, got {len(value)}")
    if kind in (INTEGER, NUMBER):
        low, high = spec.get("min_value", float("-inf")), spec.get("max_value", float("inf"))
        if not low <= value <= high:
            raise InteractionRefused(f"option {name!r} must be within [{low}, {high}], got {value}")
    if kind in (USER, MENTIONABLE) and isinstance(value, Member | User):
        resolved.setdefault("users", {})[str(value.id)] = value.user.payload()
        if isinstance(value, Member):
            member = value.payload(with_user=False, with_permissions=True)
            resolved.setdefault("members", {})[str(value.id)] = member
        return str(value.id)
    if isinstance(value, Role):
        resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        return str(value.id)
    if kind == CHANNEL:
        assert value.guild is not None, "a channel option is a guild channel"
        permissions = str(fake.bot_permissions(value.guild))
        resolved.setdefault("channels", {})[str(value.id)] = {**value.payload(), "permissions": permissions}
        return str(value.id)
    if kind == ATTACHMENT:
        filename, data, *rest = value
        attachment = fake.store_attachment(filename, data, rest[0] if rest else None, ephemeral=True)
        resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
        return str(attachment.id)
    return value


def component_data(message: Message, custom_id: str, values: list[str] | None) -> dict[str, Any]:
    """`data` of a click on a button or a choice in a select menu of `message`."""
    component = message.component(custom_id)
    if component is None:
        raise InteractionRefused(f"no component {custom_id!r} on message {message.id}; it has {message.custom_ids}")
    if component.get("disabled"):
        raise InteractionRefused(f"component {custom_id!r} is disabled")
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
    if component["type"] == 2:
        if values is not None:
            raise InteractionRefused(f"{custom_id!r} is a button: it takes no values")
        return data
    values = list(values or [])
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not low <= len(values) <= high:
        raise InteractionRefused(f"select {custom_id!r} takes {low}-{high} values, got {values}")
    offered = [option["value"] for option in component.get("options") or []]
    if component["type"] == 3 and not set(values) <= set(offered):
        raise InteractionRefused(f"select {custom_id!r} offers {offered}, not {values}")
    data["values"] = values
    return data


ROLE_SELECT, CHANNEL_SELECT = 6, 8


def select_resolved(fake: FakeDiscord, message: Message, data: dict[str, Any]) -> dict[str, Any] | None:
    """`resolved` of a choice in a role or channel select: Discord sends the chosen roles and channels whole,
    and offers only the server's own roles and channels of the select's `channel_types`."""
    component = message.component(data["custom_id"]) or {}
    kind, guild = component.get("type"), message.channel.guild
    if kind not in (ROLE_SELECT, CHANNEL_SELECT):
        return None
    if guild is None:
        raise InteractionRefused("role and channel selects list a server's roles and channels")
    resolved: dict[str, dict[str, Any]] = {}
    for value in data["values"]:
        if kind == ROLE_SELECT:
            role = next((r for r in guild.roles if str(r.id) == value), None)
            if role is None:
                raise InteractionRefused(f"select {data['custom_id']!r} offers this server's roles, not {value}")
            resolved.setdefault("roles", {})[value] = role.payload()
            continue
        channel = fake.channels.get(int(value))
        types = component.get("channel_types")
        if channel is None or channel.guild is not guild or (types and channel.type not in types):
            raise InteractionRefused(f"select {data['custom_id']!r} offers channels of types {types}, not {value}")
        permissions = str(fake.bot_permissions(guild))
        resolved.setdefault("channels", {})[value] = {**channel.payload(), "permissions": permissions}
    return resolved


def modal_submit_components(modal: dict[str, Any], values: Mapping[str, str | list[str]]) -> list[dict[str, Any]]:
    """What a user's client submits for `modal`: `values` maps custom_id -> text (a list for selects)."""
    fields = {c["custom_id"]: c for c in walk_components(modal.get("components") or []) if c.get("type") in (3, 4)}
    unknown = set(values) - set(fields)
    if unknown:
        raise InteractionRefused(f"the modal has no fields {sorted(unknown)}; it has {sorted(fields)}")

    def submitted(component: dict[str, Any]) -> dict[str, Any]:
        custom_id = component["custom_id"]
        if component["type"] == 3:
            return {"type": 3, "custom_id": custom_id, "values": list(values.get(custom_id, []))}
        value = values.get(custom_id, component.get("value") or "")
        assert isinstance(value, str)
        low, high = component.get("min_length", 0), component.get("max_length", 4000)
        if component.get("required", True) and not value:
            raise InteractionRefused(f"modal field {custom_id!r} is required")
        if value and not low <= len(value) <= high:
            raise InteractionRefused(f"modal field {custom_id!r} takes {low}-{high} characters, got {len(value)}")
        return {"type": 4, "custom_id": custom_id, "value": value}

    rows: list[dict[str, Any]] = []
    for component in modal.get("components") or []:
        if component["type"] == 1:
            rows.append({"type": 1, "components": [submitted(c) for c in component["components"]]})
        elif component["type"] == 18 and component["component"].get("type") in (3, 4):
            rows.append({"type": 18, "component": submitted(component["component"])})
    return rows


def interaction_payload(
    fake: FakeDiscord,
    interaction_id: int,
    token: str,
    kind: int,
    data: dict[str, Any],
    who: Member | User,
    channel: Channel,
    message: Message | None,
) -> dict[str, Any]:
    """INTERACTION_CREATE as Discord sends it (discord.py needs `attachment_size_limit`, among others)."""
    guild = channel.guild
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(fake.application_id),
        "type": kind,
        "data": data,
        "token": token,
        "version": 1,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": fake.size_limit(channel),
        "channel_id": str(channel.id),
        "channel": channel.payload(),
        "context": 0 if guild else 1,
        "authorizing_integration_owners": {"0": str(guild.id)} if guild else {"1": str(who.id)},
    }
    if guild is not None and isinstance(who, Member):
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=who.payload(with_permissions=True),
            app_permissions=str(fake.bot_permissions(guild)),
        )
    else:
        payload["user"] = who.user.payload()
        payload["app_permissions"] = str(fake.bot_permissions(fake.guild))
    if message is not None:
        payload["message"] = message.payload()
    return payload


def usable_command(fake: FakeDiscord, name: str, kind: int, user: Member | User, channel: Channel) -> dict[str, Any]:
    """What a user's client offers: synced, allowed in this context, visible with their permissions."""
    command = fake.find_command(name, type=kind, channel=channel)
    if command is None:
        synced = {scope: [c["name"] for c in cmds] for scope, cmds in fake.commands.items()}
        raise InteractionRefused(f"command {name!r} (type {kind}) was never synced; synced: {synced}")
    context = 0 if channel.guild else 1
    if command.get("contexts") is not None and context not in command["contexts"]:
        raise InteractionRefused(f"command {name!r} is not offered in context {context}")
    if channel.guild is not None:
        who = member_or_user(user, channel)
        have = who.permissions if isinstance(who, Member) else 0
        if have & (VIEW_CHANNEL | USE_APPLICATION_COMMANDS) != VIEW_CHANNEL | USE_APPLICATION_COMMANDS:
            raise InteractionRefused(f"{who.name} cannot use application commands here")
        need = command.get("default_member_permissions")
        if need is not None and not (have & int(need) == int(need) and (int(need) or have & ADMINISTRATOR)):
            # "0" hides a command from everyone but administrators
            raise InteractionRefused(f"{who.name} lacks the permissions {need} that {name!r} requires")
    elif command.get("dm_permission") is False:
        raise InteractionRefused(f"command {name!r} is not available in DMs")
    return command
