"""Gemini image generation over REST (`generateContent`), one HTTP attempt per call.

Retries are not done here: `bot.providers.retry` wraps each attempt in the scheduler so every retry goes back through
the upstream rate gate. This module builds the request, parses the answer in the order of
shared/reference/gemini-api.md and maps every wire failure into `bot.errors`.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiohttp

# SIMD base64: a 1.5 MB image decodes in 0.2 ms instead of 6.5 ms with the standard library (bench/overhead.py).
import pybase64
from pydantic import SecretStr

from bot.config import DEFAULTS
from bot.editing.images import sniff_mime
from bot.errors import (
    GenerationFailed,
    ImageBlocked,
    ModelUnavailable,
    OperatorError,
    PromptBlocked,
    RateLimited,
    TextOnlyAnswer,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import Context, GeneratedImage, ImageOptions, InputImage, Turn, Usage
from bot.providers.registry import ModelRegistry, ModelSpec

log = logging.getLogger(__name__)

API_VERSION = "v1beta"  # google-genai 3.x defaults to v1, which was seen rejecting responseModalities
# Finish reasons that mean Google's filter refused the image (its finishMessage is shown to the user).
SAFETY_FINISH_REASONS = frozenset(
    {
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
    }
)
# Keys a real answer carries at the top level; a JSON object with none of them is not a Gemini answer.
_RESPONSE_KEYS = frozenset({"candidates", "promptFeedback", "usageMetadata", "modelVersion", "responseId"})
# What google-genai retries, less 429 (handled above with its own wait).
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})
_MAX_DETAIL = 500
_TYPE_PREFIX = "type.googleapis.com/google.rpc."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_LIMIT_ZERO = re.compile(r"limit:\s*0(?![\d.])")


class GeminiProvider:
    """`ImageProvider` for Gemini image models. The aiohttp session is the app's and is not closed here. One
    provider serves every model: the request's options name the model and size (`model` is the default)."""

    name = "gemini"  # how metrics and reports name this provider

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULTS.gemini_base_url,
        registry: ModelRegistry | None = None,
        attempt_timeout: float = DEFAULTS.gemini_attempt_timeout_seconds,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.registry = registry or ModelRegistry.build()
        self.model = self.registry.default.id
        self.attempt_timeout = attempt_timeout

    def __repr__(self) -> str:
        return f"GeminiProvider(model={self.model!r}, base_url={self.base_url!r})"

    def url(self, model: str, method: str = "generateContent") -> str:
        return f"{self.base_url}/{API_VERSION}/models/{model}:{method}"

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: Context | None = None,
    ) -> GeneratedImage:
        """One HTTP attempt: the image, or an `UpstreamError` subclass. `context` holds earlier turns of a
        multi-turn edit, sent before the new instruction exactly as they were received."""
        options = options or ImageOptions()
        spec = self.registry.get(options.model or self.model)
        turns = context.turns if context else ()
        encode = partial(_encode, prompt, images, options, spec, turns)
        # Megabytes of input images take tens of milliseconds to encode: not on the event loop.
        body = await asyncio.to_thread(encode) if images or turns else encode()
        headers = {"x-goog-api-key": self._api_key.get_secret_value(), "Content-Type": "application/json"}
        status, raw = await self._call("POST", self.url(spec.id), body, headers)
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        error = _error_envelope(payload)
        if status != 200 or error is not None:
            raise error_from_response(status, error, raw, model=spec.id)
        size = options.size or spec.default_size
        return parse_response(
            payload, spec.id, cost=lambda usage: self.registry.cost_usd(spec, size, usage, options.tier)
        )

    async def list_models(self) -> list[str]:
        """The ids `GET /v1beta/models` lists for this key, every page (for `python -m bot check`)."""
        found: list[str] = []
        token = ""
        headers = {"x-goog-api-key": self._api_key.get_secret_value()}
        while True:
            query = "?pageSize=1000" + (f"&pageToken={token}" if token else "")
            status, raw = await self._call("GET", f"{self.base_url}/{API_VERSION}/models{query}", None, headers)
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = None
            if status != 200 or not isinstance(payload, dict):
                raise error_from_response(status, _error_envelope(payload), raw)
            for model in payload.get("models") or []:
                if isinstance(model, dict) and isinstance(model.get("name"), str):
                    found.append(model["name"].removeprefix("models/"))
            token = _str(payload.get("nextPageToken")) or ""
            if not token:
                return found

    async def _call(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        return await send(self._session, self._api_key, method, url, body, headers, within=self.attempt_timeout)


async def send(
    session: aiohttp.ClientSession,
    api_key: SecretStr,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    within: float,
) -> tuple[int, bytes]:
    """One HTTP call to Gemini answered `within` seconds: its status and body, with the key cut out of any answer
    that quotes it; a timeout or a connection error as the `UpstreamError` it means (shared with the Batch
    client, `bot.providers.gemini_batch`)."""
    started = time.monotonic()
    try:
        async with session.request(
            method, url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=within)
        ) as resp:
            status = resp.status
            raw = await resp.read()
    except TimeoutError:
        # aiohttp's timeout errors subclass TimeoutError (and ClientError), so this comes first. The request
        # may have been answered (and billed) after we gave up.
        raise _billed(UpstreamTimeout(f"no answer from Gemini within {within:g}s"), True) from None
    except aiohttp.ClientError as exc:
        # The key travels only in a header, so aiohttp's text (host, port, OS error) cannot contain it.
        billed = not isinstance(exc, aiohttp.ClientConnectorError)  # never connected: never billed
        error = UpstreamUnavailable(f"cannot reach Gemini: {type(exc).__name__}: {exc}")
        raise _billed(error, billed) from exc
    log.debug("gemini %s %s answered %s (%d bytes) in %.2fs", method, url, status, len(raw), time.monotonic() - started)
    secret = api_key.get_secret_value().encode()
    if secret in raw:
        # Some Google errors quote the key ("Consumer 'api_key:AIza...' has been suspended").
        raw = raw.replace(secret, b"[redacted]")
    return status, raw


def error_envelope(payload: Any) -> dict | None:
    """The `error` object of a failed answer (some proxies wrap it in a one-element list), else None."""
    return _error_envelope(payload)


def _encode(
    prompt: str, images: tuple[InputImage, ...], options: ImageOptions, spec: ModelSpec, context: tuple[Turn, ...]
) -> bytes:
    return json.dumps(build_request(prompt, images, options, spec=spec, context=context)).encode()


def build_request(
    prompt: str,
    images: tuple[InputImage, ...] = (),
    options: ImageOptions | None = None,
    *,
    spec: ModelSpec | None = None,
    context: tuple[Turn, ...] = (),
) -> dict:
    """The generateContent body: earlier turns (user instruction, model answer as received), then the new user
    turn, its text first, then the input images.

    `imageSize` only for models that take it (2.5 Flash Image rejects the field); no `candidateCount` (N images
    = N requests); `serviceTier` only off the standard lane."""
    options = options or ImageOptions()
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [
        {"inlineData": {"mimeType": image.mime_type, "data": pybase64.b64encode(image.data).decode("ascii")}}
        for image in images
    ]
    contents: list[dict[str, Any]] = []
    for turn in context:
        contents += [{"role": "user", "parts": [{"text": turn.prompt}]}, json.loads(turn.answer)]
    contents.append({"role": "user", "parts": parts})
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    image_config: dict[str, str] = {}
    if options.aspect_ratio:
        image_config["aspectRatio"] = options.aspect_ratio
    if spec is not None and spec.sends_size and options.size:
        image_config["imageSize"] = options.size
    if image_config:
        config["imageConfig"] = image_config
    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if options.tier == "flex":
        body["serviceTier"] = "flex"
    return body


def parse_response(payload: Any, model: str, cost: Callable[[Usage], float] | None = None) -> GeneratedImage:
    """Turn a 200 answer into the image, or raise what Google's answer means (reference: "Parse in this order").
    `cost` prices the answer's usage; an answer without a picture was billed too, and its error says so."""
    if not isinstance(payload, dict) or not _RESPONSE_KEYS & payload.keys():
        raise _billed(UpstreamUnavailable("malformed answer from Gemini: not a generateContent response"), True)
    usage = _usage(payload)
    cost_usd = cost(usage) if cost is not None else None
    try:
        return _parse(payload, model, usage, cost_usd)
    except PromptBlocked as exc:  # refused before anything was made
        exc.billed = False
        raise
    except UpstreamError as exc:  # an answer without a picture: its tokens are billed
        exc.billed, exc.cost_usd = True, cost_usd
        raise


def _parse(payload: dict, model: str, usage: Usage, cost_usd: float | None) -> GeneratedImage:
    feedback = _dict(payload.get("promptFeedback"))
    if feedback.get("blockReason") or "candidates" not in payload:
        reason = str(feedback.get("blockReason") or "OTHER")
        raise PromptBlocked(reason, _str(feedback.get("blockReasonMessage")))
    candidates = payload["candidates"]
    if not isinstance(candidates, list):
        raise UpstreamUnavailable("malformed answer from Gemini: candidates is not a list")
    if not candidates:
        raise GenerationFailed("NO_CANDIDATES")
    candidate = _dict(candidates[0])
    content = _dict(candidate.get("content"))
    parts = content.get("parts")
    parts = [p for p in parts if isinstance(p, dict) and not p.get("thought")] if isinstance(parts, list) else []
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str)).strip() or None
    images = [p for p in parts if _dict(p.get("inlineData")).get("data")]
    if images:
        inline = images[-1]["inlineData"]
        try:
            data = pybase64.b64decode(inline["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise UpstreamUnavailable("malformed answer from Gemini: image data is not base64") from None
        # The declared type can disagree with the bytes (JPEG declared as PNG): the bytes decide.
        mime_type = sniff_mime(data) or _str(inline.get("mimeType")) or "image/png"
        used_model = _str(payload.get("modelVersion")) or model
        # Signed answers are kept as received, so an edit can send them back (Gemini 3 multi-turn editing).
        signed = all("thoughtSignature" in p for p in images)
        kept = content if signed else None
        return GeneratedImage(data, mime_type, used_model, text=text, usage=usage, cost_usd=cost_usd, content=kept)
    reason = _str(candidate.get("finishReason")) or "FINISH_REASON_UNSPECIFIED"
    message = _str(candidate.get("finishMessage"))
    if reason in SAFETY_FINISH_REASONS:
        raise ImageBlocked(reason, message)
    if text and reason in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise TextOnlyAnswer(text)
    # NO_IMAGE, IMAGE_OTHER, OTHER, MAX_TOKENS, STOP without any content, and values added after this was written.
    raise GenerationFailed(reason, message)


def _billed(exc: UpstreamError, billed: bool) -> UpstreamError:
    exc.billed = billed
    return exc


def error_from_response(status: int, error: dict | None, raw: bytes = b"", *, model: str = "") -> UpstreamError:
    """Map a failed answer (HTTP status plus the `error` object, if any) into the bot's hierarchy. 4xx answers
    and 503 (overloaded: nothing started) are refusals before any work, not billed; another 5xx may have been
    (a failed generation may still be billed)."""
    exc = _error_from_response(status, error, raw, model)
    return _billed(exc, isinstance(exc, UpstreamUnavailable) and status != 503)


def _error_from_response(status: int, error: dict | None, raw: bytes, model: str) -> UpstreamError:
    error = error or {}
    code = status if status != 200 else int(error.get("code") or 500)
    google_status = _str(error.get("status")) or ""
    message = _str(error.get("message")) or raw[:200].decode("utf-8", "replace").strip()
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    summary = f"Gemini answered {code} {google_status}: {message}"[:_MAX_DETAIL]
    if code == 429:
        quota_ids = [
            str(v.get("quotaId", ""))
            for d in _details(details, "QuotaFailure")
            for v in d.get("violations") or []
            if isinstance(v, dict)
        ]
        if any("PerDay" in q for q in quota_ids):
            # Resets at midnight Pacific: retrying now only burns requests.
            return OperatorError("daily Gemini quota used up; " + summary, status=429, reason="PerDay")
        if _LIMIT_ZERO.search(message):
            return OperatorError(
                "the Google Cloud project has no quota for this model (limit: 0; image models need billing); "
                + summary,
                status=429,
                reason="limit: 0",
            )
        return RateLimited(summary, _retry_after(details, message))
    if code in _TRANSIENT_STATUSES:
        return UpstreamUnavailable(summary)
    if code == 404 and model:
        # A retired id, a typo, or a legacy model this project was never served (models.get still says 200).
        return ModelUnavailable(summary, model=model)
    if 400 <= code < 500:
        # 400 (bad key, bad field, billing/region), 401-404: our setup or our request is wrong, and retrying
        # cannot help. A bad user input would have been caught by our own validation before sending.
        infos = _details(details, "ErrorInfo")
        reason = _str(infos[0].get("reason")) if infos else None
        return OperatorError(summary, status=code, reason=reason or google_status or None)
    return UpstreamUnavailable(summary)


def _error_envelope(payload: Any) -> dict | None:
    # Some proxies wrap the envelope in a one-element list.
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"]
    return None


def _details(details: list[dict], kind: str) -> list[dict]:
    return [d for d in details if d.get("@type") == _TYPE_PREFIX + kind]


def _retry_after(details: list[dict], message: str) -> float | None:
    for info in _details(details, "RetryInfo"):
        match = _DURATION.match(str(info.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    match = _RETRY_IN.search(message)
    if match:
        value = float(match.group(1))
        return value / 1000 if match.group(2).lower() == "ms" else value
    return None


def _usage(payload: dict) -> Usage:
    meta = _dict(payload.get("usageMetadata"))

    def count(source: dict, key: str) -> int:
        value = source.get(key)
        return value if isinstance(value, int) and value > 0 else 0

    candidates = count(meta, "candidatesTokenCount")
    details = meta.get("candidatesTokensDetails")
    by_modality = [_dict(d) for d in details] if isinstance(details, list) else []
    image = sum(count(d, "tokenCount") for d in by_modality if d.get("modality") == "IMAGE")
    if not by_modality and _has_image(payload):
        image = candidates  # no split given: count it all at the image rate (the larger one)
    thinking = count(meta, "thoughtsTokenCount")
    # Thinking tokens (Gemini 3) are billed as output, at the text rate.
    return Usage(
        prompt_tokens=count(meta, "promptTokenCount"),
        output_tokens=candidates + thinking,
        total_tokens=count(meta, "totalTokenCount"),
        image_tokens=min(image, candidates),
        thinking_tokens=thinking,
    )


def _has_image(payload: dict) -> bool:
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return False
    parts = _dict(_dict(candidates[0]).get("content")).get("parts")
    return isinstance(parts, list) and any(
        isinstance(p, dict) and not p.get("thought") and _dict(p.get("inlineData")).get("data") for p in parts
    )


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
