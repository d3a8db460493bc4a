"""What the fake Gemini answers: the recorded request it answers to, scripted replies for every case the bot
must handle (`GeminiReply.image()`, `.rate_limited()`, `.stall()`, ...), and real-shaped bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_answers import (
    AnswerStyle,
    RecordedRequest,
    TextAnswers,
    candidate,
    picture_parts,
    response,
    thinking_parts,
)
from tests.fakes.gemini_images import jpeg_bytes
from tests.fakes.gemini_json import example, mismatch
from tests.fakes.gemini_models import DEFAULT_MODEL, IMAGE_MODELS, TEXT_MODELS

__all__ = ["AnswerStyle", "GeminiReply", "KNOWN_MODELS", "RecordedRequest", "response", "scripted_answer"]

KNOWN_MODELS = IMAGE_MODELS + TEXT_MODELS
_RPC = "type.googleapis.com/google.rpc."
_RATE_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
# google.rpc.Code of each HTTP-mapped status, for errors inside batch results (a google.rpc.Status).
GRPC_CODES = {
    "INVALID_ARGUMENT": 3,
    "FAILED_PRECONDITION": 9,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}


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
        mime_type: str | None = None,
        text: str | None = None,
        thoughts: int | None = None,
        model: str | None = None,
        usage: dict[str, Any] | None = None,
        signed: bool | None = None,
    ) -> GeminiReply:
        """A picture answer. By default as the requested model makes it: the pixel size of the ratio and imageSize,
        PNG from 2.5 and JPEG from Gemini 3 (or as the fake's AnswerStyle says), and on thinking models a thought
        summary, `thoughts` draft images (default 1) and fresh thoughtSignatures. `data`/`mime_type` fix the bytes
        and the declared type; `text` adds a text part before the image; `thoughts=N` forces N drafts (and
        signatures) on any model, `signed` forces signatures on or off; `usage` replaces usageMetadata;
        `model` the reported modelVersion."""

        def build(request: RecordedRequest) -> dict:
            parts = picture_parts(request, data=data, mime_type=mime_type, text=text, thoughts=thoughts, signed=signed)
            body = response(request, [candidate(parts)], model=model)
            if usage is not None:
                body["usageMetadata"] = usage
            return body

        return cls(body=build)

    @classmethod
    def jpeg(cls, data: bytes | None = None, **kwargs: Any) -> GeminiReply:
        return cls.image(data if data is not None else jpeg_bytes(), mime_type="image/jpeg", **kwargs)

    @classmethod
    def mislabelled(cls, data: bytes | None = None, **kwargs: Any) -> GeminiReply:
        """JPEG bytes declared as image/png (it happens): the bot must judge the format by the magic bytes."""
        return cls.image(data if data is not None else jpeg_bytes(), mime_type="image/png", **kwargs)

    @classmethod
    def text_only(cls, text: str = "Could you tell me which style you would like?") -> GeminiReply:
        return cls(body=lambda request: response(request, [candidate(thinking_parts(request, text))]))

    @classmethod
    def answer(cls, value: Any = None) -> GeminiReply:
        """A text model's answer. Under `responseMimeType: application/json` `value` (a dict/list, or a JSON
        string) must fit the request's responseSchema (a misfit is a 500 that says why) and None answers the
        smallest value that fits; otherwise `value` is the text (None: "OK")."""
        return cls(body=lambda request: _text_answer(request, value))

    @classmethod
    def finish(
        cls, reason: str, message: str | None = None, *, content: str = "empty", text: str | None = None
    ) -> GeminiReply:
        """A candidate without an image. `content`: "empty" (content without parts), "none" (no content key),
        "text" (a text part, `text`)."""

        def build(request: RecordedRequest) -> dict:
            blocked: dict[str, Any] = {"finishReason": reason, "index": 0}
            if content == "empty":
                blocked["content"] = {}
            elif content == "text":
                blocked["content"] = {"role": "model", "parts": [{"text": text or ""}]}
            if message is not None:
                blocked["finishMessage"] = message
            return response(request, [blocked], output_tokens=0)

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
        model: str = DEFAULT_MODEL,
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
    def model_not_found(cls, model: str, method: str = "generateContent") -> GeminiReply:
        """What a retired or unknown model id gets."""
        return cls.error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for {method}. Call "
            "ListModels to see the list of available models and their supported methods.",
        )

    @classmethod
    def not_for_new_users(cls, model: str) -> GeminiReply:
        """A legacy model asked for by a project that never used it (while models.get still answers 200)."""
        return cls.error(
            404,
            "NOT_FOUND",
            f"This model models/{model} is no longer available to new users. Please update your code to use a "
            "newer model for the latest features and improvements.",
        )

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


def scripted_answer(answers: TextAnswers, request: RecordedRequest) -> Any:
    """The scripted answer for a text request: `answers(request)`, or the value of the first key of the dict
    found in the prompt (the last user turn's text, system instruction included), else None."""
    if answers is None:
        return None
    if callable(answers):
        return answers(request)
    source = request.request or request.body or {}
    system = "".join(p.get("text", "") for p in (source.get("systemInstruction") or {}).get("parts", []))
    haystack = system + "\n" + request.prompt
    return next((value for key, value in answers.items() if key in haystack), None)


def _text_answer(request: RecordedRequest, value: Any) -> dict | GeminiReply:
    config = request.config
    mime = config.get("responseMimeType", "text/plain")
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    if mime == "application/json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return _fake_bug(f"scripted JSON answer is not JSON: {value[:80]!r}")
        value = example(schema) if value is None else value
        reason = mismatch(value, schema)
        if reason:
            return _fake_bug(f"scripted answer does not fit the request's responseSchema: {reason}")
        text = json.dumps(value)
    elif mime == "text/x.enum":
        text = str(value if value is not None else example(schema))
    else:
        text = "OK" if value is None else value if isinstance(value, str) else json.dumps(value)
    return response(request, [candidate([{"text": text}])])


def _fake_bug(reason: str) -> GeminiReply:
    return GeminiReply.error(500, "INTERNAL", f"fake Gemini: {reason}")


def rpc_status(reply: GeminiReply, request: RecordedRequest) -> dict[str, Any]:
    """An error reply as the google.rpc.Status that batch results carry: {code (gRPC), message}. Details are
    left out: google-genai 3.x types them as strings and would refuse the structured ones."""
    body = reply.body(request) if callable(reply.body) else reply.body
    envelope = (body[0] if isinstance(body, list) and body else body) or {}
    error = envelope.get("error", {}) if isinstance(envelope, dict) else {}
    return {"code": GRPC_CODES.get(error.get("status", ""), 2), "message": error.get("message", "Unknown error.")}


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
