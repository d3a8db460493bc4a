from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_missing_secrets_name_the_variable_and_where_to_get_it():
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "DISCORD_TOKEN is not set" in text and "discord.com/developers/applications" in text
    assert "GEMINI_API_KEY is not set" in text and "aistudio.google.com/apikey" in text


def test_invalid_value_is_named_and_secret_not_echoed(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "tok-secret-123456")
    monkeypatch.setenv("GEMINI_API_KEY", "key-secret-987654")
    monkeypatch.setenv("QUOTA_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("UPSTREAM_RPM", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "QUOTA_TIMEZONE" in text and "UPSTREAM_RPM" in text
    assert "secret" not in text


def test_env_file_is_read_and_secrets_hidden_in_repr(tmp_path):
    (tmp_path / ".env").write_text("DISCORD_TOKEN=tok-secret-123456\nGEMINI_API_KEY=key-secret-987654\n")
    settings = load_settings()
    assert settings.gemini_api_key.get_secret_value() == "key-secret-987654"
    assert "secret" not in repr(settings) and "secret" not in str(settings.model_dump())


def test_generate_needs_only_the_gemini_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "key-secret-987654")
    assert load_settings(require=("GEMINI_API_KEY",)).discord_token is None


def test_every_setting_is_in_env_example_and_readme():
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        env = name.upper()
        assert re.search(rf"^#?\s*{env}=", example, re.M), f"{env} missing from .env.example"
        assert f"`{env}`" in readme, f"{env} missing from the README's configuration table"


def test_shard_ids_take_lists_and_ranges_and_must_fit_the_shard_count(monkeypatch):
    monkeypatch.setenv("SHARD_COUNT", "8")
    monkeypatch.setenv("SHARD_IDS", "0-2, 5")
    settings = load_settings(require=())
    assert settings.shard_ids == (0, 1, 2, 5) and settings.holds_shard_zero
    monkeypatch.setenv("SHARD_IDS", "4,6")
    assert not load_settings(require=()).holds_shard_zero
    for bad in ("8", "a-b", "3-"):
        monkeypatch.setenv("SHARD_IDS", bad)
        with pytest.raises(ConfigError):
            load_settings(require=())
    monkeypatch.delenv("SHARD_COUNT")
    monkeypatch.setenv("SHARD_IDS", "0")
    with pytest.raises(ConfigError, match="SHARD_IDS needs SHARD_COUNT"):
        load_settings(require=())


def test_service_urls_are_checked_and_never_shown(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://bot:pw-very-secret@db/bot")
    monkeypatch.setenv("REDIS_URL", "http://cache")
    with pytest.raises(ConfigError) as info:
        load_settings(require=())
    assert "DATABASE_URL" in str(info.value) and "REDIS_URL" in str(info.value)
    assert "very-secret" not in str(info.value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw-very-secret@db/bot")
    monkeypatch.setenv("REDIS_URL", "redis://:pw-also-secret@cache:6379/0")
    settings = load_settings(require=())
    assert settings.database == "postgresql://bot:pw-very-secret@db/bot"
    assert settings.url_passwords() == ["pw-very-secret", "pw-also-secret"]
    assert "secret" not in repr(settings)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_PATH", "/var/lib/bot/bot.sqlite3")
    assert load_settings(require=()).database == "sqlite:////var/lib/bot/bot.sqlite3"
