"""Strict validation of chat completion requests with image output, the way OpenRouter, Vercel AI Gateway and
LiteLLM proxies take them (`modalities`, `image_config`, input images as data URLs), and the answer they give
(the pictures in `message.images[]`, `usage.cost`)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakes.openai_gateway_schema import (
    INPUT_TYPES,
    RATIO_SIZES,
    RATIOS,
    InputImage,
    Invalid,
    bad_value,
    image_tokens,
    missing,
    nearest_ratio,
    prompt_tokens,
    sniff,
    unknown,
)

if TYPE_CHECKING:
    from tests.fakes.openai_gateway_replies import GatewayReply

IMAGE_SIZES = {"0.5K": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
_DATA_URL = re.compile(r"^data:([a-z]+/[a-z0-9.+-]+);base64,(.*)$", re.S)
CHAT_PARAMS = (
    # OpenAI's own chat parameters that make sense for an image request...
    "model",
    "messages",
    "modalities",
    "n",
    "stream",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "user",
    "metadata",
    "frequency_penalty",
    "presence_penalty",
    # ...and the gateways' extensions (OpenRouter, Vercel AI Gateway, LiteLLM).
    "image_config",
    "provider",
    "usage",
    "reasoning",
    "transforms",
    "models",
    "route",
)
MESSAGE_KEYS = ("role", "content", "name", "images", "refusal", "tool_calls", "tool_call_id")
ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass
class ChatCall:
    """A valid chat completion request: the text of its last user message, every input image, and options."""

    model: str
    prompt: str
    modalities: tuple[str, ...]
    aspect_ratio: str | None
    image_size: str | None
    images: list[InputImage] = field(default_factory=list)

    @property
    def wants_image(self) -> bool:
        return "image" in self.modalities


def validate_chat(body: Any, *, max_images: int) -> ChatCall:
    if not isinstance(body, dict):
        raise Invalid("Invalid request body: expected a JSON object.")
    for name in body:
        if name not in CHAT_PARAMS:
            raise Invalid(f"Unrecognized request argument supplied: {name}", param=name)
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise Invalid("you must provide a model parameter", param="model", code="missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise missing("messages") if messages is None else Invalid("'messages' must be a non-empty array.")
    if body.get("stream"):
        raise Invalid("This fake gateway does not stream; send stream=false.", param="stream")
    if body.get("n", 1) != 1:
        raise Invalid("Only n=1 is supported for image generation.", param="n", code="invalid_value")
    images: list[InputImage] = []
    prompt = ""
    for i, message in enumerate(messages):
        text = _message(message, i, images)
        if isinstance(message, dict) and message.get("role") == "user":
            prompt = text
    if len(images) > max_images:
        raise Invalid(f"Too many input images: {len(images)} (at most {max_images}).", param="messages")
    modalities = body.get("modalities", ["text"])
    if not isinstance(modalities, list) or not modalities or any(m not in ("image", "text") for m in modalities):
        raise Invalid(
            f"Invalid 'modalities': {modalities!r}; expected a non-empty list of 'image' and 'text'.",
            param="modalities",
        )
    ratio, image_size = _image_config(body.get("image_config"))
    return ChatCall(model, prompt, tuple(modalities), ratio, image_size, images)


def _message(message: Any, index: int, images: list[InputImage]) -> str:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise Invalid(f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type")
    for key in message:
        if key not in MESSAGE_KEYS:
            raise unknown(f"{where}.{key}")
    role = message.get("role")
    if role not in ROLES:
        raise bad_value(f"{where}.role", role, ROLES)
    content = message.get("content")
    if content is None and role != "assistant":
        raise missing(f"{where}.content")
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise Invalid(f"Invalid type for '{where}.content': expected a string or an array.", param=where)
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str) and set(part) == {"type", "text"}:
            texts.append(part["text"])
        elif kind == "image_url" and set(part) == {"type", "image_url"} and isinstance(part["image_url"], dict):
            images.append(_data_url(part["image_url"], at))
        else:
            raise Invalid(f"Invalid content part at '{at}': {str(part)[:80]}", param=at)
    return "\n".join(texts)


def _data_url(image_url: dict[str, Any], at: str) -> InputImage:
    if set(image_url) - {"url", "detail"} or not isinstance(image_url.get("url"), str):
        raise Invalid(f"Invalid '{at}.image_url': expected {{url, detail?}}.", param=at)
    if image_url.get("detail", "auto") not in ("auto", "low", "high"):
        raise bad_value(f"{at}.image_url.detail", image_url["detail"], ("auto", "low", "high"))
    url = image_url["url"]
    if url.startswith(("http://", "https://")):
        raise Invalid(f"'{at}': this fake cannot fetch image URLs; send a data URL.", param=at)
    match = _DATA_URL.match(url)
    if not match:
        raise Invalid(f"Invalid image URL at '{at}': expected data:<type>;base64,<data>.", param=at)
    media_type, payload = match.groups()
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"Invalid base64 image data at '{at}'.", param=at) from None
    if media_type not in (*INPUT_TYPES, "image/gif") or sniff(data) is None:
        raise Invalid(f"Unsupported image at '{at}' ({media_type}).", param=at, code="invalid_image")
    return InputImage(field=at, filename=None, content_type=media_type, data=data)


def _image_config(config: Any) -> tuple[str | None, str | None]:
    if config is None:
        return None, None
    if not isinstance(config, dict):
        raise Invalid("Invalid type for 'image_config': expected an object.", param="image_config")
    for key in config:
        if key not in ("aspect_ratio", "image_size"):
            raise unknown(f"image_config.{key}")
    ratio, size = config.get("aspect_ratio"), config.get("image_size")
    if ratio is not None and ratio not in RATIOS:
        raise bad_value("image_config.aspect_ratio", ratio, RATIOS)
    if size is not None and size not in IMAGE_SIZES:
        raise bad_value("image_config.image_size", size, tuple(IMAGE_SIZES))
    return ratio, size


def chat_output_size(call: ChatCall, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """Gemini's rule: the requested ratio, else the input image's ratio, else square; scaled by image_size."""
    ratio = call.aspect_ratio or (nearest_ratio(*input_size) if input_size else "1:1")
    w, h = RATIO_SIZES[ratio]
    scale = IMAGE_SIZES[call.image_size or "1K"]
    return int(w * scale), int(h * scale)


def chat_body(call: ChatCall, reply: GatewayReply, outputs: list[bytes], cost: float) -> dict[str, Any]:
    """A chat completion as OpenRouter answers it: pictures as data URLs in `message.images[]`, a refusal as
    finish_reason "content_filter" with Gemini's reason in `native_finish_reason`, the price in `usage.cost`."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "reasoning": None}
    finish, native = "stop", "STOP"
    if reply.outcome == "image":
        mime = reply.declared_type or sniff(outputs[0]) or "image/png"
        message["images"] = [
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{_b64(data)}"}, "index": i}
            for i, data in enumerate(outputs)
        ]
    elif reply.outcome == "refusal":
        finish, native = "content_filter", reply.reason
        message["content"], message["refusal"] = None, reply.text
    tokens = prompt_tokens(call.prompt, len(call.images))
    pictures = image_tokens(call.model) * len(outputs)
    out = pictures + len(reply.text or "") // 4
    usage = {
        "prompt_tokens": tokens,
        "completion_tokens": out,
        "total_tokens": tokens + out,
        "cost": cost,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": pictures},
    }
    choice = {"index": 0, "logprobs": None, "finish_reason": finish, "native_finish_reason": native}
    return {
        "id": "gen-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "provider": "Google",
        "choices": [{**choice, "message": message}],
        "usage": usage,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
