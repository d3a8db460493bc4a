"""Group commit for the quota ledger: operations that arrive together share one transaction.

Each ledger operation is an `async def op(tx, *args)` that touches nothing but its transaction. Issued statement
by statement from the event loop, a SQLite operation would cost a thread round trip per statement (BEGIN, read,
write, COMMIT), and on a busy machine those round trips, not SQLite, are the bottleneck; a PostgreSQL one would
wait for the ledger's lock and a commit of its own. Here every operation submitted while a batch is running joins
the next batch: one transaction, one lock and one commit per batch (`Database.run_batch`). One operation that
raises (a refusal) leaves nothing behind and does not disturb the others; decisions stay exact because a batch's
operations run one after another inside the same transaction, under the ledger's lock, each seeing what the ones
before it wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.storage.db import Database, Op

log = logging.getLogger(__name__)

T = TypeVar("T")
# Bounds how long one batch holds the write lock (about 0.1 ms per operation on SQLite).
MAX_BATCH = 256


@dataclass(slots=True)
class _Op:
    fn: Op
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    # Called with the result when the operation succeeded but its caller had been cancelled meanwhile.
    orphan: Callable[[Any], None] | None


class GroupCommit:
    def __init__(self, db: Database, *, lock: str | None = None) -> None:
        """`lock`: the name every batch's transaction locks (see `Database.transaction`)."""
        self.db = db
        self.lock = lock
        self._pending: list[_Op] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(
        self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, orphan: Callable[[T], None] | None = None
    ) -> T:
        """`await fn(tx, *args)` in the next batch. Cancelled before its batch started, it never runs; cancelled
        later, it still completes and `orphan` receives its result."""
        return await self.submit(fn, *args, orphan=orphan)

    def submit(
        self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, orphan: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        """Queue `await fn(tx, *args)` for the next batch now and return its future (a write nobody has to wait
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
            outcomes = await self.db.run_batch([(op.fn, op.args) for op in batch], lock=self.lock)
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
