"""The PostgreSQL engine: an asyncpg pool, for several bot processes on one database.

Statements are written once for both engines with `?` placeholders and numbered here (`$1`, `$2`, ...). The
schema's version is the `schema_migrations` table; a process applies the missing migrations under a session
advisory lock, so processes starting together migrate once.

Transactions run at READ COMMITTED. Where a decision reads before it writes (the quota ledger's reservations,
the moderation cool-downs), the caller names a lock: `pg_advisory_xact_lock` on its hash, held to the end of the
transaction, so the transactions that decide the same thing take turns across every process, exactly as SQLite's
single writer makes them, and nothing else waits.

A batch runs on one pooled connection in one transaction. An operation that raises before it wrote anything (a
refusal) needs nothing undone, so a batch takes no savepoints: a round trip per statement and no more. An
operation that fails after writing, or a statement that fails (which aborts a PostgreSQL transaction), rolls the
batch back and its operations run again one transaction each, so only the one at fault fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, ClassVar

import asyncpg

from bot.storage.db import Database, Dialect, Op, Outcome, Row, Tx, migrations, redact_url

log = logging.getLogger(__name__)

_MIGRATION_LOCK = "gib:migrations"
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """`?` placeholders as `$1`, `$2`, ... (outside quoted text)."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _rowcount(status: str) -> int:
    """asyncpg answers a write with its command tag ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgTx(Tx):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.wrote = False

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.wrote = True
        return _rowcount(await self.conn.execute(numbered(sql), *params))

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.wrote = True
        return int(await self.conn.fetchval(numbered(sql) + " RETURNING id", *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.wrote = True
        await self.conn.executemany(numbered(sql), [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self.conn.fetchrow(numbered(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.conn.fetch(numbered(sql), *params))

    async def lock(self, name: str) -> None:
        await self.conn.execute(_LOCK_SQL, name)


class _Redo(Exception):
    """A batch must be undone and its operations run one by one."""


class PostgresDatabase(Database):
    dialect: ClassVar[Dialect] = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 10) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError) as exc:
            # asyncpg's messages can quote the DSN; ours names the server without its password.
            raise ConnectionError(f"cannot connect to PostgreSQL at {redact_url(url)}: {type(exc).__name__}") from None
        db = cls(pool, url)
        try:
            await db._migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def version(self) -> int:
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")) if exists else 0

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
                for version, name, sql in migrations("postgresql"):
                    if version <= current:
                        continue
                    log.info("applying database migration %s", name)
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            version,
                            name,
                            time.time(),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", _MIGRATION_LOCK)

    @asynccontextmanager
    async def transaction(self, *, lock: str | None = None) -> AsyncIterator[Tx]:
        async with self.pool.acquire() as conn, conn.transaction():
            tx = _PgTx(conn)
            if lock is not None:
                await tx.lock(lock)
            yield tx

    async def run_batch(self, ops: Sequence[tuple[Op, tuple[Any, ...]]], *, lock: str | None = None) -> list[Outcome]:
        async with self.pool.acquire() as conn:
            try:
                return await self._together(conn, ops, lock)
            except _Redo:
                log.debug("a batch of %d operation(s) is run again one by one", len(ops))
            return [await self._alone(conn, fn, args, lock) for fn, args in ops]

    async def _together(
        self, conn: asyncpg.Connection, ops: Sequence[tuple[Op, tuple[Any, ...]]], lock: str | None
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with conn.transaction():
            if lock is not None:
                await conn.execute(_LOCK_SQL, lock)
            for fn, args in ops:
                tx = _PgTx(conn)
                try:
                    outcomes.append((True, await fn(tx, *args)))
                except asyncpg.PostgresError as exc:
                    raise _Redo() from exc
                except Exception as exc:
                    if tx.wrote:
                        raise _Redo() from exc
                    outcomes.append((False, exc))
        return outcomes

    async def _alone(self, conn: asyncpg.Connection, fn: Op, args: tuple[Any, ...], lock: str | None) -> Outcome:
        try:
            async with conn.transaction():
                if lock is not None:
                    await conn.execute(_LOCK_SQL, lock)
                return True, await fn(_PgTx(conn), *args)
        except Exception as exc:
            return False, exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self.pool.fetchrow(numbered(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.pool.fetch(numbered(sql), *params))

    async def close(self) -> None:
        await self.pool.close()
