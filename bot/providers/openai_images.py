"""The `openai-images` kind: gateways that expose image models through OpenAI's Images API.

    POST {base}/v1/images/generations   JSON {"model", "prompt", "n": 1, "size"}
    POST {base}/v1/images/edits         multipart: model, prompt, n, size, and the pictures as
                                        `image` (one) or repeated `image[]` (several), as the openai SDK sends
    -> {"created", "data": [{"b64_json": "..."} or {"url": "https://..."}], "usage": {...}}

The ratio travels as `size`, taken from the provider's size map (gateways differ: pixels, a ratio, or nothing);
the returned picture's size is checked against it and a mismatch logged.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.errors import GenerationFailed, UpstreamUnavailable
from bot.models import Context, GeneratedImage, ImageOptions, InputImage
from bot.providers.openai_common import OpenAICompatible

log = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class OpenAIImagesProvider(OpenAICompatible):
    kind = "openai-images"

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: Context | None = None,
    ) -> GeneratedImage:
        prompt, images, ratio, remote = self.prepare(prompt, images, options, context)
        size = self.config.size_map.get(ratio) if ratio else None
        # No response_format: some models behind gateways refuse it (GPT Image), and both answers are read.
        fields: dict[str, str] = {"model": remote, "prompt": prompt, "n": "1"}
        if size:
            fields["size"] = size
        if images:
            payload = await self.post("images/edits", form=edit_form(fields, images))
        else:
            payload = await self.post("images/generations", json_body={**fields, "n": 1})
        return await self._result(payload, remote, ratio, size)

    async def _result(
        self, payload: dict[str, Any], remote: str, ratio: str | None, size: str | None
    ) -> GeneratedImage:
        items = payload.get("data")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise self._billed(UpstreamUnavailable(f"malformed answer from {self.name}: data is not a list"), True)
        if not items:
            raise self._billed(GenerationFailed("NO_IMAGE", f"{self.name} answered without a picture"), True)
        item = items[0]
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            data = self.decode_base64(item["b64_json"])
        elif isinstance(item.get("url"), str) and item["url"]:
            data = await self.fetch_url(item["url"])
        else:
            raise self._billed(UpstreamUnavailable(f"malformed answer from {self.name}: no b64_json or url"), True)
        return self.finish(payload, data, remote, ratio, size)


def edit_form(fields: dict[str, str], images: tuple[InputImage, ...]) -> aiohttp.FormData:
    """The edits body: text fields, then the pictures; one goes as `image`, several as repeated `image[]`."""
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    name = "image" if len(images) == 1 else "image[]"
    for i, image in enumerate(images):
        form.add_field(
            name,
            image.data,
            filename=f"image{i}.{_EXTENSIONS.get(image.mime_type, 'png')}",
            content_type=image.mime_type,
        )
    return form
