from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import ImageBot
from bot.config import Settings
from bot.storage.db import Database
from tests.fakes.discord import FakeDiscord, fake_discord  # noqa: F401  (a fixture)
from tests.fakes.gemini import FakeGemini
from tests.servers import PostgresServer, postgres_server, postgres_url, redis_server, redis_url  # noqa: F401

# Every test that takes `db` runs on each engine: a SQLite file and a PostgreSQL database of its own.
BACKENDS = ("sqlite", "postgresql")
_templates: dict[int, str] = {}  # PostgreSQL server port -> a migrated database that new ones are copied from


async def open_backend(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> tuple[Database, Any]:
    """A migrated database as the bot opens it, and what to do once it is closed."""
    if backend == "sqlite":
        return await Database.open(tmp_path / "bot.sqlite3"), None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if server.port not in _templates:  # migrating once per session and copying is 5x faster than per test
        template = await server.create_database()
        await (await Database.open(server.url_for(template))).close()
        _templates[server.port] = template
    name = await server.create_database(template=_templates[server.port])
    return await Database.open(server.url_for(name)), lambda: server.drop_database(name)


@pytest.fixture(params=BACKENDS)
async def db(request, tmp_path):
    """A migrated database as the bot opens it: an on-disk WAL SQLite file, or a PostgreSQL database."""
    database, drop = await open_backend(request, request.param, tmp_path)
    yield database
    await database.close()
    if drop is not None:
        await drop()


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake


def make_settings(fake: FakeDiscord, gemini: FakeGemini, db_path: Path, **overrides: Any) -> Settings:
    """Settings for a bot living between the two fakes; never reads the developer's environment or .env."""
    values: dict[str, Any] = {
        "discord_token": fake.token,
        "gemini_api_key": gemini.api_key,
        "gemini_base_url": gemini.base_url,
        "discord_guild_id": fake.guild.id,
        "database_path": db_path,
        "progress_edit_interval_seconds": 0,
        "queue_report_interval_seconds": 0,
        "gemini_backoff_base_seconds": 0.01,
        "gemini_backoff_max_seconds": 0.05,
        "gemini_attempt_timeout_seconds": 2,
        "gemini_timeout_seconds": 10,
        "shutdown_grace_seconds": 1,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings_for(tmp_path, gemini) -> Callable[..., Settings]:
    def make(fake: FakeDiscord, **overrides: Any) -> Settings:
        return make_settings(fake, gemini, tmp_path / "bot.sqlite3", **overrides)

    return make


@pytest.fixture
def run_bot(fake_discord, settings_for):  # noqa: F811
    """`async with run_bot(**settings) as bot:` runs the real bot against both fakes (same database each time)."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[ImageBot]:
        async with fake_discord.running(ImageBot(settings_for(fake_discord, **overrides))) as bot:
            yield bot  # type: ignore[misc]

    return start
