"""The quota ledger against the naive way most bots count, on an on-disk WAL database, in one run.

    python bench/quota.py [--pairs 3000] [--rounds 3] [--concurrency 50] [--burst 200] [--left 5]

Ledger: `QuotaLedger.reserve` + `commit` as the bot runs them (limits from roles and server defaults, server
and global caps on images and cost all checked), in `BEGIN IMMEDIATE` transactions through `Database`.
Naive: read today's usage in one statement, then insert in another, then mark it done, each statement in its own
autocommit transaction, on a plain aiosqlite connection.

Printed: reserve+commit pairs per second done one after another and by `--concurrency` concurrent requesters
(median of `--rounds`, contenders alternating), the cost of one aiosqlite round trip for scale, then `--burst`
simultaneous requests from one member who has `--left` images left: how many each way grants.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import GUILD, PER_USER, ROLE, make_ledger, request  # noqa: E402

from bot.errors import QuotaExceeded  # noqa: E402
from bot.quota.ledger import QuotaLedger  # noqa: E402
from bot.storage.db import Database  # noqa: E402

DAY = "2024-06-01"
NAIVE_SCHEMA = """
CREATE TABLE usage (id INTEGER PRIMARY KEY, user_id INTEGER, day TEXT, state TEXT);
CREATE INDEX usage_user_day ON usage(user_id, day);
"""


class Refused(Exception):
    pass


async def ledger_for(path: Path, daily_quota: int) -> tuple[Database, QuotaLedger]:
    db = await Database.open(path)
    return db, make_ledger(db, daily_quota)


class Naive:
    """Check, then write: correct one request at a time, and what most bots ship."""

    def __init__(self, conn: aiosqlite.Connection, limit: int) -> None:
        self.conn = conn
        self.limit = limit

    @classmethod
    async def open(cls, path: Path, limit: int) -> Naive:
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.executescript(NAIVE_SCHEMA)
        return cls(conn, limit)

    async def reserve(self, user: int) -> int:
        rows = await self.conn.execute_fetchall(
            "SELECT COUNT(*) FROM usage WHERE user_id = ? AND day = ? AND state != 'refunded'", (user, DAY)
        )
        if next(iter(rows))[0] >= self.limit:
            raise Refused
        cursor = await self.conn.execute("INSERT INTO usage (user_id, day, state) VALUES (?, ?, 'open')", (user, DAY))
        return cursor.lastrowid or 0

    async def commit(self, entry: int) -> None:
        await self.conn.execute("UPDATE usage SET state = 'committed' WHERE id = ?", (entry,))


async def rate(pairs: int, concurrency: int, pair: Callable[[int], Awaitable[None]]) -> float:
    """Pairs per second when `concurrency` requesters share `pairs` pairs, each pair for its own slot."""
    slots = iter(range(pairs))

    async def requester() -> None:
        for slot in slots:
            await pair(slot)

    started = time.perf_counter()
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    return pairs / (time.perf_counter() - started)


async def ledger_rate(path: Path, pairs: int, parallel: int) -> float:
    db, ledger = await ledger_for(path, daily_quota=5)
    await ledger.set_role_limit(GUILD, ROLE, PER_USER, actor_id=0)

    async def pair(slot: int) -> None:
        await ledger.commit(await ledger.reserve(request(slot // PER_USER)), slot, 0.039)

    try:
        return await rate(pairs, parallel, pair)
    finally:
        await db.close()


async def naive_rate(path: Path, pairs: int, parallel: int) -> float:
    naive = await Naive.open(path, PER_USER)

    async def pair(slot: int) -> None:
        await naive.commit(await naive.reserve(slot // PER_USER))

    try:
        return await rate(pairs, parallel, pair)
    finally:
        await naive.conn.close()


async def round_trip_us(path: Path, count: int = 2000) -> float:
    """Median time of one trivial statement through aiosqlite: the floor under every awaited database call."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await conn.execute_fetchall("SELECT 1")
        times.append(time.perf_counter() - started)
    await conn.close()
    return statistics.median(times) * 1e6


async def throughput(folder: Path, pairs: int, concurrency: int, rounds: int) -> None:
    contenders = {"ledger (bot.quota)": ledger_rate, "naive check-then-write": naive_rate}
    results: dict[tuple[str, int], list[float]] = {}
    runs = itertools.count()
    # Alternating the contenders round by round spreads the noise of a shared machine evenly over both.
    for _ in range(rounds):
        for parallel in (1, concurrency):
            for name, measure in contenders.items():
                path = folder / f"run-{next(runs)}.sqlite3"
                results.setdefault((name, parallel), []).append(await measure(path, pairs, parallel))
    hop = await round_trip_us(folder / "hop.sqlite3")
    print(f"reserve+commit pairs per second, median of {rounds} rounds ({pairs} pairs, on-disk WAL):")
    print(f"  {'':<40}{'one at a time':>15}{f'{concurrency} at once':>15}")
    for name in contenders:
        one, many = (statistics.median(results[name, parallel]) for parallel in (1, concurrency))
        print(f"  {name:<40}{one:>15,.0f}{many:>15,.0f}")
    print(f"  (one aiosqlite round trip takes {hop:.0f} us here; the ledger needs one per reserve and per commit)")


async def burst(folder: Path, size: int, left: int) -> None:
    print(f"\n{size} simultaneous requests from one member with {left} of 10 left:")
    db, ledger = await ledger_for(folder / "burst-ledger.sqlite3", daily_quota=10)
    for slot in range(10 - left):
        await ledger.commit(await ledger.reserve(request(1)), slot, 0.039)
    results = await asyncio.gather(*(ledger.reserve(request(1)) for _ in range(size)), return_exceptions=True)
    granted = sum(not isinstance(r, BaseException) for r in results)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, QuotaExceeded)]
    assert not unexpected, unexpected
    await db.close()
    print(f"  {'ledger (bot.quota)':<40}{granted:>6} granted")

    naive = await Naive.open(folder / "burst-naive.sqlite3", 10)
    for _ in range(10 - left):
        await naive.commit(await naive.reserve(1))
    results = await asyncio.gather(*(naive.reserve(1) for _ in range(size)), return_exceptions=True)
    granted = sum(not isinstance(r, BaseException) for r in results)
    await naive.conn.close()
    print(f"  {'naive check-then-write':<40}{granted:>6} granted  (every request read usage before any wrote)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--left", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await throughput(Path(folder), args.pairs, args.concurrency, args.rounds)
        await burst(Path(folder), args.burst, args.left)


if __name__ == "__main__":
    asyncio.run(main())
