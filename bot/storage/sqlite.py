"""The SQLite engine: one aiosqlite connection in WAL mode; the last migration applied is `PRAGMA user_version`.

Every write transaction is `BEGIN IMMEDIATE`: SQLite's single write lock, taken at the start, so a transaction's
reads and writes can never interleave with another writer's, in this process or another on the same file (which
is also why `lock=` has nothing left to do here). Transactions on this connection take turns (aiosqlite runs one
thread per connection, but interleaved coroutines would otherwise share a transaction).

A batch (`run_batch`) runs whole on the connection's thread: its operations are coroutines that never suspend,
because their `tx` answers synchronously, so each is driven to its end with one `send` and a burst of them costs
one round trip to the database thread instead of one per statement (see bench/quota.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiosqlite

from bot.storage.db import Database, Dialect, Op, Outcome, Row, Tx, migrations

log = logging.getLogger(__name__)

T = TypeVar("T")


class _AioTx(Tx):
    """A transaction driven from the event loop, one thread round trip per statement."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self.conn.execute(sql, tuple(params))).rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self.conn.execute(sql, tuple(params))).lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def lock(self, name: str) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's one write lock


class _ThreadTx(Tx):
    """A transaction on the database thread: every method completes without suspending."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, tuple(params)).fetchone()
        return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.conn.execute(sql, tuple(params)).fetchall())

    async def lock(self, name: str) -> None:
        return None


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, on whatever thread this is."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a batched database operation awaited something other than its transaction")


def _run_batch(conn: sqlite3.Connection, ops: Sequence[tuple[Op, tuple[Any, ...]]]) -> list[Outcome]:
    """On the database thread, inside BEGIN IMMEDIATE: each operation under its own savepoint."""
    tx = _ThreadTx(conn)
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn, args in ops:
            conn.execute("SAVEPOINT op")
            try:
                outcomes.append((True, drive(fn(tx, *args))))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                outcomes.append((False, exc))
            conn.execute("RELEASE op")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return outcomes


class SQLiteDatabase(Database):
    dialect: ClassVar[Dialect] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.url = f"sqlite:///{path}"
        self._tx_lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: str | Path) -> SQLiteDatabase:
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL; fsync per commit is 10x slower
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        db = cls(conn, path)
        await db._migrate()
        return db

    async def version(self) -> int:
        row = await (await self.conn.execute("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.version()
        for version, name, sql in migrations("sqlite"):
            if version <= current:
                continue
            log.info("applying database migration %s", name)
            # executescript commits any open transaction first, so BEGIN/COMMIT live inside the script.
            await self.conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;")

    @asynccontextmanager
    async def transaction(self, *, lock: str | None = None) -> AsyncIterator[Tx]:
        async with self._tx_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _AioTx(self.conn)
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def run_batch(self, ops: Sequence[tuple[Op, tuple[Any, ...]]], *, lock: str | None = None) -> list[Outcome]:
        # aiosqlite has no public way to hand its thread a function; `_execute` is what its own methods use.
        async with self._tx_lock:
            return await self.conn._execute(_run_batch, self.conn._conn, ops)

    # Reads outside a transaction: the same statements a transaction's reads run, on the same connection.
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await _AioTx(self.conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await _AioTx(self.conn).fetchall(sql, params)

    async def close(self) -> None:
        await self.conn.close()
