"""Image providers. Each maps its wire format and errors into `bot.models` and `bot.errors`."""

from __future__ import annotations

from typing import Protocol

from bot.models import Context, GeneratedImage, ImageOptions, InputImage


class ImageProvider(Protocol):
    model: str  # the default model (options.model names the one a request uses)

    async def generate(
        self,
        prompt: str,
        images: tuple[InputImage, ...] = (),
        options: ImageOptions | None = None,
        context: Context | None = None,
    ) -> GeneratedImage:
        """Make one image with `options.model` at `options.size` (None: the provider's default) or raise a
        `bot.errors.UpstreamError` (saying, where it can, whether the call may have been billed: `billed`,
        `cost_usd`). `context`: earlier turns of a multi-turn edit as this provider returned them (a provider
        that cannot send them back sends `context.prompt` and `context.picture` instead: the provider chain does
        that for gateways). The image's `cost_usd` is its real cost when the provider can tell."""
        ...


# Re-exported after the protocol, which is all the provider chain (`failover`) imports from this package; the
# implementations import nothing from it.
from bot.providers.gemini import GeminiProvider  # noqa: E402
from bot.providers.retry import RetryPolicy, call_with_retries  # noqa: E402

__all__ = ["GeminiProvider", "ImageProvider", "RetryPolicy", "call_with_retries"]
