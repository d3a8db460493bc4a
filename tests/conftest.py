from __future__ import annotations

import pytest

from bot.db import Database


@pytest.fixture
async def db(tmp_path):
    """A migrated on-disk WAL database, as the bot opens it."""
    database = await Database.open(tmp_path / "bot.sqlite3")
    yield database
    await database.close()
