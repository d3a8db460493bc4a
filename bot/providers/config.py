"""The provider list, parsed from the environment (and `.env`) like every other setting.

`PROVIDERS` names providers in priority order (default `gemini`). Each name `N` has variables whose names are
built from it, so they cannot be fields of `Settings`; they are read here, in one function, into typed
`ProviderConfig`s, and every problem is reported the way `load_settings` reports a bad setting (the variable's
name and what is wrong, never its value):

    PROVIDER_N_KIND         gemini | openai-images | openai-chat
    PROVIDER_N_BASE_URL     the gateway's address (with or without a trailing /v1)
    PROVIDER_N_API_KEY      secret
    PROVIDER_N_MODELS       our model ids to theirs: gemini-3-pro-image=nano-banana-pro,...; unmapped ids pass
    PROVIDER_N_RPM          optional: starts per minute this provider allows (else only the bot-wide gate)
    PROVIDER_N_CONCURRENCY  optional: requests in flight at this provider
    PROVIDER_N_PRICES       optional: USD per image, one number or per model id: gemini-3-pro-image=0.134,...
    PROVIDER_N_ALLOW_HTTP   optional, false: allow http:// for the base URL and for result urls (a local proxy)
    PROVIDER_N_SIZE_MAP     optional, openai-images: the `size` sent per aspect ratio: 16:9=1344x768,1:1=auto;
                            `ratio` sends the ratio itself; empty sends none (default: Gemini's 1K pixel sizes)
    PROVIDER_N_DISPLAY_NAME optional: the name users read ("made via OpenRouter", "OpenRouter is overloaded");
                            default: Google for the gemini provider, else the name in PROVIDERS

The provider named `gemini` is Google's own endpoint and keeps GEMINI_API_KEY and GEMINI_BASE_URL.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import ConfigError
from bot.models import ASPECT_RATIOS

log = logging.getLogger(__name__)

Kind = Literal["gemini", "openai-images", "openai-chat"]
KINDS: tuple[Kind, ...] = ("gemini", "openai-images", "openai-chat")
GOOGLE = "gemini"  # the provider name that means Google's own endpoint, configured by GEMINI_* settings
SUFFIXES = (
    "KIND",
    "BASE_URL",
    "API_KEY",
    "MODELS",
    "RPM",
    "CONCURRENCY",
    "PRICES",
    "ALLOW_HTTP",
    "SIZE_MAP",
    "DISPLAY_NAME",
)
DISPLAY_NAME_MAX = 40  # it goes into footers and messages
# Gemini's own pixel sizes per ratio (1K): what a gateway fronting Gemini makes when asked for that ratio.
DEFAULT_SIZE_MAP: Mapping[str, str] = {
    "1:1": "1024x1024",
    "2:3": "832x1248",
    "3:2": "1248x832",
    "3:4": "864x1184",
    "4:3": "1184x864",
    "4:5": "896x1152",
    "5:4": "1152x896",
    "9:16": "768x1344",
    "16:9": "1344x768",
    "21:9": "1536x672",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_Report = Callable[[str], None]  # says what is wrong with one variable


@dataclass(frozen=True)
class ProviderConfig:
    """One provider as configured. `repr` shows no key (SecretStr masks it)."""

    name: str
    kind: Kind
    base_url: str
    api_key: SecretStr | None
    models: Mapping[str, str] = field(default_factory=dict)
    rpm: int | None = None
    concurrency: int | None = None
    prices: Mapping[str, float] = field(default_factory=dict)
    default_price: float | None = None  # a bare number in PRICES: every model
    allow_http: bool = False
    size_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SIZE_MAP))
    display_name: str | None = None

    @property
    def label(self) -> str:
        """The name users read: PROVIDER_N_DISPLAY_NAME, else Google for Google's own endpoint, else the name."""
        return self.display_name or ("Google" if self.name == GOOGLE else self.name)

    def remote_model(self, model: str) -> str:
        """The provider's id for one of ours; ids without a mapping pass unchanged."""
        return self.models.get(model, model)

    def price(self, model: str) -> float | None:
        """USD per image at this provider, when the operator said."""
        return self.prices.get(model, self.default_price)


def load_providers(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[ProviderConfig, ...]:
    """The providers in priority order, or one `ConfigError` naming every bad variable."""
    configs, problems = read_providers(settings, environ)
    if problems:
        raise ConfigError(
            "\n".join(["The bot's configuration is incomplete or invalid:", *problems, "See .env.example."])
        )
    return configs


def read_providers(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[tuple[ProviderConfig, ...], list[str]]:
    """The providers and the problems found (lines for the start-up message). The variables come from the
    process environment over the `.env` file `Settings` reads, or all from `environ` when given (PROVIDERS too,
    defaulting to `settings.providers`)."""
    env = _environment(settings) if environ is None else {k.upper(): v for k, v in environ.items()}
    problems: list[str] = []
    names = _names(env.get("PROVIDERS", settings.providers), problems)
    configs = [config for name in names if (config := _provider(name, env, settings, problems)) is not None]
    _check_leftovers(names, env, problems)
    return tuple(configs), problems


def _environment(settings: Settings) -> dict[str, str]:
    """The process environment over `.env`, as pydantic-settings reads them (names case-insensitive)."""
    values: dict[str, str] = {}
    env_file = settings.model_config.get("env_file")
    if isinstance(env_file, str | Path) and Path(env_file).is_file():
        encoding = settings.model_config.get("env_file_encoding") or "utf-8"
        values.update({k.upper(): v for k, v in dotenv_values(env_file, encoding=encoding).items() if v is not None})
    values.update({k.upper(): v for k, v in os.environ.items()})
    return values


def _names(raw: str, problems: list[str]) -> list[str]:
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if not _NAME.match(name):
            problems.append(
                "  - PROVIDERS: a provider name may hold only letters, digits and underscores and must start "
                "with a letter (it becomes part of variable names)."
            )
        elif name in names:
            problems.append(f"  - PROVIDERS: {name} is listed twice.")
        else:
            names.append(name)
    if not names and not problems:
        problems.append("  - PROVIDERS: is empty; list at least one provider (the default is gemini).")
    return names


def _provider(name: str, env: Mapping[str, str], settings: Settings, problems: list[str]) -> ProviderConfig | None:
    prefix = f"PROVIDER_{name.upper()}_"
    before = len(problems)

    def var(suffix: str) -> str | None:
        value = env.get(prefix + suffix)
        return value.strip() if value is not None else None

    def bad(suffix: str, message: str) -> None:
        problems.append(f"  - {prefix}{suffix}: {message}.")

    kind_raw = (var("KIND") or "").lower()
    if name == GOOGLE:
        if kind_raw not in ("", "gemini"):
            bad("KIND", "the provider named gemini is Google's own endpoint; give a gateway another name")
        for suffix, instead in (("BASE_URL", "GEMINI_BASE_URL"), ("API_KEY", "GEMINI_API_KEY")):
            if var(suffix) is not None:
                bad(suffix, f"the gemini provider is configured by {instead}; remove this line")
        kind: Kind = "gemini"
    elif kind_raw in KINDS:
        kind = kind_raw  # narrowed to Kind by the membership test
    else:
        bad("KIND", f"is {'not set' if not kind_raw else 'unknown'}; use one of {', '.join(KINDS)}")
        kind = "openai-images"  # to check the other variables all the same
    allow_http = _bool(var("ALLOW_HTTP"), lambda m: bad("ALLOW_HTTP", m))
    if name == GOOGLE:
        for suffix in ("ALLOW_HTTP", "SIZE_MAP"):
            if var(suffix) is not None:
                bad(suffix, "does not apply to the gemini provider (GEMINI_BASE_URL may be http:// already)")
        base_url, api_key = settings.gemini_base_url, settings.gemini_api_key
    else:
        base_url = _base_url(var("BASE_URL"), allow_http, prefix, lambda m: bad("BASE_URL", m))
        key = env.get(prefix + "API_KEY")
        if key is None or not key.strip():
            bad("API_KEY", "is not set; the gateway's API key (any non-empty text for a proxy that needs none)")
        api_key = SecretStr(key.strip()) if key else None
    size_raw = var("SIZE_MAP")
    if size_raw is not None and kind != "openai-images" and name != GOOGLE:
        bad("SIZE_MAP", "applies only to PROVIDER_N_KIND=openai-images")
    config = ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=api_key,
        models=_pairs(var("MODELS"), str, lambda m: bad("MODELS", m)),
        rpm=_positive(var("RPM"), lambda m: bad("RPM", m)),
        concurrency=_positive(var("CONCURRENCY"), lambda m: bad("CONCURRENCY", m)),
        allow_http=allow_http,
        size_map=_size_map(size_raw, lambda m: bad("SIZE_MAP", m)),
        display_name=_display_name(var("DISPLAY_NAME"), lambda m: bad("DISPLAY_NAME", m)),
        **_prices(var("PRICES"), lambda m: bad("PRICES", m)),
    )
    return config if len(problems) == before else None


def _check_leftovers(names: list[str], env: Mapping[str, str], problems: list[str]) -> None:
    """A misspelt suffix of a listed provider is an error; variables of unlisted providers only a warning (an
    operator may keep a gateway configured and switch it off by leaving it out of PROVIDERS)."""
    known = {f"PROVIDER_{name.upper()}_{suffix}" for name in names for suffix in SUFFIXES}
    unlisted: set[str] = set()
    for key in sorted(env):
        if not key.startswith("PROVIDER_") or key in known:
            continue
        owner = next(
            (n for n in sorted(names, key=len, reverse=True) if key.startswith(f"PROVIDER_{n.upper()}_")), None
        )
        if owner is not None:
            problems.append(
                f"  - {key}: unknown variable for provider {owner}; known ones end in {', '.join(SUFFIXES)}."
            )
        else:
            unlisted.add(key)
    if unlisted:
        log.warning("provider variables set for providers not in PROVIDERS (ignored): %s", ", ".join(sorted(unlisted)))


def _base_url(raw: str | None, allow_http: bool, prefix: str, bad: _Report) -> str:
    if not raw:
        bad("is not set; the gateway's address, e.g. https://openrouter.ai/api/v1")
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        bad("must be an address starting with https://")
    elif parts.scheme == "http" and not allow_http:
        bad(
            "uses http://, which sends the API key unencrypted; use https:// or, for a proxy on this machine or "
            f"network, set {prefix}ALLOW_HTTP=true"
        )
    elif parts.query or parts.fragment:
        bad("must not carry a query or fragment")
    return raw.rstrip("/")


def _bool(raw: str | None, bad: _Report) -> bool:
    value = (raw or "").lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        bad("must be true or false")
    return False


def _positive(raw: str | None, bad: _Report) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        bad("must be a whole number of at least 1")
        return None
    return value


def _pairs(raw: str | None, convert: type, bad: _Report) -> dict:
    """`a=b,c=d` (spaces around either side are ignored)."""
    result: dict = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        ours, sep, theirs = (s.strip() for s in item.partition("="))
        if not sep or not ours or not theirs:
            bad("must be a comma-separated list of ours=theirs pairs")
            return {}
        if ours in result:
            bad(f"maps {ours} twice")
            return {}
        try:
            result[ours] = convert(theirs)
        except ValueError:
            bad(f"the value for {ours} is not a number")
            return {}
    return result


def _prices(raw: str | None, bad: _Report) -> dict:
    if raw is None or raw == "":
        return {}
    if "=" not in raw:
        prices: dict[str, float] = {}
        try:
            default: float | None = float(raw)
        except ValueError:
            default = None
    else:
        prices, default = _pairs(raw, float, bad), None
        if not prices:
            return {}
    if (default is None and not prices) or any(not math.isfinite(p) or p < 0 for p in (*prices.values(), default or 0)):
        bad("must be US dollars per image (0 or more): one number, or model=price pairs")
        return {}
    return {"prices": prices, "default_price": default}


def _display_name(raw: str | None, bad: _Report) -> str | None:
    if not raw:
        return None
    if len(raw) > DISPLAY_NAME_MAX or any(not c.isprintable() for c in raw) or any(c in raw for c in "`*_~|<>@#"):
        bad(f"must be at most {DISPLAY_NAME_MAX} plain characters (no markdown, mentions or line breaks)")
        return None
    return raw


def _size_map(raw: str | None, bad: _Report) -> dict[str, str]:
    if raw is None:
        return dict(DEFAULT_SIZE_MAP)
    if raw.lower() == "ratio":  # gateways that take the ratio itself as `size`
        return {ratio: ratio for ratio in ASPECT_RATIOS}
    sizes: dict[str, str] = _pairs(raw, str, bad)
    for ratio, size in sizes.items():
        if ratio not in ASPECT_RATIOS:
            bad(f"{ratio} is not an aspect ratio; use {', '.join(ASPECT_RATIOS)}")
            return dict(DEFAULT_SIZE_MAP)
        if any(c.isspace() for c in size):
            bad(f"the size for {ratio} contains a space")
            return dict(DEFAULT_SIZE_MAP)
    return sizes
