"""Build the provider chain the settings describe: one provider per configured name, each with its own lane
(made by the caller: the lanes are gates, and gates belong to the scheduler package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aiohttp

from bot.config import Settings
from bot.errors import ConfigError
from bot.providers import ImageProvider
from bot.providers.config import ProviderConfig, load_providers
from bot.providers.failover import Clock, FailoverProvider, Lane, Member
from bot.providers.gemini import GeminiProvider
from bot.providers.openai_chat import OpenAIChatProvider
from bot.providers.openai_images import OpenAIImagesProvider
from bot.providers.registry import ModelRegistry


def build_chain(
    session: aiohttp.ClientSession,
    settings: Settings,
    configs: Sequence[ProviderConfig] | None = None,
    *,
    lane_for: Callable[[ProviderConfig], Lane] | None = None,
    clock: Clock | None = None,
    download_max_bytes: int = 30 * 1024 * 1024,
    download_timeout: float = 20.0,
    registry: ModelRegistry | None = None,
) -> FailoverProvider:
    """The chain for `settings` (providers read from the environment unless `configs` are given). `lane_for`
    makes each provider's lane; a chain of one needs none. The aiohttp session is the app's, shared by all.
    `registry`: the models and prices (default: the settings')."""
    configs = load_providers(settings) if configs is None else configs
    registry = registry or settings.registry()
    chain = len(configs) > 1
    if chain and lane_for is None:
        raise ValueError("a chain of several providers needs lane_for")
    members = [
        Member(
            config,
            _provider(session, settings, config, registry, download_max_bytes, download_timeout),
            lane_for(config) if chain and lane_for is not None else None,
        )
        for config in configs
    ]
    return FailoverProvider(members, model=settings.gemini_model, deadline=settings.gemini_timeout_seconds, clock=clock)


def _provider(
    session: aiohttp.ClientSession,
    settings: Settings,
    config: ProviderConfig,
    registry: ModelRegistry,
    download_max_bytes: int,
    download_timeout: float,
) -> ImageProvider:
    if config.api_key is None:
        # Only the gemini provider can get here (a gateway without a key fails validation); load_settings says
        # how to get a key when the command needs one.
        raise ConfigError(f"provider {config.name} needs an API key (GEMINI_API_KEY)")
    if config.kind == "gemini":
        return GeminiProvider(
            session,
            config.api_key,
            base_url=config.base_url,
            registry=registry,
            attempt_timeout=settings.gemini_attempt_timeout_seconds,
        )
    kind = OpenAIImagesProvider if config.kind == "openai-images" else OpenAIChatProvider
    return kind(
        session,
        config,
        model=settings.gemini_model,
        attempt_timeout=settings.gemini_attempt_timeout_seconds,
        download_max_bytes=download_max_bytes,
        download_timeout=download_timeout,
    )
