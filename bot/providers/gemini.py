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
from functools import partial
from typing import Any

import aiohttp

# SIMD base64: a 1.5 MB image decodes in 0.2 ms instead of 6.5 ms with the standard library (bench/overhead.py).
import pybase64
from pydantic import SecretStr

from bot.config import DEFAULTS
from bot.errors import (
    GenerationFailed,
    ImageBlocked,
    OperatorError,
    PromptBlocked,
    RateLimited,
    TextOnlyAnswer,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import GeneratedImage, ImageOptions, InputImage, Usage

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
    """`ImageProvider` for Gemini image models. The aiohttp session is the app's and is not closed here."""

    name = "gemini"  # how metrics and reports name this provider

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULTS.gemini_base_url,
        model: str = DEFAULTS.gemini_model,
        attempt_timeout: float = DEFAULTS.gemini_attempt_timeout_seconds,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model.removeprefix("models/")
        self.attempt_timeout = attempt_timeout
        self.url = f"{self.base_url}/{API_VERSION}/models/{self.model}:generateContent"

    def __repr__(self) -> str:
        return f"GeminiProvider(model={self.model!r}, base_url={self.base_url!r})"

    async def generate(
        self, prompt: str, images: tuple[InputImage, ...] = (), options: ImageOptions | None = None
    ) -> GeneratedImage:
        """One HTTP attempt: the image, or an `UpstreamError` subclass."""
        encode = partial(_encode, prompt, images, options)
        # Megabytes of input images take tens of milliseconds to encode: not on the event loop.
        body = await asyncio.to_thread(encode) if images else encode()
        headers = {"x-goog-api-key": self._api_key.get_secret_value(), "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.attempt_timeout)
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError:
            # aiohttp's timeout errors subclass TimeoutError (and ClientError), so this comes first.
            raise UpstreamTimeout(f"no answer from Gemini within {self.attempt_timeout:g}s") from None
        except aiohttp.ClientError as exc:
            # The key travels only in a header, so aiohttp's text (host, port, OS error) cannot contain it.
            raise UpstreamUnavailable(f"cannot reach Gemini: {type(exc).__name__}: {exc}") from exc
        log.debug("gemini %s answered %s (%d bytes) in %.2fs", self.model, status, len(raw), time.monotonic() - started)
        secret = self._api_key.get_secret_value().encode()
        if secret in raw:
            # Some Google errors quote the key ("Consumer 'api_key:AIza...' has been suspended").
            raw = raw.replace(secret, b"[redacted]")
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        error = _error_envelope(payload)
        if status != 200 or error is not None:
            raise error_from_response(status, error, raw)
        return parse_response(payload, self.model)


def _encode(prompt: str, images: tuple[InputImage, ...], options: ImageOptions | None) -> bytes:
    return json.dumps(build_request(prompt, images, options)).encode()


def build_request(prompt: str, images: tuple[InputImage, ...] = (), options: ImageOptions | None = None) -> dict:
    """The generateContent body: one user turn, the text first, then the input images.

    No `imageSize` (2.5 Flash Image rejects it), no `candidateCount` (N images = N requests)."""
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [
        {"inlineData": {"mimeType": image.mime_type, "data": pybase64.b64encode(image.data).decode("ascii")}}
        for image in images
    ]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if options is not None and options.aspect_ratio:
        config["imageConfig"] = {"aspectRatio": options.aspect_ratio}
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def parse_response(payload: Any, model: str) -> GeneratedImage:
    """Turn a 200 answer into the image, or raise what Google's answer means (reference: "Parse in this order")."""
    if not isinstance(payload, dict) or not _RESPONSE_KEYS & payload.keys():
        raise UpstreamUnavailable("malformed answer from Gemini: not a generateContent response")
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
    parts = _dict(candidate.get("content")).get("parts")
    parts = [p for p in parts if isinstance(p, dict) and not p.get("thought")] if isinstance(parts, list) else []
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str)).strip() or None
    images = [p for p in parts if _dict(p.get("inlineData")).get("data")]
    if images:
        inline = images[-1]["inlineData"]
        try:
            data = pybase64.b64decode(inline["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise UpstreamUnavailable("malformed answer from Gemini: image data is not base64") from None
        mime_type = _str(inline.get("mimeType")) or _sniff(data)
        used_model = _str(payload.get("modelVersion")) or model
        return GeneratedImage(data, mime_type, used_model, text=text, usage=_usage(payload))
    reason = _str(candidate.get("finishReason")) or "FINISH_REASON_UNSPECIFIED"
    message = _str(candidate.get("finishMessage"))
    if reason in SAFETY_FINISH_REASONS:
        raise ImageBlocked(reason, message)
    if text and reason in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise TextOnlyAnswer(text)
    # NO_IMAGE, IMAGE_OTHER, OTHER, MAX_TOKENS, STOP without any content, and values added after this was written.
    raise GenerationFailed(reason, message)


def error_from_response(status: int, error: dict | None, raw: bytes = b"") -> UpstreamError:
    """Map a failed answer (HTTP status plus the `error` object, if any) into the bot's hierarchy."""
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

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    # Thinking tokens (Gemini 3) are billed as output.
    return Usage(
        prompt_tokens=count("promptTokenCount"),
        output_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),
        total_tokens=count("totalTokenCount"),
    )


def _sniff(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
