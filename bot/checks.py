"""`python -m bot check`: the configured models against what Google serves this key, and (`--probe`) one real
picture per model.

Listing proves less than it seems: Google keeps listing (and answering `models.get` for) the legacy
`gemini-2.5-flash-image` while a new project gets 404 NOT_FOUND from `generateContent`. So a listed legacy model
is a warning, not a pass, and `--probe` is the real test: the smallest picture each model makes (its smallest
size, square, a short prompt), with what it cost (from Google's token counts) and how long it took.
"""

from __future__ import annotations

import sys
import time

import aiohttp

from bot.config import Settings
from bot.errors import BotError, ModelUnavailable, OperatorError
from bot.models import ImageOptions
from bot.providers.gemini import GeminiProvider
from bot.providers.registry import ModelRegistry, ModelSpec

PROBE_PROMPT = "A small red circle on a plain white background."


def describe(registry: ModelRegistry, spec: ModelSpec) -> str:
    prices = ", ".join(
        f"{size} {registry.credits(spec, size)} cr (${registry.price_usd(spec, size):.3f})" for size in spec.sizes
    )
    return f"{spec.id} ({spec.name}): {prices}"


async def check_models(settings: Settings, *, probe: bool = False) -> int:
    registry = settings.registry()
    problems = 0
    print(f"\nModels (one credit = ${registry.credit_usd:.4f}; the first is the default):")
    for spec in registry.enabled:
        print(f"  {describe(registry, spec)}")
    assert settings.gemini_api_key is not None  # `check` requires it
    async with aiohttp.ClientSession() as http:
        provider = GeminiProvider(
            http,
            settings.gemini_api_key,
            base_url=settings.gemini_base_url,
            registry=registry,
            attempt_timeout=max(settings.gemini_attempt_timeout_seconds, 60.0),
        )
        try:
            listed = set(await provider.list_models())
        except BotError as exc:
            print(f"Cannot list Google's models with this key: {exc}", file=sys.stderr)
            return 2
        print(f"\nAgainst GET /v1beta/models ({len(listed)} models listed for this key):")
        for spec in registry.enabled:
            problems += _listing(registry, spec, listed)
        if probe:
            print("\nProbe (one smallest real picture per model; this is billed):")
            for spec in registry.enabled:
                problems += await _probe(provider, registry, spec)
        elif any(spec.legacy for spec in registry.enabled):
            print("\nRun `python -m bot check --probe` to know whether this project can use the legacy model.")
    if problems:
        print(f"\n{problems} problem(s) with the models; see above.", file=sys.stderr)
        return 2
    return 0


def _listing(registry: ModelRegistry, spec: ModelSpec, listed: set[str]) -> int:
    if spec.id not in listed:
        print(
            f"  PROBLEM {spec.id}: not listed for this key, so requests will fail (404). "
            f"Use a current model such as {registry.replacement(spec.id)}.",
            file=sys.stderr,
        )
        return 1
    if spec.legacy:
        print(
            f"  WARNING {spec.id}: legacy model. Google lists it to every project but serves it only to projects "
            f"that used it before; new projects get 404. Prefer {registry.replacement(spec.id)}."
        )
    elif not spec.known:
        print(
            f"  WARNING {spec.id}: listed, but unknown to this bot: used with conservative capabilities "
            "(1K, 10 ratios, 3 input images) and priced like the most expensive known 1K picture; set MODEL_PRICES."
        )
    else:
        print(f"  ok {spec.id}")
    return 0


async def _probe(provider: GeminiProvider, registry: ModelRegistry, spec: ModelSpec) -> int:
    size = spec.sizes[0]
    started = time.monotonic()
    try:
        image = await provider.generate(
            PROBE_PROMPT, options=ImageOptions(aspect_ratio="1:1", model=spec.id, size=size)
        )
    except ModelUnavailable:
        print(
            f"  PROBLEM {spec.id}: 404 NOT_FOUND: this project cannot use it. Use {registry.replacement(spec.id)}.",
            file=sys.stderr,
        )
        return 1
    except OperatorError as exc:
        print(f"  PROBLEM {spec.id}: the bot's setup was refused: {exc}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"  PROBLEM {spec.id}: no picture ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    cost = image.cost_usd if image.cost_usd is not None else registry.price_usd(spec, size)
    usage = image.usage
    print(
        f"  ok {spec.id} at {size}: {elapsed:.1f} s, ${cost:.4f} real cost ({usage.image_tokens} image, "
        f"{usage.output_tokens - usage.image_tokens} text and thinking, {usage.prompt_tokens} prompt tokens), "
        f"{len(image.data)} bytes {image.mime_type}, answered by {image.model}"
    )
    return 0
