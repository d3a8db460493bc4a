"""Interaction callbacks, followups and `@original` edits: the HTTP side of answering an interaction.

Deadlines come from the fake's clock: the first callback within 3 s of dispatch, then 15 minutes of token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord_interactions import (
    ALLOWED_CALLBACKS,
    APPLICATION_COMMAND,
    DEFERRED_MESSAGE,
    DEFERRED_UPDATE,
    MESSAGE,
    MODAL,
    UPDATE_MESSAGE,
    Callback,
    Interaction,
)
from tests.fakes.discord_limits import (
    ALREADY_ACKNOWLEDGED,
    INTERACTION_DEADLINE,
    TOKEN_LIFETIME,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    UNKNOWN_WEBHOOK,
    check_modal,
    invalid,
    too_long,
)
from tests.fakes.discord_messages import Message, UploadedFile
from tests.fakes.discord_rest import RECORD, Route, answer, snowflake
from tests.fakes.discord_state import FLAG_EPHEMERAL, TYPE_CONTEXT_MENU, TYPE_SLASH

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord


class InteractionApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.messages = fake.message_ops

    def routes(self) -> list[Route]:
        return [
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.callback),
            ("POST", "/webhooks/{application_id}/{token}", self.followup),
            ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", self.webhook_message),
            ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", self.webhook_message),
            ("DELETE", "/webhooks/{application_id}/{token}/messages/{message_id}", self.webhook_message),
        ]

    async def callback(self, request: web.Request) -> web.Response:
        fake, record = self.fake, request[RECORD]
        ix = fake.interaction_by_token(request.match_info["token"])
        if ix is None or ix.id != snowflake(request, "interaction_id"):
            raise UNKNOWN_INTERACTION()
        if fake.now() - ix.created_at > INTERACTION_DEADLINE:
            raise UNKNOWN_INTERACTION()
        if ix.callbacks:
            raise ALREADY_ACKNOWLEDGED()
        body = record.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        updates = kind in (DEFERRED_UPDATE, UPDATE_MESSAGE)
        if kind not in ALLOWED_CALLBACKS.get(ix.type, ()) or (updates and ix.message is None):
            reason = f"Callback type {kind} cannot answer an interaction of type {ix.type}"
            raise invalid("type", "INTERACTION_CALLBACK_TYPE_INVALID", reason)
        message: Message | None = None
        if kind in (MESSAGE, DEFERRED_MESSAGE):
            message = self._response_message(ix, data, record.files, loading=kind == DEFERRED_MESSAGE)
        elif updates:
            message = ix.message
            assert message is not None
            if kind == UPDATE_MESSAGE:
                limit = ix.payload["attachment_size_limit"]
                self.messages.edit(message, data, record.files, size_limit=limit)
        elif kind == MODAL:
            check_modal(data)
        elif len(data.get("choices") or []) > 25:
            raise too_long("data.choices", 25)
        ix.callbacks.append(Callback(kind, data, tuple(record.files), fake.now()))
        result: dict[str, Any] = {
            "interaction": {
                "id": str(ix.id),
                "type": ix.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": kind == DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": {"type": kind},
        }
        if message is not None:
            ix.original_id = message.id
            if kind != DEFERRED_UPDATE:
                result["resource"]["message"] = message.payload()
                await (self.messages.updated if updates else self.messages.created)(message)
        return answer(request, result)

    def _response_message(
        self, ix: Interaction, body: dict[str, Any], files: list[UploadedFile], *, loading: bool = False
    ) -> Message:
        fake = self.fake
        metadata = {
            "id": str(ix.id),
            "type": ix.type,
            "user": ix.user.user.payload(),
            "authorizing_integration_owners": ix.payload["authorizing_integration_owners"],
        }
        if ix.message is not None:
            metadata["interacted_message_id"] = str(ix.message.id)
        kind = 0
        if ix.type == APPLICATION_COMMAND:
            kind = TYPE_SLASH if ix.payload["data"].get("type", 1) == 1 else TYPE_CONTEXT_MENU
        return self.messages.create(
            ix.channel,
            fake.bot_user,
            body,
            files,
            size_limit=ix.payload["attachment_size_limit"],
            type=kind,
            webhook=True,
            interaction_metadata=metadata,
            loading=loading,
        )

    def _webhook_interaction(self, request: web.Request) -> Interaction:
        fake = self.fake
        ix = fake.interaction_by_token(request.match_info["token"])
        if snowflake(request, "application_id") != fake.application_id or ix is None or not ix.callbacks:
            raise UNKNOWN_WEBHOOK()
        if fake.now() - ix.created_at > TOKEN_LIFETIME:
            raise UNKNOWN_WEBHOOK()
        return ix

    async def followup(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        ix = self._webhook_interaction(request)
        body, original = record.json or {}, ix.original
        if ix.response_type == DEFERRED_MESSAGE and original is not None and original.loading:
            # The first followup after a "thinking" defer replaces it, and keeps the defer's ephemerality.
            flags = (body.get("flags") or 0) & ~FLAG_EPHEMERAL
            limit = ix.payload["attachment_size_limit"]
            self.messages.edit(original, {**body, "flags": flags}, record.files, size_limit=limit)
            message, event = original, self.messages.updated
        else:
            message, event = self._response_message(ix, body, record.files), self.messages.created
        ix.followups.append(message)
        await event(message)
        if request.query.get("wait") not in ("1", "true", "True"):
            return web.Response(status=204)
        return answer(request, message.payload())

    async def webhook_message(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        ix = self._webhook_interaction(request)
        if request.match_info["message_id"] == "@original":
            message = ix.original
        else:
            message = self.fake.message(snowflake(request, "message_id"))
        if message is None or message.deleted or (message is not ix.original and message not in ix.followups):
            raise UNKNOWN_MESSAGE()
        if request.method == "DELETE":
            await self.messages.delete(message)
            return web.Response(status=204)
        if request.method == "PATCH":
            limit = ix.payload["attachment_size_limit"]
            self.messages.edit(message, record.json or {}, record.files, size_limit=limit)
            if message is ix.original:
                ix.edits.append(record.json or {})
            await self.messages.updated(message)
        return answer(request, message.payload())
