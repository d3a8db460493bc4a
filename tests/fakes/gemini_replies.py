"""What the fake Gemini answers: the recorded request it answers to, scripted replies for every case the bot
must handle (`GeminiReply.image()`, `.rate_limited()`, `.stall()`, ...), and real-shaped bodies."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_images import default_png, jpeg_bytes
from tests.fakes.gemini_schema import decode_bytes

KNOWN_MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview")
IMAGE_TOKENS = {"gemini-2.5-flash-image": 1290}  # 3 Pro bills 1120 at 1K/2K
_RPC = "type.googleapis.com/google.rpc."
_RATE_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"


@dataclass
class RecordedRequest:
    """One request as it reached the fake, and what the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON (None if it was not JSON)
    size: int
    at: float  # the fake's clock at arrival
    model: str | None = None
    status: int | None = None
    # The body with every field name in lowerCamel, once it passed validation.
    request: dict[str, Any] | None = None

    @property
    def parts(self) -> list[dict[str, Any]]:
        return (self.request or self.body)["contents"][0]["parts"]

    @property
    def prompt(self) -> str:
        return "".join(part.get("text", "") for part in self.parts)

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """(mime type, decoded bytes) of every inline image of the first turn."""
        blobs = [part.get("inlineData") for part in self.parts]
        return [(blob["mimeType"], decode_bytes(blob["data"])) for blob in blobs if blob]

    @property
    def aspect_ratio(self) -> str | None:
        config = (self.request or self.body or {}).get("generationConfig") or {}
        return (config.get("imageConfig") or {}).get("aspectRatio")


Body = dict | list | bytes | str | Callable[[RecordedRequest], Any]


@dataclass(frozen=True)
class GeminiReply:
    """One scripted answer. `body` may be JSON-able, raw bytes/str, or a function of the request."""

    status: int = 200
    body: Body = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"
    delay: float = 0.0  # seconds before answering, on top of the fake's latency

    # --- 200 answers ---
    @classmethod
    def image(
        cls,
        data: bytes | None = None,
        *,
        mime_type: str = "image/png",
        text: str | None = None,
        thoughts: int = 0,
        model: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> GeminiReply:
        """An image (default: a PNG of the requested ratio), optionally after a text part and `thoughts` draft
        images marked `"thought": true` (Gemini 3 style). `usage` replaces the computed usageMetadata."""

        def build(request: RecordedRequest) -> dict:
            image = data if data is not None else default_png(request.aspect_ratio or "1:1")
            # Gemini 3 thinks aloud first: a thought summary, then draft images, all marked as thoughts.
            parts: list[dict[str, Any]] = [{"text": "**Composing the scene**", "thought": True}] if thoughts else []
            parts += [
                {"inlineData": {"mimeType": "image/png", "data": _b64(default_png())}, "thought": True}
                for _ in range(thoughts)
            ]
            if text is not None:
                parts.append({"text": text})
            parts.append({"inlineData": {"mimeType": mime_type, "data": _b64(image)}})
            if thoughts:
                parts[-1]["thoughtSignature"] = _b64(b"signature")
            body = response(request, [_candidate(parts, "STOP")], model=model, text=text)
            if usage is not None:
                body["usageMetadata"] = usage
            return body

        return cls(body=build)

    @classmethod
    def jpeg(cls, data: bytes | None = None, **kwargs: Any) -> GeminiReply:
        return cls.image(data if data is not None else jpeg_bytes(), mime_type="image/jpeg", **kwargs)

    @classmethod
    def text_only(cls, text: str = "Could you tell me which style you would like?") -> GeminiReply:
        return cls(body=lambda request: response(request, [_candidate([{"text": text}], "STOP")], text=text))

    @classmethod
    def finish(
        cls, reason: str, message: str | None = None, *, content: str = "empty", text: str | None = None
    ) -> GeminiReply:
        """A candidate without an image. `content`: "empty" (content without parts), "none" (no content key),
        "text" (a text part, `text`)."""

        def build(request: RecordedRequest) -> dict:
            candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
            if content == "empty":
                candidate["content"] = {}
            elif content == "text":
                candidate["content"] = {"role": "model", "parts": [{"text": text or ""}]}
            if message is not None:
                candidate["finishMessage"] = message
            return response(request, [candidate], output_tokens=0)

        return cls(body=build)

    @classmethod
    def image_safety(
        cls, message: str = "Unable to show the generated image: it may violate our policies."
    ) -> GeminiReply:
        return cls.finish("IMAGE_SAFETY", message)

    @classmethod
    def no_content(cls, reason: str = "PROHIBITED_CONTENT") -> GeminiReply:
        return cls.finish(reason, content="none")

    @classmethod
    def unknown_finish(cls, reason: str = "IMAGE_SOMETHING_NEW") -> GeminiReply:
        return cls.finish(reason)

    @classmethod
    def prompt_blocked(cls, reason: str = "PROHIBITED_CONTENT") -> GeminiReply:
        """`promptFeedback.blockReason` and no `candidates` key at all."""

        def build(request: RecordedRequest) -> dict:
            body = response(request, [], output_tokens=0)
            del body["candidates"]
            body["promptFeedback"] = {"blockReason": reason}
            return body

        return cls(body=build)

    # --- errors ---
    @classmethod
    def error(
        cls, code: int, status: str, message: str, details: list[dict] | None = None, *, wrapped: bool = False
    ) -> GeminiReply:
        envelope: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
        if details:
            envelope["error"]["details"] = details
        return cls(status=code, body=[envelope] if wrapped else envelope)

    @classmethod
    def rate_limited(
        cls,
        retry_delay: float | None = 7.96,
        *,
        quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel",
        limit: int = 10,
        model: str = KNOWN_MODELS[0],
        free_tier: bool = False,
    ) -> GeminiReply:
        """A real-shaped 429: QuotaFailure, Help and (if `retry_delay`) RetryInfo, wait repeated in the text."""
        return cls.error(429, "RESOURCE_EXHAUSTED", *_quota_error(retry_delay, quota_id, limit, model, free_tier))

    @classmethod
    def rate_limited_per_day(cls, retry_delay: float = 3.5) -> GeminiReply:
        return cls.rate_limited(retry_delay, quota_id="GenerateRequestsPerDayPerProjectPerModel", limit=100)

    @classmethod
    def no_quota(cls, retry_delay: float = 45.837906927) -> GeminiReply:
        """The free tier of image models today: `limit: 0` on a per-minute quota, with a RetryInfo to ignore."""
        quota_id = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        return cls.rate_limited(retry_delay, quota_id=quota_id, limit=0, free_tier=True)

    @classmethod
    def overloaded(cls) -> GeminiReply:
        return cls.error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    @classmethod
    def internal(cls) -> GeminiReply:
        return cls.error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )

    @classmethod
    def deadline_exceeded(cls) -> GeminiReply:
        return cls.error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")

    @classmethod
    def api_key_invalid(cls) -> GeminiReply:
        return cls(status=400, body=_key_invalid_body())

    @classmethod
    def malformed(
        cls,
        body: bytes | str = b"<html><body>502 Bad Gateway</body></html>",
        *,
        status: int = 200,
        content_type: str = "text/html",
    ) -> GeminiReply:
        """A body that is not JSON (default), or any raw body; `not_a_response()` for JSON of the wrong shape."""
        return cls(status=status, body=body, content_type=content_type)

    @classmethod
    def not_a_response(cls) -> GeminiReply:
        return cls(body={"result": "ok", "items": [1, 2, 3]})

    @classmethod
    def stall(cls, seconds: float = 3600.0) -> GeminiReply:
        """Answer (a normal image) only after `seconds`: longer than any client timeout in tests."""
        return cls(body=cls.image().body, delay=seconds)


def response(
    request: RecordedRequest,
    candidates: list[dict],
    *,
    model: str | None = None,
    text: str | None = None,
    output_tokens: int | None = None,
) -> dict:
    """A 200 body with usageMetadata as the real API counts it (image tokens per image, ~4 chars per token)."""
    model = model or request.model or KNOWN_MODELS[0]
    prompt_tokens = max(1, len(request.prompt) // 4) + 258 * len(request.images)
    images = sum(1 for c in candidates for p in (c.get("content") or {}).get("parts", []) if "inlineData" in p)
    image_tokens = IMAGE_TOKENS.get(model, 1120) * images
    text_tokens = len(text) // 4 if text else 0
    output = image_tokens + text_tokens if output_tokens is None else output_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt_tokens + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if image_tokens:
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }


def _candidate(parts: list[dict], reason: str) -> dict:
    return {"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": 0}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_duration(seconds: float) -> str:
    """A google.protobuf.Duration in JSON: "17s", "45.837906927s"."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _quota_error(
    retry_delay: float | None, quota_id: str, limit: int, model: str, free_tier: bool
) -> tuple[str, list[dict]]:
    metric = "generativelanguage.googleapis.com/generate_content_" + ("free_tier" if free_tier else "paid_tier")
    metric += "_requests"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on this "
        f"error, head to: {_RATE_DOCS}. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. "
        f"\n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"
    )
    details: list[dict] = [
        {
            "@type": _RPC + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": str(limit),
                }
            ],
        },
        {"@type": _RPC + "Help", "links": [{"description": "Learn more about Gemini API quotas", "url": _RATE_DOCS}]},
    ]
    if retry_delay is not None:
        message += f"\nPlease retry in {retry_delay:.2f}s."
        details.append({"@type": _RPC + "RetryInfo", "retryDelay": format_duration(retry_delay)})
    return message, details


def _key_invalid_body() -> dict:
    message = "API key not valid. Please pass a valid API key."
    details = [
        {
            "@type": _RPC + "ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": message},
    ]
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": details}}
