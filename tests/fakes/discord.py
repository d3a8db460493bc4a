"""A strict fake Discord (REST + gateway on 127.0.0.1) that the unmodified discord.py client logs into.

    async with FakeDiscord() as fake, fake.running(make_bot()):
        ix = await fake.slash("imagine", {"prompt": "a cat"}, user=fake.member)
        reply = await ix.wait_for_followup()
        assert reply.attachments[0].content_type == "image/png"

It enforces Discord's limits with Discord's error codes (see `discord_limits`), the interaction deadlines on
its own clock (`advance()` moves it), the MESSAGE_CONTENT intent, Discord's API spec for every request body
(`discord_spec`), Discord's rate limits when a test asks (`rate_limits=RateLimits()`, see `discord_ratelimits`),
and records every request. Unknown routes,
crashes of the fake and errors the bot logs through discord.py fail the test when the fake closes, unless the
test claimed them with `take_failures()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import discord
import pytest
import yarl
from aiohttp import web
from discord.ext import commands

from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_interactions import (
    APPLICATION_COMMAND,
    COMPONENT,
    MODAL_SUBMIT,
    Interaction,
    InteractionRefused,
    Upload,
    build_options,
    component_data,
    interaction_payload,
    member_or_user,
    modal_submit_components,
    select_resolved,
    usable_command,
)
from tests.fakes.discord_limits import ApiError
from tests.fakes.discord_messages import Message, Messages, UploadedFile
from tests.fakes.discord_ratelimits import RateLimiter, RateLimits, Window
from tests.fakes.discord_rest import API, RecordedRequest, RestApi
from tests.fakes.discord_spec import spec_or_skip
from tests.fakes.discord_state import (
    DM,
    PRIVILEGED_INTENTS,
    PUBLIC_THREAD,
    Channel,
    Member,
    User,
)
from tests.fakes.discord_webhooks import InteractionApi
from tests.fakes.discord_world import DEFAULT_SIZE_LIMIT, MIB, World

__all__ = [
    "Channel",
    "FakeDiscord",
    "FakeTimeout",
    "Interaction",
    "InteractionRefused",
    "Member",
    "Message",
    "RateLimits",
    "User",
    "Window",
    "fake_discord",
]

log = logging.getLogger(__name__)

USER_UPLOAD_LIMIT = 500 * MIB  # what a user's client lets through (Nitro); the bot must judge sizes itself
BOT_STATE_TICK = 0.01
READY_DELAY = 0.02  # discord.py's guild_ready_timeout: on_ready fires this long after the last GUILD_CREATE
T = TypeVar("T")


class FakeTimeout(AssertionError):
    """Something the test waited for did not happen in time; the message says what the fake saw meanwhile."""


class FakeDiscord(World):
    def __init__(
        self,
        *,
        token: str = "fake-bot-token.not-a-secret",
        attachment_size_limit: int = DEFAULT_SIZE_LIMIT,
        portal_intents: int = PRIVILEGED_INTENTS,
        timeout: float = 5.0,
        rate_limits: RateLimits | None = None,
        validate_spec: bool = True,
        shard_count: int = 1,
    ) -> None:
        """`portal_intents`: the privileged intents enabled in the developer portal; asking for others at
        IDENTIFY closes the gateway with 4014, and REST reads strip content without MESSAGE_CONTENT.
        `timeout`: how long every wait_for* helper waits (a test may change `fake.timeout`).
        `rate_limits`: Discord's buckets and global limit (`RateLimits()`: the real figures; None: off).
        `validate_spec`: check every request body against Discord's API spec (`discord_spec`); a violation
        is answered with Discord's 400 and fails the test. `shard_count`: the number of shards GET /gateway/bot
        recommends (each session gets the guilds of its own shard)."""
        self.gateway = Gateway(self)  # first: building the world asks whether a bot is connected
        super().__init__(attachment_size_limit=attachment_size_limit)
        self.token = token
        self.portal_intents = portal_intents
        self.shard_count = shard_count
        self.timeout = timeout
        self.identify: dict[str, Any] | None = None
        self.requests: list[RecordedRequest] = []
        self.failures: list[str] = []
        self.interactions: list[Interaction] = []
        self._tokens: dict[str, Interaction] = {}
        self._injected: list[tuple[str, ApiError]] = []
        self.limiter = RateLimiter(rate_limits)
        self.spec = spec_or_skip() if validate_spec else None
        self.spec_violations: list[RecordedRequest] = []
        self._bot_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._restore: list[tuple[Any, str, Any]] = []
        self.message_ops = Messages(self)
        self.rest = RestApi(self)
        self.webhooks = InteractionApi(self)

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=1024 * MIB)
        app.router.add_get("/gateway", self.gateway.handle)
        self.rest.install(app, self.webhooks.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._patch(discord.http.Route, "BASE", self.base_url + API)
        self._patch(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(self.gateway_url))
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
        for owner, name, value in reversed(self._restore):
            setattr(owner, name, value)
        self._restore.clear()
        if exc is None and self.failures:
            raise AssertionError("the fake Discord saw failures:\n  " + "\n  ".join(self.take_failures()))

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._restore.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    @contextlib.asynccontextmanager
    async def running(self, bot: commands.Bot) -> AsyncIterator[commands.Bot]:
        """Log `bot` in (setup_hook, command sync), wait for on_ready, and close it cleanly at exit."""
        bot._connection.guild_ready_timeout = READY_DELAY  # the constructor's default is 2 s
        ready = asyncio.Event()

        async def on_ready() -> None:
            ready.set()
            self.notify()

        capture = _BotErrors(self)
        logging.getLogger("discord").addHandler(capture)
        bot.add_listener(on_ready, "on_ready")
        task = asyncio.create_task(bot.start(self.token), name="fake-discord-bot")
        task.add_done_callback(lambda _: self.notify())
        self._bot_task = task
        try:
            await self.wait_for(lambda: ready.is_set() or task.done(), what="the bot's on_ready")
            if task.done():
                task.result()  # the bot's own error: a refused login, disallowed intents, a failed sync...
                raise AssertionError("the bot stopped before on_ready")
            # On a loaded machine GUILD_CREATE can reach the bot after on_ready; that is no event of the fake.
            for _ in range(200):
                if all(bot.get_guild(guild_id) for guild_id in self.guilds):
                    break
                await asyncio.sleep(0.005)
            yield bot
        finally:
            bot.remove_listener(on_ready, "on_ready")
            await bot.close()
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if not done:
                task.cancel()
                self.fail("the bot did not stop after close()")
            elif ready.is_set() and not task.cancelled() and task.exception() is not None:
                self.fail(f"the bot stopped with {task.exception()!r}")
            self._bot_task = None
            logging.getLogger("discord").removeHandler(capture)

    def fail(self, reason: str) -> None:
        """Record something that must fail the test (unless the test claims it with `take_failures`)."""
        log.warning("fake Discord failure: %s", reason)
        self.failures.append(reason)
        self.notify()

    @property
    def connected(self) -> bool:
        return any(session.ready for session in self.gateway.sessions)

    def interaction_by_token(self, token: str) -> Interaction | None:
        return self._tokens.get(token)

    def inject_error(
        self, route: str, status: int, code: int = 0, message: str = "injected", *, retry_after: float = 0.01
    ) -> None:
        """The next request to `route` ("POST /channels/{channel_id}/messages", as in `requests`) fails so.
        A 429 says `retry_after` (real seconds: discord.py sleeps, then retries); avoid 5xx: discord.py
        retries those after 1, 3, 5... real seconds."""
        answer = ApiError(status, code, message, retry_after=retry_after if status == 429 else None)
        self._injected.append((route, answer))

    def take_injected(self, route: str) -> ApiError | None:
        found = next((item for item in self._injected if item[0] == route), None)
        if found is None:
            return None
        self._injected.remove(found)
        return found[1]

    def take_failures(self) -> list[str]:
        """Claim the failures recorded so far (a test that expects them); the fake then closes cleanly."""
        taken, self.failures = self.failures, []
        return taken

    # -- driving the bot as users do ------------------------------------------------------------------------

    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: Member | User | None = None,
        channel: Channel | None = None,
        attachments: Mapping[str, Upload] | None = None,
    ) -> Interaction:
        """Run `/name` (subcommands: "group sub") with option values checked against what the bot synced.
        Attachment options take `(filename, bytes[, content_type])`, in `options` or `attachments`."""
        channel = channel or self.channel
        root, *path = name.split()
        command = usable_command(self, root, 1, user or self.member, channel)
        given = {**(options or {}), **(attachments or {})}
        built, resolved = build_options(self, command.get("options") or [], given, path)
        data: dict[str, Any] = {"id": command["id"], "name": root, "type": 1, "options": built}
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(APPLICATION_COMMAND, data, name, user=user, channel=channel)

    async def context_menu(
        self, name: str, target: Message | Member | User, *, user: Member | User | None = None
    ) -> Interaction:
        """A message command (target: a message) or a user command (target: a member or user)."""
        if isinstance(target, Message):
            if target.ephemeral or target.deleted:
                raise InteractionRefused("context menus cannot target an ephemeral or deleted message")
            channel, kind = target.channel, 3
            resolved: dict[str, Any] = {"messages": {str(target.id): target.payload()}}
        else:
            channel, kind = self.channel, 2
            resolved = {"users": {str(target.id): target.user.payload()}}
            if isinstance(target, Member):
                resolved["members"] = {str(target.id): target.payload(with_user=False, with_permissions=True)}
        command = usable_command(self, name, kind, user or self.member, channel)
        data = {
            "id": command["id"],
            "name": name,
            "type": kind,
            "target_id": str(target.id),
            "resolved": resolved,
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(APPLICATION_COMMAND, data, name, user=user, channel=channel)

    async def click(
        self,
        message: Message,
        custom_id: str,
        *,
        user: Member | User | None = None,
        values: list[str] | None = None,
    ) -> Interaction:
        """Press a button (or choose `values` in a select menu) on `message`."""
        if message.deleted:
            raise InteractionRefused(f"message {message.id} was deleted")
        if message.ephemeral:
            assert message.interaction_metadata is not None  # only interactions make ephemeral messages
            viewer = self.users[int(message.interaction_metadata["user"]["id"])]
            if user is not None and user.id != viewer.id:
                raise InteractionRefused("only the user an ephemeral message was sent to can click on it")
            user = user or viewer
        data = component_data(message, custom_id, values)
        if (resolved := select_resolved(self, message, data)) is not None:
            data["resolved"] = resolved
        return await self._interact(COMPONENT, data, custom_id, user=user, channel=message.channel, message=message)

    async def submit_modal(
        self, ix: Interaction, values: Mapping[str, str | list[str]], *, user: Member | User | None = None
    ) -> Interaction:
        """Fill and submit the modal the bot answered `ix` with (field custom_id -> text)."""
        modal = ix.modal
        if modal is None:
            raise InteractionRefused(f"{ix!r} was not answered with a modal")
        if ix.submitted:
            raise InteractionRefused("a modal can be submitted only once")
        if user is not None and user.id != ix.user.id:
            raise InteractionRefused("only the user who opened a modal can submit it")
        data = {"custom_id": modal["custom_id"], "components": modal_submit_components(modal, values)}
        ix.submitted = True
        return await self._interact(
            MODAL_SUBMIT, data, modal["custom_id"], user=ix.user, channel=ix.channel, message=ix.message
        )

    async def create_thread(
        self,
        channel: Channel,
        name: str,
        *,
        message: Message | None = None,
        owner: User | Member | None = None,
        type: int = PUBLIC_THREAD,
    ) -> Channel:
        """A thread made by a user (default `member`), announced to the bot before this returns."""
        thread = self.add_thread(channel, name, message=message, owner=owner, type=type)
        await self._flush()
        return thread

    async def send_message(
        self,
        channel: Channel | None = None,
        content: str = "",
        *,
        author: Member | User | None = None,
        reply_to: Message | None = None,
        attachments: Sequence[Upload] = (),
        mentions_bot: bool = False,
        mention_author: bool = True,
        embeds: Sequence[dict[str, Any]] = (),
    ) -> Message:
        """A user (default `member`) posts in `channel` (default #general); a reply pings the author it
        replies to unless `mention_author=False`. Attachments: `(filename, bytes[, content_type])`."""
        channel = channel or self.channel
        author = (author or self.member).user
        if channel.type == DM and channel.recipient is not author:
            raise InteractionRefused("only the recipient can write in a DM with the bot")
        if mentions_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}".rstrip()
        files = [UploadedFile(i, name, "".join(rest), data) for i, (name, data, *rest) in enumerate(attachments)]
        body: dict[str, Any] = {
            "content": content,
            "embeds": list(embeds),
            "allowed_mentions": {"parse": ["users", "roles", "everyone"], "replied_user": mention_author},
        }
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to.id)}
        message = self.message_ops.create(channel, author, body, files, size_limit=USER_UPLOAD_LIMIT)
        await self.message_ops.created(message)
        return message

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        name: str,
        *,
        user: Member | User | None,
        channel: Channel,
        message: Message | None = None,
    ) -> Interaction:
        who = member_or_user(user or self.member, channel)
        guild = channel.guild
        if guild is not None and not isinstance(who, Member):
            raise InteractionRefused(f"{who.name} is not a member of {guild.name}")
        interaction_id, token = self.mint(), f"ix-{secrets.token_hex(16)}"
        payload = interaction_payload(self, interaction_id, token, kind, data, who, channel, message)
        ix = Interaction(self, interaction_id, token, kind, name, who, channel, self.now(), payload, message)
        self.interactions.append(ix)
        self._tokens[token] = ix
        await self.dispatch("INTERACTION_CREATE", payload)
        return ix

    # -- gateway events and waiting ------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to the connected bot (events queued by world changes go first)."""
        await self._flush()
        await self.gateway.dispatch(event, data)

    async def _flush(self) -> None:
        while self._pending_events:
            await self.gateway.dispatch(*self._pending_events.pop(0))

    async def wait_for(self, condition: Callable[[], T], *, what: str = "") -> T:
        """Wait (at most `timeout` seconds) until `condition()` is truthy and return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            result = condition()
            if result:
                return result
            if self._bot_task is not None and self._bot_task.done():
                error = None if self._bot_task.cancelled() else self._bot_task.exception()
                raise AssertionError(f"the bot stopped while waiting for {what or condition}") from error
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FakeTimeout(self._describe_timeout(what or repr(condition)))
            with contextlib.suppress(TimeoutError):
                # A change to the fake wakes us at once; one in the bot's own state is seen at the next tick.
                await asyncio.wait_for(changed.wait(), min(remaining, BOT_STATE_TICK))

    async def wait_for_message(
        self,
        channel: Channel | None = None,
        predicate: Callable[[Message], Any] | None = None,
        *,
        after: Message | None = None,
    ) -> Message:
        """The first message the bot made visible in `channel` (default #general) that matches `predicate`
        (default: any that is not a "thinking" placeholder), newer than `after` if given."""
        check = predicate or (lambda m: not m.loading)
        floor = after.id if after else 0

        def found() -> Message | None:
            mine = self.messages(channel, author=self.bot_user)
            return next((m for m in mine if m.id > floor and check(m)), None)

        return await self.wait_for(found, what=f"a bot message in {(channel or self.channel).name}")

    async def wait_for_reply(self, message: Message) -> Message:
        """The bot's reply to `message`."""
        return await self.wait_for_message(message.channel, lambda m: m.reference_id == message.id, after=message)

    @property
    def rejections(self) -> list[RecordedRequest]:
        """Every request the fake answered with an error."""
        return [r for r in self.requests if r.status is not None and r.status >= 400]

    @property
    def rate_limited(self) -> list[RecordedRequest]:
        """Every request the fake answered with a 429 (its own buckets, the global limit, injected ones)."""
        return [r for r in self.requests if r.status == 429]

    @property
    def invalid_requests(self) -> int:
        """401, 403 and 429 answers: what Cloudflare counts towards banning the bot's IP."""
        return self.limiter.invalid_total

    def _describe_timeout(self, what: str) -> str:
        lines = [f"timed out waiting for {what}"]
        lines += [f"  refused: {r.route} -> {r.status} {r.response}" for r in self.rejections[-5:]]
        lines += [f"  failure: {failure}" for failure in self.failures]
        lines += [f"  last request: {r.route} -> {r.status}" for r in self.requests[-3:]]
        return "\n".join(lines)


class _BotErrors(logging.Handler):
    """Errors discord.py logs (an exception in a command, a view, an event handler) fail the test."""

    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__(logging.ERROR)
        self.fake = fake

    def emit(self, record: logging.LogRecord) -> None:
        detail = f": {record.exc_info[1]!r}" if record.exc_info else ""
        self.fake.fail(f"the bot logged an error ({record.name}): {record.getMessage()}{detail}")


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A running fake Discord (patched into discord.py); run a bot in it with `fake_discord.running(bot)`."""
    async with FakeDiscord() as fake:
        yield fake
