"""A strict fake OpenAI-compatible gateway for Nano Banana on 127.0.0.1: the Images API (`/v1/images/generations`
JSON, `/v1/images/edits` multipart) and chat completions with image output (`/v1/chat/completions` with
`modalities` and `image_config`, pictures in `message.images[]`), either or both.

It checks what the real services check (route, Bearer key, model, parameters, upload types; see
`openai_gateway_schema`), records every request without its key, answers from a script of `GatewayReply` values
(default: a picture of the size the gateway's `size_mode` gives), serves its own `url` results over plain http
(an https-only client must refuse them unless told otherwise), and counts the work it bills, even when the client
went away before the answer.

    async with FakeGateway(kinds=("images",), size_mode="fixed") as gateway:
        gateway.enqueue(GatewayReply.rate_limited(2), GatewayReply.jpeg())
        client = AsyncOpenAI(api_key=gateway.api_key, base_url=gateway.openai_base_url)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.gemini_images import image_size
from tests.fakes.openai_gateway_chat import ChatCall, chat_body, chat_output_size, validate_chat
from tests.fakes.openai_gateway_files import PATH as FILES_PATH
from tests.fakes.openai_gateway_files import FileStore
from tests.fakes.openai_gateway_replies import (
    Download,
    GatewayReply,
    GatewayRequest,
    error_body,
    images_body,
    picture,
)
from tests.fakes.openai_gateway_schema import (
    SIZE_MODES,
    ImageCall,
    ImageRules,
    InputImage,
    Invalid,
    output_size,
    prompt_tokens,
    validate_edit,
    validate_generation,
)

__all__ = ["DEFAULT_API_KEY", "DEFAULT_PRICES", "Download", "FakeGateway", "GatewayReply", "GatewayRequest"]

DEFAULT_API_KEY = "sk-fake-gateway-0123456789abcdef"
# USD per output picture, what the gateway charges (and reports as chat usage.cost, plus the prompt's tokens).
DEFAULT_PRICES: dict[str, float] = {
    "nano-banana": 0.039,
    "nano-banana-pro": 0.134,
    "nano-banana-2": 0.067,
    "google/gemini-2.5-flash-image": 0.039,
    "google/gemini-3-pro-image": 0.134,
    "google/gemini-3.1-flash-image": 0.067,
    "google/gemini-nano-banana-2.1": 0.0336,
}
INPUT_TOKEN_PRICE = 3e-7
MAX_REQUEST_BYTES = 50 * 1024 * 1024
_ROUTES = {"images/generations": "generations", "images/edits": "edits", "chat/completions": "chat"}
_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


class FakeGateway:
    """The fake server. `requests` holds every API request in arrival order, rejected or not; `downloads` every
    fetch of a `url` result; `billed`/`billed_cost` the work the gateway charges for."""

    def __init__(
        self,
        *,
        kinds: tuple[str, ...] = ("images", "chat"),
        api_key: str = DEFAULT_API_KEY,
        models: tuple[str, ...] | None = None,
        prices: dict[str, float] | None = None,
        prefix: str = "/v1",
        size_mode: str = "exact",
        fixed_size: tuple[int, int] = (1024, 1024),
        sizes: tuple[str, ...] | None = None,
        output_format: str = "png",
        default_response_format: str = "b64_json",
        max_n: int = 1,
        max_input_images: int = 14,
        extra_params: tuple[str, ...] = (),
        unknown_model_status: int = 404,
        error_style: str = "openai",
        rpm: int | None = None,
        window: float = 60.0,
        latency: float | Callable[[GatewayRequest], float] = 0.0,
        url_base: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert set(kinds) <= {"images", "chat"} and kinds, kinds
        assert size_mode in SIZE_MODES, size_mode
        assert output_format in ("png", "jpeg") and error_style in ("openai", "openrouter")
        self.kinds = kinds
        self.api_key = api_key
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.models = tuple(self.prices) if models is None else models
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.size_mode = size_mode
        self.fixed_size = fixed_size
        self.sizes = sizes
        self.output_format = output_format
        self.default_response_format = default_response_format
        self.max_n = max_n
        self.max_input_images = max_input_images
        self.extra_params = extra_params
        self.unknown_model_status = unknown_model_status
        self.error_style = error_style
        self.rpm = rpm
        self.window = window
        self.latency = latency
        self.url_base = url_base
        self.clock = clock
        self.default_reply = GatewayReply.image()  # what answers when the script is empty; a test may swap it
        self.requests: list[GatewayRequest] = []
        self.script: deque[GatewayReply] = deque()
        self.billed = 0
        self.billed_cost = 0.0
        self.rate_limit_hits = 0  # 429s sent by the rpm limiter (scripted 429s are not counted)
        self.in_flight = 0
        self.max_in_flight = 0
        self.store = FileStore(clock, self._pause)  # `url` results and their downloads
        self._starts: deque[float] = deque()
        self._changed = asyncio.Event()  # replaced each time a request ends, to wake `wait_until`
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The gateway's root: requests go to `{base_url}/v1/images/generations` and so on."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What the official SDK takes as `base_url` (the root plus the version prefix)."""
        return self.base_url + self.prefix

    def enqueue(self, *replies: GatewayReply) -> None:
        """Answer the next valid requests with these, in order; afterwards `default_reply` again."""
        self.script.extend(replies)

    @property
    def downloads(self) -> list[Download]:
        """Every fetch of a `url` result, in arrival order."""
        return self.store.downloads

    @property
    def served(self) -> list[GatewayRequest]:
        """Requests that got a 200."""
        return [r for r in self.requests if r.status == 200]

    def requests_to(self, kind: str) -> list[GatewayRequest]:
        return [r for r in self.requests if r.kind == kind]

    async def start(self) -> FakeGateway:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up ends the handler, as on a real server (work stays billed).
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- the API ---
    async def _handle(self, http: web.Request) -> web.StreamResponse:
        if http.path.startswith(FILES_PATH):
            return await self.store.serve(http)
        record = GatewayRequest(
            method=http.method,
            path=http.path,
            kind=self._route(http),
            headers={k.lower(): v for k, v in http.headers.items() if k.lower() != "authorization"},
            at=self.clock(),
            auth=self._auth(http.headers.get("Authorization")),
        )
        self.requests.append(record)
        try:
            return await self._answer(http, record)
        except asyncio.CancelledError:
            record.cancelled = record.status != 0  # 0: the fake itself dropped the connection
            raise
        finally:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Waits (at most `within` seconds) until `predicate()` holds, checking each time a request ends: e.g.
        until the handler of a request whose client gave up has seen the cancellation."""
        async with asyncio.timeout(within):
            while not predicate():
                await self._changed.wait()

    def _route(self, http: web.Request) -> str | None:
        head, _, tail = http.path.partition(self.prefix + "/") if self.prefix else ("", "", http.path[1:])
        kind = _ROUTES.get(tail) if head == "" and http.method == "POST" else None
        wanted = "chat" if kind == "chat" else "images"
        return kind if kind is not None and wanted in self.kinds else None

    def _auth(self, header: str | None) -> str:
        if not header:
            return "missing"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return "not-bearer"
        return "ok" if secrets.compare_digest(token.strip().encode(), self.api_key.encode()) else "wrong"

    async def _answer(self, http: web.Request, record: GatewayRequest) -> web.StreamResponse:
        reply = await self._check(http, record)
        if reply is None:
            reply = self._limit(record)
        if reply is None:
            reply = self.script.popleft() if self.script else self.default_reply
        if reply.outcome == "image" and isinstance(record.call, ChatCall) and not record.call.wants_image:
            # No "image" in modalities: Gemini behind a chat gateway answers in words only.
            reply = GatewayReply.text_only("Here is a description instead of a picture: " + record.call.prompt[:200])
        if record.call is not None and (reply.outcome in ("image", "text", "refusal") or reply.work_done):
            self._bill(record, reply)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            latency = self.latency(record) if callable(self.latency) else self.latency
            await self._pause(latency + reply.delay)
        finally:
            self.in_flight -= 1
        if reply.outcome == "disconnect":
            record.status = 0
            if http.transport is not None:
                http.transport.abort()
            raise asyncio.CancelledError  # nothing more to send: the connection is gone
        status, payload = self._render(record, reply)
        record.status = status
        headers = {"x-request-id": "req_" + secrets.token_hex(12), **dict(reply.headers), **self._limit_headers()}
        if reply.outcome == "raw":
            headers["Content-Type"] = reply.content_type
            return web.Response(status=status, body=reply.body, headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    async def _check(self, http: web.Request, record: GatewayRequest) -> GatewayReply | None:
        """Reads and validates the request; an error reply if the gateway refuses it."""
        if record.kind is None:
            return GatewayReply.error(404, f"Invalid URL ({http.method} {http.path})")
        if record.auth == "missing":
            return GatewayReply.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if record.auth != "ok":
            return GatewayReply.error(401, "Incorrect API key provided.", code="invalid_api_key")
        if (http.content_length or 0) > MAX_REQUEST_BYTES:
            return GatewayReply.error(413, f"Request too large: at most {MAX_REQUEST_BYTES} bytes.")
        try:
            if record.kind == "edits":
                await self._read_multipart(http, record)
            else:
                raw = await http.read()
                record.size = len(raw)
                try:
                    record.body = json.loads(raw)
                except ValueError:
                    return GatewayReply.error(400, _JSON_HINT)
            model = record.body.get("model") if isinstance(record.body, dict) else None
            if isinstance(model, str) and model and model not in self.models:
                return self._unknown_model(model)
            record.call = self._validate(record)
        except Invalid as exc:
            return GatewayReply.error(exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code)
        record.images = list(record.call.images)
        return None

    def _validate(self, record: GatewayRequest) -> ImageCall | ChatCall:
        rules = ImageRules(
            self.max_n,
            self.size_mode,
            self.sizes,
            self.default_response_format,
            self.extra_params,
            self.max_input_images,
        )
        if record.kind == "generations":
            return validate_generation(record.body, rules)
        if record.kind == "edits":
            return validate_edit(record.fields, record.images, rules)
        return validate_chat(record.body, max_images=self.max_input_images)

    async def _read_multipart(self, http: web.Request, record: GatewayRequest) -> None:
        content_type = http.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise Invalid(
                f"Invalid Content-Type header ({content_type or 'none'}), expected multipart/form-data. (HINT: If "
                "you're using curl, you can pass -H 'Content-Type: multipart/form-data')"
            )
        try:
            reader = await http.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or not part.name:
                    raise Invalid("Invalid multipart body: every part needs a name.")
                data = await part.read()
                record.size += len(data)
                if part.filename is None:
                    record.fields.append((part.name, data.decode("utf-8")))
                else:
                    declared = part.headers.get("Content-Type", "application/octet-stream")
                    record.images.append(InputImage(part.name, part.filename, declared, bytes(data)))
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise Invalid(f"Invalid multipart body: {exc}") from None
        record.body = dict(record.fields)

    def _unknown_model(self, model: str) -> GatewayReply:
        if self.unknown_model_status == 404:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return GatewayReply.error(404, message, code="model_not_found")
        return GatewayReply.error(self.unknown_model_status, f"{model} is not a valid model ID", param="model")

    def _limit(self, record: GatewayRequest) -> GatewayReply | None:
        """Strict sliding window: at most `rpm` requests in any `window` seconds."""
        if self.rpm is None:
            return None
        while self._starts and self._starts[0] <= record.at - self.window:
            self._starts.popleft()
        if len(self._starts) < self.rpm:
            self._starts.append(record.at)
            return None
        self.rate_limit_hits += 1
        wait = max(1, int(self._starts[0] + self.window - record.at + 0.999))
        return GatewayReply.rate_limited(wait, limit=self.rpm)

    def _limit_headers(self) -> dict[str, str]:
        if self.rpm is None:
            return {}
        return {
            "x-ratelimit-limit-requests": str(self.rpm),
            "x-ratelimit-remaining-requests": str(max(0, self.rpm - len(self._starts))),
        }

    # --- billing and answers ---
    def _bill(self, record: GatewayRequest, reply: GatewayReply) -> None:
        """Makes the pictures and charges for them now: the work is done whether or not the client waits."""
        call = record.call
        assert call is not None
        if reply.outcome == "refusal" and isinstance(call, ImageCall):
            return  # the Images API refuses with a 400 before any work
        if reply.outcome == "image" or reply.work_done:
            fmt = reply.format or self.output_format
            count = call.n if isinstance(call, ImageCall) else 1
            if reply.data is not None:
                record.outputs = [reply.data] * count
            else:
                record.outputs = [picture(*self._size(call, reply), fmt)] * count
        price = self.prices.get(call.model, 0.0) * len(record.outputs)
        tokens = prompt_tokens(call.prompt, len(call.images))
        record.cost = reply.cost if reply.cost is not None else round(price + tokens * INPUT_TOKEN_PRICE, 8)
        record.billed = True
        self.billed += 1
        self.billed_cost += record.cost

    def _size(self, call: ImageCall | ChatCall, reply: GatewayReply) -> tuple[int, int]:
        if reply.size is not None:
            return reply.size
        if isinstance(call, ChatCall):
            return chat_output_size(call, image_size(call.images[-1].data) if call.images else None)
        first = image_size(call.images[0].data) if call.images else None
        return output_size(call.size, self.size_mode, self.fixed_size, first)

    def _render(self, record: GatewayRequest, reply: GatewayReply) -> tuple[int, Any]:
        if reply.outcome == "refusal" and isinstance(record.call, ImageCall):
            reply = GatewayReply.error(400, reply.text or "", code="content_policy_violation")
        if reply.outcome == "error":
            record.error_code = (reply.envelope or {}).get("code")
            return reply.status, error_body(reply.status, reply.envelope or {}, self.error_style)
        if reply.outcome == "raw":
            return reply.status, None
        if isinstance(record.call, ChatCall):
            return 200, chat_body(record.call, reply, record.outputs, record.cost)
        assert isinstance(record.call, ImageCall)
        data = [self._result(record, reply, picture_bytes) for picture_bytes in record.outputs]
        return 200, images_body(record.call, data, len(record.outputs))

    def _result(self, record: GatewayRequest, reply: GatewayReply, data: bytes) -> dict[str, Any]:
        assert isinstance(record.call, ImageCall)
        if record.call.response_format == "b64_json":
            return {"b64_json": base64.b64encode(data).decode("ascii")}
        status, delay, content_type = reply.download_status, reply.download_delay, reply.download_content_type
        url = self.store.put(
            self.url_base or self.base_url, data, status=status, delay=delay, content_type=content_type
        )
        record.urls.append(url)
        return {"url": url}

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
