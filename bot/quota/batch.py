"""Group commit for the quota ledger: operations that arrive together share one transaction.

Each ledger operation is a synchronous function of a `sqlite3.Connection`, run whole on aiosqlite's database
thread. Issuing it statement by statement from the event loop would cost a thread round trip per statement
(BEGIN, read, write, COMMIT), and on a busy machine those round trips, not SQLite, are the bottleneck. Here every
operation submitted while a batch is running joins the next batch: one round trip and one WAL commit per batch.
Each operation runs under its own savepoint, so one that raises (a refusal) leaves nothing behind and does not
disturb the others; decisions stay exact because a batch's operations run one after another inside the same
`BEGIN IMMEDIATE` transaction, each seeing what the ones before it wrote.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.storage.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
# Bounds how long one batch holds the write lock (about 0.1 ms per operation).
MAX_BATCH = 256


@dataclass(slots=True)
class _Op:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    # Called with the result when the operation succeeded but its caller had been cancelled meanwhile.
    orphan: Callable[[Any], None] | None


def _run_batch(
    conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[tuple[bool, Any]]:
    """(True, result) for each operation that returned, (False, exception) for each that raised, its writes undone."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, args in ops:
        conn.execute("SAVEPOINT op")
        try:
            outcomes.append((True, fn(conn, *args)))
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            outcomes.append((False, exc))
        conn.execute("RELEASE op")
    return outcomes


class GroupCommit:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[_Op] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: Any, orphan: Callable[[T], None] | None = None) -> T:
        """`fn(conn, *args)` in the next batch. Cancelled before its batch started, it never runs; cancelled
        later, it still completes and `orphan` receives its result."""
        return await self.submit(fn, *args, orphan=orphan)

    def submit(self, fn: Callable[..., T], *args: Any, orphan: Callable[[T], None] | None = None) -> asyncio.Future[T]:
        """Queue `fn(conn, *args)` for the next batch now and return its future (a write nobody has to wait
        for still runs before every operation submitted after it)."""
        op = _Op(fn, args, asyncio.get_running_loop().create_future(), orphan)
        self._pending.append(op)
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return op.future

    async def wait_idle(self) -> None:
        """Return once every submitted operation has run."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = [op for op in self._pending[:MAX_BATCH] if not op.future.cancelled()]
                del self._pending[:MAX_BATCH]
                if batch:
                    await self._run(batch)
        finally:
            self._flusher = None
            for op in self._pending:  # only when the flusher itself was cancelled (event loop shutting down)
                op.future.cancel()
            self._pending.clear()

    async def _run(self, batch: list[_Op]) -> None:
        try:
            outcomes = await self.db.run(_run_batch, [(op.fn, op.args) for op in batch])
        except Exception as exc:  # the transaction itself failed: nothing in it happened, and every caller hears
            log.error("quota ledger transaction of %d operation(s) failed: %s", len(batch), exc)
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(exc)
            return
        except BaseException:
            for op in batch:
                op.future.cancel()
            raise
        for op, (ok, outcome) in zip(batch, outcomes, strict=True):
            if op.future.cancelled():
                if ok and op.orphan is not None:
                    op.orphan(outcome)
            elif ok:
                op.future.set_result(outcome)
            else:
                op.future.set_exception(outcome)
