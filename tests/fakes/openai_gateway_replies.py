"""What the fake OpenAI-compatible gateway records and answers: `GatewayRequest` (one request as it arrived),
`Download` (one fetch of a `url` result), and `GatewayReply`, a declarative scripted answer that the server
renders for the kind of request it answers (an Images API call or a chat completion).

    fake.enqueue(GatewayReply.rate_limited(3), GatewayReply.refusal(), GatewayReply.jpeg())
"""

from __future__ import annotations

import email.utils
import io
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tests.fakes.gemini_images import png_bytes
from tests.fakes.openai_gateway_schema import ImageCall, InputImage, image_tokens, prompt_tokens

if TYPE_CHECKING:
    from tests.fakes.openai_gateway_chat import ChatCall

_RATE_DOCS = "https://platform.openai.com/account/rate-limits"


@dataclass
class GatewayRequest:
    """One request as it reached the fake, and what the fake did with it. Never holds the API key."""

    method: str
    path: str
    kind: str | None  # "generations", "edits", "chat", or None for a path the gateway does not serve
    headers: dict[str, str]  # names lower-cased, Authorization removed
    at: float  # the fake's clock at arrival
    auth: str = "missing"  # "ok", "missing", "wrong" (a Bearer token that is not the key) or "not-bearer"
    size: int = 0  # body bytes
    body: Any = None  # parsed JSON; for multipart, the text fields as a dict
    fields: list[tuple[str, str]] = field(default_factory=list)  # multipart text fields, in order
    images: list[InputImage] = field(default_factory=list)  # input images (files or data URLs), in order
    call: ImageCall | ChatCall | None = None  # the request once it passed validation
    status: int | None = None
    error_code: str | None = None  # `code` of the error envelope the fake answered with
    billed: bool = False  # the gateway accepted the work and bills it, whether the client waited or not
    cost: float = 0.0
    cancelled: bool = False  # the client went away before the answer
    outputs: list[bytes] = field(default_factory=list)  # pictures in the answer, in order
    urls: list[str] = field(default_factory=list)  # `url` results handed out

    @property
    def model(self) -> str | None:
        if self.call is not None:
            return self.call.model
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def prompt(self) -> str | None:
        return self.call.prompt if self.call is not None else None

    @property
    def image_count(self) -> int:
        return len(self.images)

    @property
    def image_bytes(self) -> list[bytes]:
        return [image.data for image in self.images]


@dataclass
class Download:
    """One GET of a `url` result."""

    path: str
    headers: dict[str, str]  # lower-cased, Authorization removed
    authorization_sent: bool  # a client must not hand its gateway key to whatever host a url points at
    at: float
    status: int | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class GatewayReply:
    """One scripted answer. `outcome`: "image" (default), "text" (no picture), "refusal", "error", "raw",
    "disconnect" (close the connection without answering)."""

    outcome: str = "image"
    data: bytes | None = None  # exact picture bytes; otherwise a flat picture of the right size is made
    format: str | None = None  # "png" or "jpeg"; None: the gateway's output_format
    size: tuple[int, int] | None = None  # force the picture's size (a gateway that ignores the request)
    text: str | None = None  # chat: message.content beside the picture; text outcome: the whole answer
    cost: float | None = None  # chat usage.cost; None: the gateway's price for the model
    declared_type: str | None = None  # chat: the data URL's media type, if it should lie about the bytes
    reason: str = "IMAGE_SAFETY"  # refusal: native_finish_reason of a chat answer
    status: int = 200
    envelope: dict[str, Any] | None = None  # error outcome: message, type, param, code
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # raw outcome
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before answering, on top of the gateway's latency
    download_status: int = 200  # url results: what fetching the url answers
    download_delay: float = 0.0
    download_content_type: str | None = None  # None: the real type of the bytes
    work_done: bool = False  # disconnect: the picture was made (and billed) before the connection dropped

    # --- answers that carry work (and are billed) ---
    @classmethod
    def image(cls, data: bytes | None = None, **kwargs: Any) -> GatewayReply:
        return cls(outcome="image", data=data, **kwargs)

    @classmethod
    def jpeg(cls, data: bytes | None = None, **kwargs: Any) -> GatewayReply:
        return cls(outcome="image", data=data, format="jpeg", **kwargs)

    @classmethod
    def text_only(cls, text: str = "I can describe it, but here is no image this time.") -> GatewayReply:
        """No picture: chat answers with text only; the Images API with an empty `data` list."""
        return cls(outcome="text", text=text)

    @classmethod
    def refusal(cls, message: str | None = None, *, reason: str = "IMAGE_SAFETY") -> GatewayReply:
        """Images API: 400 content_policy_violation. Chat: 200 with finish_reason "content_filter", no image."""
        text = message or (
            "Your request was rejected as a result of our safety system. Your prompt may contain text that is not "
            "allowed by our safety system."
        )
        return cls(outcome="refusal", text=text, reason=reason)

    # --- errors ---
    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002  (the envelope's field name)
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> GatewayReply:
        envelope = {"message": message, "type": type, "param": param, "code": code}
        return cls(outcome="error", status=status, envelope=envelope, headers=tuple((headers or {}).items()))

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | None = 7.0,
        *,
        limit: int = 20,
        http_date: bool = False,
        retry_after_ms: bool = False,
    ) -> GatewayReply:
        """429 rate_limit_exceeded with `retry-after` (seconds, or an HTTP date if `http_date`), optionally
        `retry-after-ms`, and OpenAI's x-ratelimit-* headers; the wait is repeated in the message."""
        headers = {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after or 1:g}s",
        }
        message = f"Rate limit reached for requests per min (RPM): Limit {limit}, Used {limit}, Requested 1."
        if retry_after is not None:
            headers["retry-after"] = (
                email.utils.formatdate(time.time() + retry_after, usegmt=True) if http_date else f"{retry_after:g}"
            )
            if retry_after_ms:
                headers["retry-after-ms"] = f"{retry_after * 1000:g}"
            message += f" Please try again in {retry_after:g}s."
        message += f" Visit {_RATE_DOCS} to learn more."
        return cls.error(429, message, type="requests", code="rate_limit_exceeded", headers=headers)

    @classmethod
    def insufficient_quota(cls) -> GatewayReply:
        """429 without any wait: the account is out of money; retrying does not help."""
        return cls.error(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more information on "
            "this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )

    @classmethod
    def payment_required(cls) -> GatewayReply:
        """402, how OpenRouter says the credits are gone."""
        return cls.error(
            402,
            "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            type="insufficient_credits",
            code="insufficient_credits",
        )

    @classmethod
    def server_error(cls, status: int = 500) -> GatewayReply:
        if status in (502, 504):  # what the CDN in front of a gateway answers: HTML, not JSON
            return cls.malformed(status=status)
        message = {
            500: "The server had an error while processing your request. Sorry about that!",
            503: "The server is overloaded or not ready yet.",
        }.get(status, "Upstream error.")
        return cls.error(status, message, type="server_error")

    @classmethod
    def overloaded(cls) -> GatewayReply:
        return cls.server_error(503)

    @classmethod
    def malformed(
        cls, body: bytes | None = None, *, status: int = 502, content_type: str = "text/html"
    ) -> GatewayReply:
        """A raw body; by default a CDN's 502 page."""
        page = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
        page += b"<hr><center>cloudflare</center></body></html>"
        if status == 504:
            page = page.replace(b"502 Bad Gateway", b"504 Gateway Time-out")
        return cls(outcome="raw", status=status, body=page if body is None else body, content_type=content_type)

    @classmethod
    def stall(cls, seconds: float = 3600.0) -> GatewayReply:
        """A normal picture, but only after `seconds`: longer than any client timeout in tests."""
        return cls(outcome="image", delay=seconds)

    @classmethod
    def disconnect(cls, *, delay: float = 0.0, work_done: bool = False) -> GatewayReply:
        """Close the connection without any answer (after `delay`): a connection error for the client. With
        `work_done` the gateway made and billed the picture first (the bot cannot know: it must count it)."""
        return cls(outcome="disconnect", delay=delay, work_done=work_done)


def error_body(status: int, error: dict[str, Any], style: str) -> dict[str, Any]:
    """OpenAI's envelope {"error": {message, type, param, code}}, or OpenRouter's {"error": {code: <int>, message,
    metadata}} when `style` is "openrouter"."""
    if style == "openrouter":
        return {"error": {"code": status, "message": error["message"], "metadata": {"type": error.get("type")}}}
    return {"error": {key: error.get(key) for key in ("message", "type", "param", "code")}}


@lru_cache(maxsize=64)
def picture(width: int, height: int, fmt: str = "png") -> bytes:
    """A flat picture of exactly width x height, as PNG or JPEG."""
    if fmt == "png":
        return png_bytes(width, height, color=(30, 120, 90))
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (160, 70, 30)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def images_body(call: ImageCall, data: list[dict[str, Any]], pictures: int) -> dict[str, Any]:
    """An Images API answer: `data` items ({"b64_json"} or {"url"}) and token usage as GPT Image reports it."""
    images_in = 258 * len(call.images)
    tokens = prompt_tokens(call.prompt, len(call.images))
    out = image_tokens(call.model) * pictures
    usage = {
        "input_tokens": tokens,
        "input_tokens_details": {"text_tokens": tokens - images_in, "image_tokens": images_in},
        "output_tokens": out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
        "total_tokens": tokens + out,
    }
    return {"created": int(time.time()), "data": data, "usage": usage}
