from __future__ import annotations

import asyncio

import pytest

from bot.storage.db import Database, dialect_of, migrations, redact_url, sqlite_path
from bot.storage.postgres import numbered
from tests.servers import PostgresServer

INSERT = (
    "INSERT INTO generations (created_at, user_id, channel_id, kind, prompt, model) VALUES (1, 2, 3, 'imagine', 'p', ?)"
)


async def test_migrations_apply_once_and_record_version(db):
    assert await db.version() == migrations(db.dialect)[-1][0]
    assert await db.insert(INSERT, ("m",)) == 1
    again = await Database.open(db.url)  # must not re-run migrations (CREATE TABLE would fail) and keeps the data
    try:
        assert await again.version() == await db.version()
        row = await again.fetchone("SELECT COUNT(*) FROM generations")
        assert row[0] == 1
    finally:
        await again.close()


async def test_sqlite_runs_in_wal_mode(tmp_path):
    db = await Database.open(f"sqlite:///{tmp_path}/x.sqlite3")
    try:
        assert db.path == f"{tmp_path}/x.sqlite3"  # type: ignore[attr-defined]
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.insert(INSERT, ("m",))
            raise RuntimeError("boom")
    row = await db.fetchone("SELECT COUNT(*) FROM generations")
    assert row[0] == 0


async def test_rows_answer_by_position_and_by_name_and_writes_count_rows(db):
    first, second = await db.insert(INSERT, ("a",)), await db.insert(INSERT, ("b",))
    assert second == first + 1
    assert await db.execute("UPDATE generations SET status = 'failed' WHERE id >= ?", (first,)) == 2
    assert await db.execute("UPDATE generations SET status = 'failed' WHERE id > ?", (second,)) == 0
    row = await db.fetchone("SELECT id, model FROM generations WHERE guild_id IS NOT DISTINCT FROM ?", (None,))
    assert (row[0], row["model"], tuple(row), dict(row)) == (first, "a", (first, "a"), {"id": first, "model": "a"})


async def test_both_engines_build_the_same_schema(tmp_path, postgres_server: PostgresServer):
    """Every table and column, with its type and nullability, in each dialect's migrations (a migration added for
    one engine only, or a column typed differently, fails here)."""
    sqlite = await Database.open(tmp_path / "x.sqlite3")
    name = await postgres_server.create_database()
    pg = await Database.open(postgres_server.url_for(name))
    try:
        tables = [r[0] for r in await sqlite.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
        lite: set[tuple[str, str, str, bool]] = set()
        for table in tables:
            for row in await sqlite.fetchall(f"PRAGMA table_info({table})"):
                nullable = not row["notnull"] and not row["pk"]
                lite.add((table, row["name"], row["type"], nullable))
        types = {"bigint": "INTEGER", "double precision": "REAL", "text": "TEXT", "bytea": "BLOB"}
        rows = await pg.fetchall(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'schema_migrations'"
        )
        post = {(r[0], r[1], types.get(r[2], r[2]), r[3] == "YES") for r in rows}
        assert post == lite
        assert [v for v, _, _ in migrations("postgresql")] == [v for v, _, _ in migrations("sqlite")]
        assert [n for _, n, _ in migrations("postgresql")] == [n for _, n, _ in migrations("sqlite")]
    finally:
        await sqlite.close()
        await pg.close()
        await postgres_server.drop_database(name)


async def test_processes_starting_together_migrate_once(postgres_server: PostgresServer):
    name = await postgres_server.create_database()
    try:
        opened = await asyncio.gather(*(Database.open(postgres_server.url_for(name)) for _ in range(4)))
        for db in opened:
            await db.close()
        db = await Database.open(postgres_server.url_for(name))
        rows = await db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [v for v, _, _ in migrations("postgresql")]
        await db.close()
    finally:
        await postgres_server.drop_database(name)


def test_urls_pick_the_engine_and_passwords_never_show():
    assert dialect_of("data/bot.sqlite3") == dialect_of("sqlite:///data/x") == "sqlite"
    assert dialect_of("postgresql://u:p@h/db") == dialect_of("postgres://h/db") == "postgresql"
    with pytest.raises(ValueError, match="mysql://u:\\*\\*\\*@h/db"):
        dialect_of("mysql://u:hunter2@h/db")
    assert sqlite_path("sqlite:///data/x.db") == "data/x.db"
    assert sqlite_path("sqlite:////var/x.db") == "/var/x.db"
    assert redact_url("postgresql://bot:hunter2@db:5432/bot") == "postgresql://bot:***@db:5432/bot"
    assert redact_url("postgresql://db/bot") == "postgresql://db/bot"


def test_placeholders_are_numbered_outside_quoted_text():
    sql = "SELECT '?' || ? FROM t WHERE a = ? AND b = 'it''s?' AND c IN (?, ?)"
    assert numbered(sql) == "SELECT '?' || $1 FROM t WHERE a = $2 AND b = 'it''s?' AND c IN ($3, $4)"


async def test_a_bad_password_is_not_in_the_error(postgres_server: PostgresServer):
    url = f"postgresql://nobody:hunter2@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(ConnectionError) as info:
        await Database.open(url)
    assert "hunter2" not in str(info.value) and "nobody:***@" in str(info.value)
