"""docker-compose.scale.yml as the bot would read it: every variable it sets is a setting, each bot process gets
settings the bot accepts, and the processes split the shards between them exactly once with names of their own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
BOT_IMAGE = "gemini-image-bot"


def compose() -> dict[str, Any]:
    text = (ROOT / "docker-compose.scale.yml").read_text()
    # Compose fills ${VAR:?message} from .env; any value will do to read the file as the bot would.
    text = re.sub(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", "pw", text)
    return yaml.safe_load(text)


def test_every_variable_a_bot_process_gets_is_a_setting_the_bot_accepts(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    services = compose()["services"]
    names = {name.upper() for name in Settings.model_fields}
    bots = {name: s for name, s in services.items() if s.get("image") == BOT_IMAGE}
    assert {"migrate", "bot-0", "bot-1"} <= set(bots)
    for name, service in bots.items():
        env = {key: str(value) for key, value in service["environment"].items()}
        assert set(env) <= names, f"{name}: {set(env) - names}"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        load_settings(require=())  # raises with every problem named
        for key in env:
            monkeypatch.delenv(key)


def test_the_processes_split_the_shards_exactly_once_under_names_of_their_own():
    services = compose()["services"]
    runners = [s["environment"] for s in services.values() if "SHARD_IDS" in s.get("environment", {})]
    assert len(runners) == 2
    counts = {int(env["SHARD_COUNT"]) for env in runners}
    assert len(counts) == 1
    shards = sorted(int(shard) for env in runners for shard in str(env["SHARD_IDS"]).split(","))
    assert shards == list(range(counts.pop()))
    assert len({env["INSTANCE_ID"] for env in runners}) == len(runners)
