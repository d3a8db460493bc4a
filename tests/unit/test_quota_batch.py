"""Group commit: operations that arrive together share a transaction without affecting each other, and a
caller cancelled mid-way never leaves a unit held."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.quota.batch import GroupCommit
from bot.storage.db import Database
from tests.unit.test_quota import GUILD, ask, entries, make


def insert(conn: sqlite3.Connection, value: int) -> int:
    return conn.execute("INSERT INTO scratch (value) VALUES (?)", (value,)).lastrowid or 0


def insert_then_fail(conn: sqlite3.Connection, value: int) -> int:
    insert(conn, value)
    raise ValueError(f"refused {value}")


async def test_an_operation_that_raises_leaves_nothing_and_spares_its_batch(db):
    await db.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY, value INTEGER)")
    batch = GroupCommit(db)
    results = await asyncio.gather(
        batch.run(insert, 1), batch.run(insert_then_fail, 2), batch.run(insert, 3), return_exceptions=True
    )
    assert isinstance(results[1], ValueError) and str(results[1]) == "refused 2"
    assert [row[0] for row in await db.fetchall("SELECT value FROM scratch ORDER BY id")] == [1, 3]
    assert results[0] < results[2]


async def test_a_reserve_cancelled_before_it_ran_holds_nothing(db):
    ledger = make(db, daily_quota=2)
    task = asyncio.create_task(ledger.reserve(ask()))
    await asyncio.sleep(0)  # queued for the next batch, which has not started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.drain()
    assert await entries(db) == []
    assert (await ledger.status(1, GUILD)).left == 2


async def test_a_reserve_cancelled_while_its_transaction_waits_is_refunded(db):
    ledger = make(db, daily_quota=2)
    async with db.transaction():  # another writer holds the database while the batch is taken
        task = asyncio.create_task(ledger.reserve(ask()))
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await ledger.drain()
    assert await entries(db) == [(1, "refunded", "Cancelled")]
    status = await ledger.status(1, GUILD)
    assert (status.reserved, status.left, status.refunded) == (0, 2, 1)


async def test_when_the_transaction_itself_fails_every_caller_in_it_hears(tmp_path):
    db = await Database.open(tmp_path / "gone.sqlite3")
    batch = GroupCommit(db)
    await db.close()
    results = await asyncio.gather(*(batch.run(insert, n) for n in range(3)), return_exceptions=True)
    assert len(results) == 3 and all(isinstance(r, ValueError) for r in results)
    await batch.wait_idle()
