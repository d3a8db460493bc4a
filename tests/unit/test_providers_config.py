"""Providers from the environment: PROVIDERS and the PROVIDER_<NAME>_* variables, good and bad."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.models import ASPECT_RATIOS
from bot.providers.config import DEFAULT_SIZE_MAP, SUFFIXES, load_providers, read_providers

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-or-v1-very-secret-4242"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, gemini_api_key=SecretStr("gemini-secret-777"), **values)  # type: ignore[arg-type]


def test_default_is_googles_endpoint_with_the_gemini_settings():
    configs, problems = read_providers(settings(gemini_base_url="http://127.0.0.1:9/"), {})
    assert problems == []
    (gemini,) = configs
    assert (gemini.name, gemini.kind, gemini.base_url) == ("gemini", "gemini", "http://127.0.0.1:9")
    assert gemini.api_key is not None and gemini.api_key.get_secret_value() == "gemini-secret-777"
    assert gemini.rpm is None and gemini.price("gemini-2.5-flash-image") is None


def test_a_gateway_with_every_option():
    env = {
        "PROVIDERS": " Gemini , openrouter,local ",
        "PROVIDER_GEMINI_RPM": "8",
        "PROVIDER_GEMINI_PRICES": "0.039",
        "PROVIDER_OPENROUTER_KIND": "openai-chat",
        "PROVIDER_OPENROUTER_BASE_URL": "https://openrouter.ai/api/v1/",
        "PROVIDER_OPENROUTER_API_KEY": KEY,
        "PROVIDER_OPENROUTER_MODELS": "gemini-3-pro-image = google/gemini-3-pro-image, x=y",
        "PROVIDER_OPENROUTER_CONCURRENCY": "2",
        "PROVIDER_OPENROUTER_PRICES": "gemini-3-pro-image=0.14,gemini-2.5-flash-image=0.04",
        "provider_local_kind": "openai-images",  # names are case-insensitive, as for every setting
        "PROVIDER_LOCAL_BASE_URL": "http://127.0.0.1:4000",
        "PROVIDER_LOCAL_ALLOW_HTTP": "true",
        "PROVIDER_LOCAL_API_KEY": "x",
        "PROVIDER_LOCAL_SIZE_MAP": "16:9=16:9,1:1=1024x1024",
    }
    configs, problems = read_providers(settings(), env)
    assert problems == []
    gemini, router, local = configs
    assert [c.name for c in configs] == ["gemini", "openrouter", "local"]
    assert gemini.rpm == 8 and gemini.price("anything") == 0.039
    assert router.kind == "openai-chat" and router.base_url == "https://openrouter.ai/api/v1"
    assert router.remote_model("gemini-3-pro-image") == "google/gemini-3-pro-image"
    assert router.remote_model("gemini-2.5-flash-image") == "gemini-2.5-flash-image"  # unmapped: unchanged
    assert router.concurrency == 2 and router.rpm is None
    assert router.price("gemini-3-pro-image") == 0.14 and router.price("other") is None
    assert router.api_key is not None and router.api_key.get_secret_value() == KEY
    assert local.allow_http and local.size_map == {"16:9": "16:9", "1:1": "1024x1024"}
    assert router.size_map == DEFAULT_SIZE_MAP
    assert KEY not in repr(configs)


def test_size_map_ratio_sends_each_ratio_itself():
    env = {
        "PROVIDERS": "gw",
        "PROVIDER_GW_KIND": "openai-images",
        "PROVIDER_GW_BASE_URL": "https://gw.example",
        "PROVIDER_GW_API_KEY": KEY,
        "PROVIDER_GW_SIZE_MAP": "ratio",
    }
    (gw,), problems = read_providers(settings(), env)
    assert problems == [] and gw.size_map["16:9"] == "16:9" and set(gw.size_map) == set(ASPECT_RATIOS)


def test_an_empty_size_map_sends_no_size():
    env = {
        "PROVIDERS": "gw",
        "PROVIDER_GW_KIND": "openai-images",
        "PROVIDER_GW_BASE_URL": "https://gw.example",
        "PROVIDER_GW_API_KEY": KEY,
        "PROVIDER_GW_SIZE_MAP": "",
    }
    (gw,), problems = read_providers(settings(), env)
    assert problems == [] and gw.size_map == {}


def test_every_bad_variable_is_named_once_and_no_value_is_echoed():
    env = {
        "PROVIDERS": "gemini,a,b,c,a,bad-name",
        "PROVIDER_GEMINI_BASE_URL": "https://elsewhere.example",
        "PROVIDER_GEMINI_SIZE_MAP": "1:1=1024x1024",
        "PROVIDER_A_KIND": "dall-e",
        "PROVIDER_A_API_KEY": KEY,
        "PROVIDER_B_KIND": "openai-chat",
        "PROVIDER_B_BASE_URL": "http://gateway.example",
        "PROVIDER_B_RPM": "0",
        "PROVIDER_B_PRICES": "-1",
        "PROVIDER_B_MODELS": "gemini-3-pro-image",
        "PROVIDER_B_SIZE_MAP": "16:9=1344x768",
        "PROVIDER_B_ALLOW_HTTP": "maybe",
        "PROVIDER_B_TIMEOUT": "30",
        "PROVIDER_C_KIND": "openai-images",
        "PROVIDER_C_BASE_URL": "ftp://files.example",
        "PROVIDER_C_API_KEY": "   ",
        "PROVIDER_C_SIZE_MAP": "17:9=1x1",
        "PROVIDER_C_CONCURRENCY": "lots",
    }
    configs, problems = read_providers(settings(), env)
    text = "\n".join(problems)
    expected = [
        "PROVIDERS: a is listed twice",
        "PROVIDERS: a provider name may hold only",
        "PROVIDER_GEMINI_BASE_URL: the gemini provider is configured by GEMINI_BASE_URL",
        "PROVIDER_GEMINI_SIZE_MAP: does not apply",
        "PROVIDER_A_KIND: is unknown",
        "PROVIDER_A_BASE_URL: is not set",
        "PROVIDER_B_API_KEY: is not set",
        "PROVIDER_B_BASE_URL: uses http://",
        "PROVIDER_B_RPM: must be a whole number",
        "PROVIDER_B_PRICES: must be US dollars",
        "PROVIDER_B_MODELS: must be a comma-separated list",
        "PROVIDER_B_SIZE_MAP: applies only to",
        "PROVIDER_B_ALLOW_HTTP: must be true or false",
        "PROVIDER_B_TIMEOUT: unknown variable for provider b",
        "PROVIDER_C_BASE_URL: must be an address",
        "PROVIDER_C_API_KEY: is not set",
        "PROVIDER_C_SIZE_MAP: 17:9 is not an aspect ratio",
        "PROVIDER_C_CONCURRENCY: must be a whole number",
    ]
    for line in expected:
        assert text.count(line) == 1, line
    assert len(problems) == len(expected)
    assert configs == ()  # a provider with any problem is not built
    assert KEY not in text and "gateway.example" not in text and "dall-e" not in text


def test_load_providers_raises_one_config_error_with_every_problem():
    with pytest.raises(ConfigError) as info:
        load_providers(settings(), {"PROVIDERS": "gw", "PROVIDER_GW_KIND": "openai-chat"})
    text = str(info.value)
    assert text.startswith("The bot's configuration is incomplete or invalid:")
    assert "PROVIDER_GW_BASE_URL" in text and "PROVIDER_GW_API_KEY" in text and text.endswith("See .env.example.")


def test_an_empty_provider_list_is_refused():
    _, problems = read_providers(settings(), {"PROVIDERS": " , "})
    assert problems == ["  - PROVIDERS: is empty; list at least one provider (the default is gemini)."]


def test_env_file_is_read_and_the_environment_wins(tmp_path, clean_env):
    monkeypatch = clean_env
    (tmp_path / ".env").write_text(
        "PROVIDERS=gw,gemini\nPROVIDER_GW_KIND=openai-images\nPROVIDER_GW_BASE_URL=https://a.example\n"
        f"PROVIDER_GW_API_KEY={KEY}\n"
    )
    monkeypatch.setenv("PROVIDER_GW_BASE_URL", "https://b.example")
    configs = load_providers(Settings(gemini_api_key=SecretStr("k")))  # reads ./.env like Settings does
    assert [c.name for c in configs] == ["gw", "gemini"]
    assert configs[0].base_url == "https://b.example"
    assert configs[0].api_key is not None and configs[0].api_key.get_secret_value() == KEY


def test_variables_of_unlisted_providers_only_warn_without_values(caplog):
    caplog.set_level(logging.WARNING)
    env = {"PROVIDER_OLD_KIND": "openai-chat", "PROVIDER_OLD_API_KEY": KEY}
    configs, problems = read_providers(settings(), env)
    assert problems == [] and [c.name for c in configs] == ["gemini"]
    assert "PROVIDER_OLD_API_KEY" in caplog.text and KEY not in caplog.text


def test_names_that_are_prefixes_of_each_other_keep_their_own_variables():
    env = {"PROVIDERS": "gw,gw_b"}
    for name in ("GW", "GW_B"):
        env |= {
            f"PROVIDER_{name}_KIND": "openai-images",
            f"PROVIDER_{name}_BASE_URL": "https://gw.example",
            f"PROVIDER_{name}_API_KEY": KEY,
        }
    configs, problems = read_providers(settings(), env)
    assert problems == [] and [c.name for c in configs] == ["gw", "gw_b"]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith("PROVIDER") or name.upper() in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_load_settings_names_provider_problems_beside_the_others(clean_env):
    clean_env.setenv("DISCORD_TOKEN", "tok-secret-123456")
    clean_env.setenv("GEMINI_API_KEY", "key-secret-987654")
    clean_env.setenv("PROVIDERS", "gemini,gw")
    clean_env.setenv("PROVIDER_GW_KIND", "openai-chat")
    clean_env.setenv("PROVIDER_GW_API_KEY", KEY)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "PROVIDER_GW_BASE_URL: is not set" in text and KEY not in text and "secret" not in text


def test_without_the_gemini_provider_no_gemini_key_is_needed(clean_env):
    clean_env.setenv("DISCORD_TOKEN", "tok-secret-123456")
    clean_env.setenv("PROVIDERS", "openrouter")
    clean_env.setenv("PROVIDER_OPENROUTER_KIND", "openai-chat")
    clean_env.setenv("PROVIDER_OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
    clean_env.setenv("PROVIDER_OPENROUTER_API_KEY", KEY)
    settings = load_settings()
    assert settings.gemini_api_key is None and settings.provider_names == ("openrouter",)
    clean_env.setenv("PROVIDERS", "openrouter,gemini")
    with pytest.raises(ConfigError, match="GEMINI_API_KEY is not set"):
        load_settings()


def test_the_per_provider_variables_are_documented_as_a_pattern():
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for suffix in SUFFIXES:
        pattern = f"PROVIDER_<NAME>_{suffix}"
        assert re.search(rf"^#?\s*{pattern}=", example, re.M), f"{pattern} missing from .env.example"
        assert f"`{pattern}`" in readme, f"{pattern} missing from the README's configuration table"


def test_each_provider_has_the_name_users_read():
    env = {
        "PROVIDERS": "gemini,openrouter,local,proxy",
        "PROVIDER_OPENROUTER_KIND": "openai-chat",
        "PROVIDER_OPENROUTER_BASE_URL": "https://openrouter.ai/api/v1",
        "PROVIDER_OPENROUTER_API_KEY": KEY,
        "PROVIDER_OPENROUTER_DISPLAY_NAME": " OpenRouter ",
        "PROVIDER_LOCAL_KIND": "openai-images",
        "PROVIDER_LOCAL_BASE_URL": "https://images.example",
        "PROVIDER_LOCAL_API_KEY": "x",
        "PROVIDER_PROXY_KIND": "gemini",
        "PROVIDER_PROXY_BASE_URL": "https://proxy.example",
        "PROVIDER_PROXY_API_KEY": "x",
        "PROVIDER_GEMINI_DISPLAY_NAME": "Google AI Studio",
    }
    configs, problems = read_providers(settings(), env)
    assert problems == []
    # Google's own endpoint reads as Google unless renamed; others by their display name, else their name (a
    # native-format proxy is not Google).
    assert [c.label for c in configs] == ["Google AI Studio", "OpenRouter", "local", "proxy"]
    configs, _ = read_providers(settings(), {})
    assert configs[0].label == "Google"


@pytest.mark.parametrize("value", ["x" * 41, "two\nlines", "<@123>", "**bold**", "@everyone"])
def test_a_display_name_must_be_plain_and_short(value):
    env = {"PROVIDERS": "gemini", "PROVIDER_GEMINI_DISPLAY_NAME": value}
    _, problems = read_providers(settings(), env)
    assert problems == [
        "  - PROVIDER_GEMINI_DISPLAY_NAME: must be at most 40 plain characters (no markdown, mentions or line breaks)."
    ]


def test_the_readmes_provider_example_is_valid():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(PROVIDERS=gemini,openrouter,images\n.*?)```", readme, re.S)
    assert block is not None
    env = dict(line.split("=", 1) for line in block.group(1).splitlines() if line.strip() and not line.startswith("#"))
    configs, problems = read_providers(settings(), env)
    assert problems == []
    assert [(c.name, c.kind, c.label) for c in configs] == [
        ("gemini", "gemini", "Google"),
        ("openrouter", "openai-chat", "OpenRouter"),
        ("images", "openai-images", "Example Gateway"),
    ]
