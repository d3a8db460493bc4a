from __future__ import annotations

from bot.storage.db import Database, migrations


async def test_migrations_apply_once_and_record_version(tmp_path):
    path = tmp_path / "x.sqlite3"
    db = await Database.open(path)
    (version,) = await (await db.conn.execute("PRAGMA user_version")).fetchone()
    assert version == migrations()[-1][0]
    (mode,) = await (await db.conn.execute("PRAGMA journal_mode")).fetchone()
    assert mode == "wal"
    await db.execute(
        "INSERT INTO generations (created_at, user_id, channel_id, kind, prompt, model)"
        " VALUES (1, 2, 3, 'imagine', 'p', 'm')"
    )
    await db.close()
    # Reopening must not re-run migrations (which would fail on CREATE TABLE) and keeps the data.
    db = await Database.open(path)
    row = await db.fetchone("SELECT COUNT(*) FROM generations")
    assert row[0] == 1
    await db.close()


async def test_transaction_rolls_back_on_error(db):
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO generations (created_at, user_id, channel_id, kind, prompt, model)"
                " VALUES (1, 2, 3, 'imagine', 'p', 'm')"
            )
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    row = await db.fetchone("SELECT COUNT(*) FROM generations")
    assert row[0] == 0
