"""Past one process: the quota ledger on PostgreSQL with several processes beside SQLite with one, then the shared
upstream gate (bench/scale_gate.py) in the same run.

    python bench/scale.py [--processes 3] [--pairs 3000] [--concurrency 50] [--burst 200] [--left 5]
                          [--database-url postgresql://...] [--skip-gate] [any option of bench/scale_gate.py]

Ledger: reserve+commit pairs as the bot runs them (limits from roles and server defaults, server and global caps on
credits and cost, the per-member cap across servers, all checked), `--concurrency` requesters per process, members
spread so that no limit binds. Contenders, each on a fresh database:
- SQLite, 1 process: the default install (an on-disk WAL file);
- PostgreSQL, 1 process;
- PostgreSQL, `--processes` processes started together, each with `--pairs` pairs: pairs per second of all of
  them, from the first start to the last end.
Then exactness under contention: `--burst` simultaneous requests from one member with `--left` left, split across
the processes: how many were granted (it must be `--left`).

Without `--database-url` a throwaway PostgreSQL is started (initdb + pg_ctl, as the tests do); the gate half starts
its own redis-server unless given `--redis-url`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GUILD, PER_USER, ROLE, in_processes, request  # noqa: E402
from _common import make_ledger as common_ledger  # noqa: E402

from bot.errors import QuotaExceeded  # noqa: E402
from bot.quota.ledger import QuotaLedger  # noqa: E402
from bot.storage.db import Database  # noqa: E402


def make_ledger(db: Database, daily_quota: int) -> QuotaLedger:
    """The per-member cap across servers checked too (none binds)."""
    return common_ledger(db, daily_quota, user_global_daily_credits=10**6)


async def pairs_in(url: str, first_user: int, pairs: int, concurrency: int) -> tuple[float, float]:
    """Run `pairs` reserve+commit pairs; returns (start, end) on the machine's monotonic clock."""
    db = await Database.open(url)
    ledger = make_ledger(db, daily_quota=5)
    slots = iter(range(pairs))

    async def requester() -> None:
        for slot in slots:
            reservation = await ledger.reserve(request(first_user + slot // PER_USER))
            await ledger.commit(reservation, slot, 0.039)

    started = time.monotonic()
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    ended = time.monotonic()
    await ledger.drain()
    await db.close()
    return started, ended


async def burst_in(url: str, size: int) -> int:
    db = await Database.open(url)
    ledger = make_ledger(db, daily_quota=10)
    results = await asyncio.gather(*(ledger.reserve(request(1)) for _ in range(size)), return_exceptions=True)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, QuotaExceeded)]
    await db.close()
    if unexpected:
        raise unexpected[0]
    return sum(not isinstance(r, BaseException) for r in results)


async def round_trip_us(url: str, count: int = 2000) -> float:
    """Median time of one trivial statement through asyncpg: the floor under every PostgreSQL statement."""
    import statistics

    import asyncpg

    conn = await asyncpg.connect(url)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await conn.fetchval("SELECT 1")
        times.append(time.perf_counter() - started)
    await conn.close()
    return statistics.median(times) * 1e6


async def prepare(url: str) -> None:
    """Migrate, and the role limit every contender's members get, before anyone starts the clock."""
    db = await Database.open(url)
    await make_ledger(db, 5).set_role_limit(GUILD, ROLE, PER_USER, actor_id=0)
    await db.close()


async def use_up(url: str, count: int) -> None:
    db = await Database.open(url)
    ledger = make_ledger(db, daily_quota=10)
    for slot in range(count):
        await ledger.commit(await ledger.reserve(request(1)), slot, 0.039)
    await db.close()


def ledger_part(args: argparse.Namespace, fresh: Any) -> None:
    print(
        f"quota ledger: reserve+commit pairs per second, {args.concurrency} requesters per process, "
        f"{args.pairs} pairs per process"
    )
    contenders = [
        ("SQLite, 1 process", lambda: fresh("sqlite"), 1),
        ("PostgreSQL, 1 process", lambda: fresh("postgresql"), 1),
        (f"PostgreSQL, {args.processes} processes", lambda: fresh("postgresql"), args.processes),
    ]
    for name, make_url, count in contenders:
        url = make_url()
        asyncio.run(prepare(url))
        jobs = [(url, 10**6 * (p + 1), args.pairs, args.concurrency) for p in range(count)]
        spans = in_processes("pairs", pairs_in, jobs)
        elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
        print(f"  {name:<28}{count * args.pairs / elapsed:>10,.0f} pairs/s")

    print(
        f"  (one PostgreSQL round trip takes {asyncio.run(round_trip_us(fresh('postgresql'))):.0f} us here: a reserve"
    )
    print("   needs two, a commit one, and each batch three more, under one lock for every process)")

    print(f"\n{args.burst} simultaneous requests from one member with {args.left} of 10 left, split across processes:")
    for name, make_url, count in contenders:
        url = make_url()
        asyncio.run(use_up(url, 10 - args.left))
        sizes = [args.burst // count + (p < args.burst % count) for p in range(count)]
        granted = sum(in_processes("burst", burst_in, [(url, size) for size in sizes]))
        print(f"  {name:<28}{granted:>10} granted")


async def create_database(admin_url: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--left", type=int, default=5)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server whose databases may be created")
    parser.add_argument("--skip-gate", action="store_true", help="only the ledger half")
    args, gate_args = parser.parse_known_args()

    server = None
    if not args.database_url:
        from tests.servers import PostgresServer, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            sys.exit("PostgreSQL not found: install it or pass --database-url")
        server = PostgresServer.start(bin_dir)
    folder = Path(tempfile.mkdtemp(prefix="gib-scale-"))
    names = iter(range(10**6))

    def fresh(dialect: str) -> str:
        n = next(names)
        if dialect == "sqlite":
            return f"sqlite:///{folder}/ledger-{n}.sqlite3"
        if server is not None:
            return server.url_for(asyncio.run(server.create_database()))
        return asyncio.run(create_database(args.database_url, f"gib_scale_bench_{n}"))

    try:
        ledger_part(args, fresh)
    finally:
        if server is not None:
            server.stop()
    if not args.skip_gate:
        import scale_gate

        print("\nupstream gate (bench/scale_gate.py):")
        sys.argv = [str(Path(__file__).with_name("scale_gate.py")), "--processes", str(args.processes), *gate_args]
        scale_gate.main()


if __name__ == "__main__":
    main()
