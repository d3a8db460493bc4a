"""Build the provider chain the settings describe: one provider per configured name, each with its own lane."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from bot.config import Settings
from bot.errors import ConfigError
from bot.gate import DEFAULT_EXPECTED_DURATION_SECONDS, Gate
from bot.providers import ImageProvider
from bot.providers.config import ProviderConfig, load_providers
from bot.providers.failover import FailoverProvider, Member
from bot.providers.gemini import GeminiProvider
from bot.providers.openai_chat import OpenAIChatProvider
from bot.providers.openai_images import OpenAIImagesProvider
from bot.ratelimit import Clock

# A lane without PROVIDER_N_RPM / PROVIDER_N_CONCURRENCY: only the scheduler's bot-wide gate limits it.
UNLIMITED = 1_000_000


def build_provider(
    session: aiohttp.ClientSession,
    settings: Settings,
    configs: Sequence[ProviderConfig] | None = None,
    *,
    clock: Clock | None = None,
    download_max_bytes: int = 30 * 1024 * 1024,
    download_timeout: float = 20.0,
) -> FailoverProvider:
    """The chain for `settings` (providers read from the environment unless `configs` are given). The aiohttp
    session is the app's and is shared by every provider."""
    configs = load_providers(settings) if configs is None else configs
    chain = len(configs) > 1
    members = [
        Member(
            config,
            _provider(session, settings, config, download_max_bytes, download_timeout),
            _lane(settings, config) if chain else None,
        )
        for config in configs
    ]
    return FailoverProvider(
        members, model=settings.gemini_model, deadline=settings.gemini_timeout_seconds, clock=clock
    )


def _provider(
    session: aiohttp.ClientSession,
    settings: Settings,
    config: ProviderConfig,
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
            model=config.remote_model(settings.gemini_model),
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


def _lane(settings: Settings, config: ProviderConfig) -> Gate:
    """A provider's own gate: its circuit and 429 pause with the bot's settings, its own rate and concurrency
    when configured. Times scale with the rate window like the scheduler's (tests run it shortened)."""
    scale = settings.upstream_window_seconds / 60
    return Gate(
        rpm=config.rpm or UNLIMITED,
        concurrency=config.concurrency or UNLIMITED,
        failure_threshold=settings.circuit_failure_threshold,
        cooldown=settings.circuit_cooldown_seconds,
        window=settings.upstream_window_seconds,
        margin=settings.upstream_window_margin_seconds * scale,
        default_retry_after=settings.upstream_429_pause_seconds * scale,
        expected_duration=DEFAULT_EXPECTED_DURATION_SECONDS * scale,
    )
