"""The `openai-chat` kind: OpenRouter, Vercel AI Gateway and LiteLLM proxies serve image models through chat
completions.

    POST {base}/v1/chat/completions  Authorization: Bearer KEY
    {"model", "messages": [{"role": "user", "content": [{"type": "text", ...}, {"type": "image_url", "image_url":
     {"url": "data:image/png;base64,..."}}]}], "modalities": ["image", "text"],
     "image_config": {"aspect_ratio": "16:9", "image_size": "2K"}}
    -> {"choices": [{"message": {"content": "text or null", "images": [{"type": "image_url", "image_url":
        {"url": "data:image/png;base64,..."}}]}, "finish_reason": "stop"}], "usage": {..., "cost": 0.0387}}
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pybase64

from bot.errors import GenerationFailed, ImageBlocked, TextOnlyAnswer, UpstreamError, UpstreamUnavailable
from bot.models import Context, GeneratedImage, ImageOptions, InputImage
from bot.providers.gemini import SAFETY_FINISH_REASONS
from bot.providers.openai_common import OpenAICompatible, error_from_response, usage_of

log = logging.getLogger(__name__)


class OpenAIChatProvider(OpenAICompatible):
    kind = "openai-chat"

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: Context | None = None,
    ) -> GeneratedImage:
        prompt, images, ratio, remote = self.prepare(prompt, images, options, context)
        image_size = options.size if options is not None else None

        def encode() -> bytes:
            return json.dumps(build_request(remote, prompt, images, ratio, image_size)).encode()

        # Megabytes of input images take tens of milliseconds to encode: not on the event loop.
        body = await asyncio.to_thread(encode) if images else encode()
        payload = await self.post("chat/completions", body=body)
        return await self._result(payload, remote, ratio)

    async def _result(self, payload: dict[str, Any], remote: str, ratio: str | None) -> GeneratedImage:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise self._billed(UpstreamUnavailable(f"malformed answer from {self.name}: choices is not a list"), True)
        if not choices:
            raise self._billed(GenerationFailed("NO_CHOICES", f"{self.name} answered without a choice"), True)
        choice = choices[0]
        if isinstance(choice.get("error"), dict):  # OpenRouter: an upstream error inside a 200
            raise self._billed(error_from_response(self.name, 200, {"error": choice["error"]}, b""), False)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        text = _text(message.get("content"))
        urls = _image_urls(message)
        if not urls:
            refusal = message.get("refusal")  # OpenRouter puts a refusal's words here, not in content
            text = text or (refusal.strip() if isinstance(refusal, str) and refusal.strip() else None)
            finish = choice.get("native_finish_reason") or choice.get("finish_reason")
            reason = finish if isinstance(finish, str) and finish else "NO_IMAGE"
            exc: UpstreamError
            if reason in SAFETY_FINISH_REASONS or reason == "content_filter":
                exc = ImageBlocked(reason, text)
            elif text and reason in ("stop", "STOP"):
                exc = TextOnlyAnswer(text)
            else:
                exc = GenerationFailed(reason, text)
            # An answer is work done: the gateway bills its tokens even without a picture, and says what in
            # usage.cost (else the chain counts the configured price: too much rather than too little).
            exc.cost_usd = usage_of(payload)[1]
            raise self._billed(exc, True)
        # Like Gemini's answers: the last picture is the finished one.
        return self.finish(payload, await self.fetch_url(urls[-1]), remote, ratio, None, text)


def build_request(
    model: str, prompt: str, images: tuple[InputImage, ...], ratio: str | None, image_size: str | None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    content += [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{image.mime_type};base64,{pybase64.b64encode(image.data).decode('ascii')}"},
        }
        for image in images
    ]
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "modalities": ["image", "text"],
    }
    config = {key: value for key, value in (("aspect_ratio", ratio), ("image_size", image_size)) if value}
    if config:
        body["image_config"] = config
    return body


def _text(content: Any) -> str | None:
    """`content` is a string, null, or (some gateways) a list of parts."""
    if isinstance(content, str):
        return content.strip() or None
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(texts).strip() or None
    return None


def _image_urls(message: dict[str, Any]) -> list[str]:
    """Pictures from `message.images[]`, and from image parts of a list `content` (some proxies put them there)."""
    parts = list(message.get("images") or [])
    content = message.get("content")
    if isinstance(content, list):
        parts += [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    urls = []
    for part in parts:
        image_url = part.get("image_url") if isinstance(part, dict) else None
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        if isinstance(url, str) and url:
            urls.append(url)
    return urls
