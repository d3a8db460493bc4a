"""A strict fake of Gemini's REST API on 127.0.0.1: generateContent (image and text models, Flex), Batch, and
the models list.

It checks what the real API checks (path, model id, key, body schema, size, and per model: sizes, ratios, input
count, thought signatures; see `gemini_schema` and `gemini_rules`), records every request, answers from a script
of `GeminiReply` values (or the model's own default answer), and can enforce a strict sliding-window
requests-per-minute limit with real-shaped 429 answers.

    async with FakeGemini(rpm=10) as fake:
        fake.enqueue(GeminiReply.overloaded(), GeminiReply.image(png))
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)

Switches (constructor keywords, also plain attributes a test may change between calls):
- `models`: the ids served (default: the whole lineup); `new_project=True`: legacy models answer 404 on
  generation while `GET /v1beta/models/{id}` still answers 200. Retired preview ids always answer 404.
- Answers: `image_format`, `jpeg_as_png`, `png_weight`, `thought_images`, `model_versions` (see AnswerStyle).
- Text models: `text_answers` (a function of the request, or {substring of the prompt: answer}), `text_delay`,
  `enqueue_text(...)`.
- Flex: `flex_shed` (a count of flex requests to shed with 503, or a predicate of the request), `flex_delay`.
- Batch: `batch_timing=(pending_s, running_s)`, `batch_time_factor`, `batch_expire_after`, `enqueue_batch(...)`,
  `advance_batch(job, state)`; `batches` holds the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.gemini_answers import AnswerStyle, TextAnswers
from tests.fakes.gemini_batch import BatchJob, BatchStore, state_name
from tests.fakes.gemini_endpoints import NOT_FOUND, ModelsAndBatches
from tests.fakes.gemini_models import RETIRED, ModelSpec, spec_for
from tests.fakes.gemini_replies import (
    KNOWN_MODELS,
    GeminiReply,
    RecordedRequest,
    response,
    scripted_answer,
)
from tests.fakes.gemini_rules import validate_request
from tests.fakes.gemini_schema import MAX_REQUEST_BYTES, Invalid, decode_bytes

__all__ = ["DEFAULT_API_KEY", "KNOWN_MODELS", "FakeGemini", "GeminiReply", "RecordedRequest", "response"]

DEFAULT_API_KEY = "fake-gemini-key-0123456789"
_ROUTES = (
    ("POST", re.compile(r"^/v1beta/models/([^/:]+):generateContent$"), "generateContent"),
    ("POST", re.compile(r"^/v1beta/models/([^/:]+):batchGenerateContent$"), "batchGenerateContent"),
    ("GET", re.compile(r"^/v1beta/models$"), "models.list"),
    ("GET", re.compile(r"^/v1beta/models/([^/:]+)$"), "models.get"),
    ("GET", re.compile(r"^/v1beta/batches$"), "batches.list"),
    ("GET", re.compile(r"^/v1beta/batches/([^/:]+)$"), "batches.get"),
    ("POST", re.compile(r"^/v1beta/batches/([^/:]+):cancel$"), "batches.cancel"),
    ("DELETE", re.compile(r"^/v1beta/batches/([^/:]+)$"), "batches.delete"),
)


class FakeGemini(ModelsAndBatches):
    """The fake server. `requests` holds everything that arrived, rejected or not, in arrival order."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        models: tuple[str | ModelSpec, ...] = KNOWN_MODELS,
        new_project: bool = False,
        rpm: int | None = None,
        window: float = 60.0,
        latency: float | Callable[[RecordedRequest], float] = 0.0,
        clock: Callable[[], float] = time.monotonic,
        image_format: str | None = None,
        jpeg_as_png: bool = False,
        png_weight: int | None = None,
        thought_images: int | None = None,
        model_versions: dict[str, str] | None = None,
        text_answers: TextAnswers = None,
        text_delay: float | Callable[[RecordedRequest], float] = 0.0,
        flex_shed: int | Callable[[RecordedRequest], bool] = 0,
        flex_delay: float = 0.0,
        batch_timing: tuple[float, float] | None = None,
        batch_time_factor: float = 1.0,
        batch_expire_after: float = 48 * 3600.0,
    ) -> None:
        self.api_key = api_key
        specs = [m if isinstance(m, ModelSpec) else spec_for(m) for m in models]
        self.specs: dict[str, ModelSpec] = {s.id: s for s in specs}
        self.new_project = new_project
        self.rpm = rpm
        self.window = window
        self.latency = latency
        self.clock = clock
        self.image_format = image_format
        self.jpeg_as_png = jpeg_as_png
        self.png_weight = png_weight
        self.thought_images = thought_images
        self.model_versions = dict(model_versions or {})
        self.text_answers = text_answers
        self.text_delay = text_delay
        self.flex_shed = flex_shed
        self.flex_delay = flex_delay
        self.flex_sheds = 0  # flex requests shed with 503
        self.batches = BatchStore(
            self._complete_batch, timing=batch_timing, factor=batch_time_factor, expire_after=batch_expire_after
        )
        self.requests: list[RecordedRequest] = []
        self.batch_items: list[RecordedRequest] = []  # the inline requests of batches, as answered
        self.script: deque[GeminiReply] = deque()
        self.text_script: deque[GeminiReply] = deque()
        self.batch_script: deque[GeminiReply] = deque()
        self.issued_signatures: list[str] = []  # every thoughtSignature the fake sent, as sent
        self._signatures: set[bytes] = set()
        self.rate_limit_hits = 0  # 429s sent by the rpm limiter (scripted 429s are not counted)
        self.in_flight = 0
        self.max_in_flight = 0
        self._starts: deque[float] = deque()  # arrival times of requests the limiter let through
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.specs)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *replies: GeminiReply) -> None:
        """Answer the next valid image-model generations with these, in order; afterwards the default again."""
        self.script.extend(replies)

    def enqueue_text(self, *replies: GeminiReply) -> None:
        """Answer the next valid text-model generations with these (before `text_answers` is consulted)."""
        self.text_script.extend(replies)

    def enqueue_batch(self, *replies: GeminiReply) -> None:
        """Answer the next inline requests of succeeding batch jobs with these (error replies become errors)."""
        self.batch_script.extend(replies)

    def advance_batch(self, job: BatchJob | str | int = -1, state: str = "SUCCEEDED", **kwargs: Any) -> BatchJob:
        """Move a batch job (default: the latest) to RUNNING, SUCCEEDED, FAILED, CANCELLED or EXPIRED."""
        found = job if isinstance(job, BatchJob) else self.batches.find(job)
        if found is None:
            raise LookupError(f"no batch job {job!r}")
        return self.batches.advance(found, state_name(state), **kwargs)

    @property
    def served(self) -> list[RecordedRequest]:
        """generateContent requests that got a 200."""
        return [r for r in self.requests if r.status == 200 and r.kind == "generateContent"]

    def signature_issued(self, signature: str | bytes) -> bool:
        return (signature if isinstance(signature, bytes) else decode_bytes(signature)) in self._signatures

    def style(self) -> AnswerStyle:
        return AnswerStyle(
            image_format=self.image_format,
            jpeg_as_png=self.jpeg_as_png,
            png_weight=self.png_weight,
            thought_images=self.thought_images,
            model_versions=self.model_versions,
            text_answers=self.text_answers,
        )

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

    # --- the HTTP side ---------------------------------------------------------------------------------------

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        raw = await http.read()
        try:
            body = json.loads(raw) if raw else None
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
            style=self.style(),
        )
        self.requests.append(record)
        reply = self._route(http, record) or self._authorise(http)
        if reply is None:
            if record.kind == "generateContent":
                reply = await self._generate(record, raw)
            elif record.kind == "batchGenerateContent":
                reply = self._batch_create(record, raw)
            elif record.kind.startswith("models."):
                reply = self._models(record, http)
            else:
                reply = self._batch_call(record, http)
        return self._send(record, reply)

    def _route(self, http: web.Request, record: RecordedRequest) -> GeminiReply | None:
        for method, pattern, kind in _ROUTES:
            match = pattern.match(http.path)
            if match and http.method == method:
                record.kind = kind
                record.target = match.group(1) if match.groups() else ""
                if kind in ("generateContent", "batchGenerateContent"):
                    record.model = record.target
                return None
        return NOT_FOUND

    def _authorise(self, http: web.Request) -> GeminiReply | None:
        key = http.headers.get("x-goog-api-key") or http.query.get("key")
        if not key:
            # What Google answers when no key at all is sent (captured in public issue trackers).
            return GeminiReply.error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use "
                "API Key or other form of API consumer identity to call this API.",
            )
        return None if key == self.api_key else GeminiReply.api_key_invalid()

    def _send(self, record: RecordedRequest, reply: GeminiReply) -> web.Response:
        payload = reply.body(record) if callable(reply.body) else reply.body
        if isinstance(payload, GeminiReply):  # a builder that found a test bug answers with a 500 that says so
            reply, payload = payload, payload.body
        record.status = reply.status
        if isinstance(payload, dict | list):
            record.response = payload
            if reply.status == 200:
                self._remember_signatures(payload)
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        return web.Response(status=reply.status, body=data, headers={"Content-Type": reply.content_type})

    def _remember_signatures(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        for found in payload.get("candidates") or []:
            for part in (found.get("content") or {}).get("parts") or []:
                if "thoughtSignature" in part:
                    self.issued_signatures.append(part["thoughtSignature"])
                    self._signatures.add(decode_bytes(part["thoughtSignature"]))

    # --- generateContent -------------------------------------------------------------------------------------

    def _model_check(self, model: str, method: str) -> ModelSpec | GeminiReply:
        if model in RETIRED or model not in self.specs:
            return GeminiReply.model_not_found(model, method)
        spec = self.specs[model]
        if self.new_project and spec.legacy:
            return GeminiReply.not_for_new_users(model)
        return spec

    def _validate(self, record: RecordedRequest, raw: bytes | None) -> GeminiReply | None:
        if raw is not None and len(raw) > MAX_REQUEST_BYTES:
            return GeminiReply.error(
                400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
            )
        if record.body is None:
            return GeminiReply.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")
        assert record.spec is not None
        try:
            record.request = validate_request(record.body, record.spec, known_signature=self._signatures.__contains__)
        except Invalid as exc:
            return GeminiReply.error(exc.code, exc.status, exc.message)
        return None

    async def _generate(self, record: RecordedRequest, raw: bytes) -> GeminiReply:
        assert record.model is not None
        spec = self._model_check(record.model, "generateContent")
        if isinstance(spec, GeminiReply):
            return spec
        record.spec = spec
        reply = self._validate(record, raw) or self._limit(record) or self._shed(record)
        if reply is not None:
            return reply
        reply = self._answer(record, self.script if spec.image else self.text_script)
        delay = reply.delay + (self.latency(record) if callable(self.latency) else self.latency)
        if not spec.image:
            delay += self.text_delay(record) if callable(self.text_delay) else self.text_delay
        if record.service_tier == "flex":
            delay += self.flex_delay
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._pause(delay)
        finally:
            self.in_flight -= 1
        return reply

    def _answer(self, record: RecordedRequest, script: deque[GeminiReply]) -> GeminiReply:
        """The scripted reply, else the model's own default answer."""
        if script:
            return script.popleft()
        assert record.spec is not None
        if record.spec.image:
            modalities = record.config.get("responseModalities")
            return GeminiReply.image() if not modalities or "IMAGE" in modalities else GeminiReply.text_only()
        value = scripted_answer(self.text_answers, record)
        return value if isinstance(value, GeminiReply) else GeminiReply.answer(value)

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

    def _shed(self, record: RecordedRequest) -> GeminiReply | None:
        """Flex is best effort: shed with 503 while `flex_shed` (a count, or a predicate) says so."""
        if record.service_tier != "flex":
            return None
        if callable(self.flex_shed):
            shed = self.flex_shed(record)
        else:
            shed = self.flex_shed > 0
            self.flex_shed -= 1 if shed else 0
        if not shed:
            return None
        self.flex_sheds += 1
        return GeminiReply.overloaded()

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
