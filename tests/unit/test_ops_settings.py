"""The operations settings as an operator writes them in the environment."""

from __future__ import annotations

import pytest

from bot.config import Settings, load_settings
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_off_and_private():
    settings = load_settings(require=())
    assert settings.metrics_port is None and settings.metrics_host == "127.0.0.1"
    assert settings.log_format == "text" and settings.prompt_retention_days == 90
    assert settings.usage_alert_channel is None


def test_empty_values_mean_unset(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "")
    monkeypatch.setenv("USAGE_ALERT_CHANNEL", " ")
    settings = load_settings(require=())
    assert settings.metrics_port is None and settings.usage_alert_channel is None


def test_values_are_read(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "9108")
    monkeypatch.setenv("METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("PROMPT_RETENTION_DAYS", "0")
    monkeypatch.setenv("USAGE_ALERT_CHANNEL", "123456789012345678")
    settings = load_settings(require=())
    assert (settings.metrics_port, settings.metrics_host, settings.log_format) == (9108, "0.0.0.0", "json")
    assert (settings.prompt_retention_days, settings.usage_alert_channel) == (0, 123456789012345678)


def test_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "70000")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    monkeypatch.setenv("PROMPT_RETENTION_DAYS", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings(require=())
    text = str(info.value)
    assert "METRICS_PORT" in text and "LOG_FORMAT" in text and "PROMPT_RETENTION_DAYS" in text
