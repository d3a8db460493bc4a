"""A strict fake of Gemini's `generateContent` REST endpoint on 127.0.0.1.

It checks what the real API checks (path, model id, key, body schema, size; see `gemini_schema`), records
every request, answers from a script of `GeminiReply` values (or a valid image of the requested aspect ratio),
and can enforce a strict sliding-window requests-per-minute limit with real-shaped 429 answers.

    async with FakeGemini(rpm=10) as fake:
        fake.enqueue(GeminiReply.overloaded(), GeminiReply.image(png))
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from tests.fakes.gemini_replies import KNOWN_MODELS, GeminiReply, RecordedRequest, response
from tests.fakes.gemini_schema import MAX_REQUEST_BYTES, Invalid, validate_request

__all__ = ["DEFAULT_API_KEY", "KNOWN_MODELS", "FakeGemini", "GeminiReply", "RecordedRequest", "response"]

DEFAULT_API_KEY = "fake-gemini-key-0123456789"
_PATH = re.compile(r"^/v1beta/models/([^/:]+):generateContent$")


class FakeGemini:
    """The fake server. `requests` holds everything that arrived, rejected or not, in arrival order."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        models: tuple[str, ...] = KNOWN_MODELS,
        rpm: int | None = None,
        window: float = 60.0,
        latency: float | Callable[[RecordedRequest], float] = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.rpm = rpm
        self.window = window
        self.latency = latency
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.script: deque[GeminiReply] = deque()
        self.rate_limit_hits = 0  # 429s sent by the rpm limiter (scripted 429s are not counted)
        self.in_flight = 0
        self.max_in_flight = 0
        self._starts: deque[float] = deque()  # arrival times of requests the limiter let through
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *replies: GeminiReply) -> None:
        """Answer the next valid requests with these, in order; afterwards the default image again."""
        self.script.extend(replies)

    @property
    def served(self) -> list[RecordedRequest]:
        """Requests that got a 200."""
        return [r for r in self.requests if r.status == 200]

    async def start(self) -> FakeGemini:
        app = web.Application(client_max_size=4 * MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up on a stall ends the handler, as on a real server.
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

    async def __aenter__(self) -> FakeGemini:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        raw = await http.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = RecordedRequest(
            method=http.method,
            path=http.path,
            query=dict(http.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=body,
            size=len(raw),
            at=self.clock(),
        )
        self.requests.append(record)
        reply = self._check(http, record, raw)
        if reply is None:
            reply = self._limit(record)
        if reply is None:
            reply = self.script.popleft() if self.script else GeminiReply.image()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                latency = self.latency(record) if callable(self.latency) else self.latency
                await self._pause(latency + reply.delay)
            finally:
                self.in_flight -= 1
        record.status = reply.status
        payload = reply.body(record) if callable(reply.body) else reply.body
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        return web.Response(status=reply.status, body=data, headers={"Content-Type": reply.content_type})

    def _check(self, http: web.Request, record: RecordedRequest, raw: bytes) -> GeminiReply | None:
        match = _PATH.match(http.path)
        if http.method != "POST" or match is None:
            return GeminiReply.error(404, "NOT_FOUND", "Requested entity was not found.")
        record.model = match.group(1)
        key = http.headers.get("x-goog-api-key") or http.query.get("key")
        if not key:
            # What Google answers when no key at all is sent (captured in public issue trackers).
            return GeminiReply.error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use "
                "API Key or other form of API consumer identity to call this API.",
            )
        if key != self.api_key:
            return GeminiReply.api_key_invalid()
        if record.model not in self.models:
            return GeminiReply.error(
                404,
                "NOT_FOUND",
                f"models/{record.model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods.",
            )
        if len(raw) > MAX_REQUEST_BYTES:
            return GeminiReply.error(
                400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
            )
        if record.body is None:
            return GeminiReply.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")
        try:
            record.request = validate_request(record.body, record.model)
        except Invalid as exc:
            return GeminiReply.error(exc.code, exc.status, exc.message)
        return None

    def _limit(self, record: RecordedRequest) -> GeminiReply | None:
        """Strict sliding window: at most `rpm` requests in any `window` seconds, (now - window, now]."""
        if self.rpm is None:
            return None
        while self._starts and self._starts[0] <= record.at - self.window:
            self._starts.popleft()
        if len(self._starts) < self.rpm:
            self._starts.append(record.at)
            return None
        self.rate_limit_hits += 1
        wait = self._starts[0] + self.window - record.at
        return GeminiReply.rate_limited(wait, limit=self.rpm, model=record.model or KNOWN_MODELS[0])

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
