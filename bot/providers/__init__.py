"""Image providers. Each maps its wire format and errors into `bot.models` and `bot.errors`."""

from __future__ import annotations

from typing import Protocol

from bot.models import GeneratedImage, ImageOptions, InputImage


class ImageProvider(Protocol):
    model: str

    async def generate(
        self, prompt: str, images: tuple[InputImage, ...] = (), options: ImageOptions | None = None
    ) -> GeneratedImage:
        """Make one image or raise a `bot.errors.UpstreamError`."""
        ...


# Re-exported after the protocol, which is all the provider chain (`failover`) imports from this package; the
# implementations import nothing from it.
from bot.providers.gemini import GeminiProvider  # noqa: E402
from bot.providers.retry import RetryPolicy, call_with_retries  # noqa: E402

__all__ = ["GeminiProvider", "ImageProvider", "RetryPolicy", "call_with_retries"]
