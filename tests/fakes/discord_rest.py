"""The fake Discord's HTTP side: REST under /api/v10, interaction callbacks and webhooks, and the CDN.

Every request is recorded; a request to a route Discord does not have (here) is a test failure.
"""

from __future__ import annotations

import email
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord_limits import (
    MISSING_PERMISSIONS,
    NOT_AUTHOR,
    UNAUTHORIZED,
    UNKNOWN_APPLICATION,
    UNKNOWN_CHANNEL,
    UNKNOWN_GUILD,
    UNKNOWN_MESSAGE,
    ApiError,
    bad_length,
    check_commands,
    invalid,
)
from tests.fakes.discord_messages import Message, UploadedFile
from tests.fakes.discord_ratelimits import TooManyRequests
from tests.fakes.discord_spec import SpecViolation
from tests.fakes.discord_state import (
    ATTACH_FILES,
    CREATE_PUBLIC_THREADS,
    GUILD_TEXT,
    MANAGE_MESSAGES,
    PUBLIC_THREAD,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    Channel,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

log = logging.getLogger(__name__)

API = "/api/v10"
_FILE_PART = re.compile(r"^files\[(\d+)\]$")
_OPEN_ROUTES = ("/interactions/", "/webhooks/")  # authorised by the token in the path, not the bot token


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what it answered."""

    method: str
    path: str
    route: str  # e.g. "POST /channels/{channel_id}/messages"
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    at: float
    status: int | None = None
    response: Any = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # of the answer

    @property
    def error_code(self) -> int | None:
        failed = self.status is not None and self.status >= 400
        return self.response.get("code") if failed and isinstance(self.response, dict) else None


RECORD = web.RequestKey("record", RecordedRequest)


def json_response(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py treats anything else (even with "; charset=utf-8") as text.
    return web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"})


def answer(request: web.Request, body: Any, status: int = 200) -> web.Response:
    request[RECORD].response = body
    return json_response(body, status)


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


def snowflake(request: web.Request, key: str) -> int:
    value = request.match_info[key]
    if not value.isdigit():
        raise invalid(key, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
    return int(value)


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.messages = fake.message_ops

    def install(self, app: web.Application, more: list[Route]) -> None:
        """Every route, `more` included, then the catch-all that turns unknown routes into failures."""
        app.middlewares.append(self._middleware)
        routes: list[Route] = [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway),
            ("POST", "/users/@me/channels", self.open_dm),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.get_history),
            ("POST", "/channels/{channel_id}/messages", self.post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            ("POST", "/channels/{channel_id}/typing", self.no_content),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.react),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.react),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.create_thread),
            ("POST", "/channels/{channel_id}/threads", self.create_thread),
            ("GET", "/applications/{application_id}/commands", self.commands),
            ("PUT", "/applications/{application_id}/commands", self.commands),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.commands),
            *more,
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API + path, handler)
        for prefix in ("attachments", "ephemeral-attachments", "media"):
            app.router.add_get(f"/{prefix}/{{scope}}/{{attachment_id}}/{{filename}}", self.cdn)
        app.router.add_route("*", "/{tail:.*}", self.unknown)

    # -- plumbing ------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fake = self.fake
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else "/{tail}"
        template = request.path if template == "/{tail}" else template
        is_api = request.path.startswith(API)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            route=f"{request.method} {template.removeprefix(API)}",
            query=dict(request.query),
            json=None,
            files=[],
            at=fake.now(),
        )
        request[RECORD] = record
        if is_api:
            fake.requests.append(record)
        headers: dict[str, str] = {}
        try:
            record.json, record.files = await _read_body(request)
            if is_api and not request.path.startswith(_OPEN_ROUTES, len(API)):
                if request.headers.get("Authorization") != f"Bot {fake.token}":
                    raise UNAUTHORIZED()
            if is_api:
                headers = fake.limiter.admit(record.route, request.match_info)
                if resource is not None and resource.canonical != "/{tail}":  # unknown routes fail on their own
                    self._check_spec(request, record)
            if (injected := fake.take_injected(record.route)) is not None:
                raise injected
            response = await handler(request)
        except ApiError as exc:
            log.info("fake Discord refused %s %s: %s", request.method, request.path, exc)
            record.status, record.response = exc.status, exc.body()
            if (ix := fake.interaction_by_token(request.match_info.get("token", ""))) is not None:
                ix.rejections.append(record)
            response = json_response(exc.body(), exc.status)
            if isinstance(exc, TooManyRequests):
                headers = exc.headers
                if exc.banned:
                    record.response = exc.message
                    response = web.Response(text=exc.message, status=429)  # Cloudflare's page, not Discord's JSON
            elif exc.status == 429:  # an injected one, as Discord's edge sends it
                headers = TooManyRequests(exc.retry_after or 0, scope="user").headers
        except Exception as exc:  # a bug in the fake must fail the test, not send discord.py into retries
            log.exception("fake Discord crashed on %s %s", request.method, request.path)
            fake.fail(f"fake Discord crashed on {request.method} {request.path}: {exc!r}")
            record.status, record.response = 400, {"message": f"fake crashed: {exc!r}", "code": 0}
            response = json_response(record.response, 400)
        else:
            record.status = response.status
        response.headers.update(headers)
        record.headers = dict(response.headers)
        if is_api:
            fake.limiter.answered(response.status)
        fake.notify()
        return response

    def _check_spec(self, request: web.Request, record: RecordedRequest) -> None:
        """The body against Discord's API spec: Discord's 400 to the bot, and a failure of the test."""
        spec = self.fake.spec
        if spec is None:
            return
        try:
            spec.check(request.method, request.path.removeprefix(API), record.json)
        except SpecViolation as exc:
            self.fake.spec_violations.append(record)
            self.fake.fail(f"{record.route} breaks Discord's API spec at {exc.where}: {exc.reason}")
            raise

    async def unknown(self, request: web.Request) -> web.Response:
        self.fake.fail(f"request to an unknown route: {request.method} {request.path}")
        raise ApiError(404, 0, "404: Not Found")

    async def no_content(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    def _channel(self, request: web.Request) -> Channel:
        channel = self.fake.channels.get(snowflake(request, "channel_id"))
        if channel is None:
            raise UNKNOWN_CHANNEL()
        return channel

    def _channel_message(self, request: web.Request) -> tuple[Channel, Message]:
        channel = self._channel(request)
        message = self.fake.message(snowflake(request, "message_id"))
        if message is None or message.channel is not channel or message.ephemeral or message.deleted:
            raise UNKNOWN_MESSAGE()
        return channel, message

    def _require(self, channel: Channel, permissions: int) -> None:
        if channel.guild is not None and self.fake.bot_permissions(channel.guild) & permissions != permissions:
            raise MISSING_PERMISSIONS()

    # -- login, users, channels ----------------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        me = {
            **self.fake.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "email": None,
        }
        return answer(request, me)

    async def get_application(self, request: web.Request) -> web.Response:
        fake = self.fake
        return answer(request, {
            "id": str(fake.application_id), "name": fake.bot_user.name, "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "owner": fake.owner.payload(),
            "verify_key": "0" * 64, "flags": 0, "interactions_endpoint_url": None, "team": None,
            "summary": "", "bot": fake.bot_user.payload(),
        })  # fmt: skip

    async def get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        # `shards`: how many Discord recommends, which an AutoShardedClient without a shard_count uses.
        body = {"url": self.fake.gateway_url, "shards": self.fake.shard_count, "session_start_limit": limit}
        return answer(request, body)

    async def open_dm(self, request: web.Request) -> web.Response:
        user = self.fake.users.get(int(request[RECORD].json["recipient_id"]))
        if user is None:
            raise invalid("recipient_id", "USER_NOT_FOUND", "Unknown user")
        return answer(request, self.fake.dm(user).payload())

    async def get_channel(self, request: web.Request) -> web.Response:
        return answer(request, self._channel(request).payload())

    async def create_thread(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body = request[RECORD].json or {}
        if channel.type != GUILD_TEXT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require(channel, CREATE_PUBLIC_THREADS)
        starter = None
        if "message_id" in request.match_info:
            _, starter = self._channel_message(request)
            if starter.thread is not None:
                raise ApiError(400, 160004, "A thread has already been created for this message")
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            raise bad_length("name", 1, 100)
        thread = await self.fake.create_thread(
            channel, name, message=starter, owner=self.fake.bot_user, type=body.get("type", PUBLIC_THREAD)
        )
        return answer(request, thread.payload(), 201)

    # -- channel messages ----------------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        channel = self._channel(request)
        self._require(channel, SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES)
        if record.files:
            self._require(channel, ATTACH_FILES)
        limit = self.fake.size_limit(channel)
        message = self.messages.create(channel, self.fake.bot_user, record.json or {}, record.files, size_limit=limit)
        await self.messages.created(message)
        return answer(request, message.payload(self.messages.rest_strips))

    async def get_message(self, request: web.Request) -> web.Response:
        _, message = self._channel_message(request)
        return answer(request, message.payload(self.messages.rest_strips))

    async def get_history(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        query = request.query
        limit = int(query.get("limit", 50))
        if not 1 <= limit <= 100:
            raise invalid("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        found = [m for m in channel.messages if not m.ephemeral]
        if "before" in query:
            found = [m for m in found if m.id < int(query["before"])][-limit:]
        elif "after" in query:
            found = [m for m in found if m.id > int(query["after"])][:limit]
        elif "around" in query:
            pivot = next((i for i, m in enumerate(found) if m.id >= int(query["around"])), len(found))
            start = max(0, pivot - limit // 2)
            found = found[start : start + limit]
        else:
            found = found[-limit:]
        return answer(request, [m.payload(self.messages.rest_strips) for m in reversed(found)])

    async def edit_message(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        channel, message = self._channel_message(request)
        if message.author is not self.fake.bot_user:
            raise NOT_AUTHOR()
        self.messages.edit(message, record.json or {}, record.files, size_limit=self.fake.size_limit(channel))
        await self.messages.updated(message)
        return answer(request, message.payload(self.messages.rest_strips))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel, message = self._channel_message(request)
        if message.author is not self.fake.bot_user:
            self._require(channel, MANAGE_MESSAGES)
        await self.messages.delete(message)
        return web.Response(status=204)

    async def react(self, request: web.Request) -> web.Response:
        _, message = self._channel_message(request)
        emoji = request.match_info["emoji"]
        users = message.reactions.setdefault(emoji, set())
        if request.method == "PUT":
            users.add(self.fake.bot_user.id)
        else:
            users.discard(self.fake.bot_user.id)
            if not users:
                del message.reactions[emoji]
        return web.Response(status=204)

    # -- commands and CDN ------------------------------------------------------------------------------------

    async def commands(self, request: web.Request) -> web.Response:
        fake = self.fake
        if snowflake(request, "application_id") != fake.application_id:
            raise UNKNOWN_APPLICATION()
        scope = None
        if "guild_id" in request.match_info:
            scope = snowflake(request, "guild_id")
            if scope not in fake.guilds:
                raise UNKNOWN_GUILD()
        if request.method == "PUT":
            body = request[RECORD].json
            if not isinstance(body, list):
                raise invalid("", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            check_commands(body)
            fake.sync_commands(scope, body)
        return answer(request, fake.commands.get(scope, []))

    async def cdn(self, request: web.Request) -> web.Response:
        attachment = self.fake.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")


async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """JSON, or multipart with `payload_json` and `files[n]` parts exactly as discord.py sends them."""
    if not request.body_exists:
        return None, []
    raw = await request.read()
    if request.content_type == "application/json":
        return _json(raw), []
    if request.content_type != "multipart/form-data":
        return raw.decode(), []
    # Split by hand: aiohttp's part reader scans 8 KiB at a time, ten times slower on images of megabytes.
    body: Any = None
    files: list[UploadedFile] = []
    header = email.message_from_string(f"Content-Type: {request.headers['Content-Type']}\n\n")
    delimiter = b"--" + str(header.get_param("boundary")).encode()
    start = raw.find(delimiter) + len(delimiter)
    while not raw.startswith(b"--", start):  # "--" after a delimiter closes the body
        end = raw.find(delimiter, start)
        head_end = raw.find(b"\r\n\r\n", start)
        if end < 0 or head_end < 0:
            raise ApiError(400, 50035, "Malformed multipart body")
        part = email.message_from_string(raw[start:head_end].decode().lstrip() + "\r\n\r\n")
        data = raw[head_end + 4 : end - 2]  # the only copy of the file: it ends with CRLF before `end`
        name = part.get_param("name", header="content-disposition")
        if name == "payload_json":
            body = _json(data)
        elif isinstance(name, str) and (match := _FILE_PART.match(name)):
            content_type = part.get("Content-Type", "application/octet-stream")
            files.append(UploadedFile(int(match.group(1)), part.get_filename() or "", content_type, data))
        else:
            raise ApiError(400, 50035, f"Unexpected multipart field {name!r}")
        start = end + len(delimiter)
    return body, files


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
