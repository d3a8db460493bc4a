"""What `/usage` costs on a busy bot, beside the one-statement alternative, in one run.

    python bench/usage.py [--per-day 500] [--days 30] [--rounds 5]

A SQLite database holds `--days` days of `--per-day` requests (two models, 50 members, a refund per 20) in one
server, with the rows per provider that each ending writes (`quota_costs`), as the ledger keeps them. Report:
`bot.ops.usage.usage_report` as the bot runs it (every section: the ledger's sums per day, provider and model,
per member, refunds; blocks; failures). Join: only the daily and per-member sums, in single statements joining
the ledger to the generations for their models (what a report would do without the ledger's cost rows, and what
the one-owner-per-table rule forbids). Printed: the median time of each for the 30-day, 7-day and 1-day reports,
and the chart's drawing time (done in a worker thread by the cog). Both must agree on the numbers; the script
checks that they do.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.ops.usage import period, usage_report  # noqa: E402
from bot.ops.usage_render import render_png  # noqa: E402
from bot.storage.db import Database  # noqa: E402

GUILD = 1
NOW = 1_717_243_200.0  # 2024-06-01 12:00 UTC
MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview")
DAY = 86_400


async def fill(db: Database, per_day: int, days: int) -> None:
    generations, entries, costs = [], [], []
    n = 0
    for d in range(days):
        at = NOW - d * DAY
        day = time.strftime("%Y-%m-%d", time.gmtime(at))
        for i in range(per_day):
            n += 1
            model = MODELS[i % 7 == 0]
            refunded = i % 20 == 0
            generations.append(
                (n, at, i % 50 + 1, GUILD, 2, "imagine", "a prompt", model, "failed" if refunded else "delivered")
            )
            credits, cost = (4, 134_000) if model == MODELS[1] else (1, 39_000)
            state, cost = ("refunded", 0) if refunded else ("committed", cost)  # refused answers: nothing billed
            reason = "GenerationFailed" if refunded else "delivered"
            entries.append((n, day, GUILD, i % 50 + 1, state, reason, cost, credits, n, at))
            if not refunded:
                costs.append((n, day, GUILD, "gemini", model, 1, 0, cost))
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO generations (id, created_at, user_id, guild_id, channel_id, kind, prompt, model, status)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            generations,
        )
        await conn.executemany(
            "INSERT INTO quota_entries (id, day, guild_id, user_id, state, reason, cost_micros, credits,"
            " generation_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            entries,
        )
        await conn.executemany(
            "INSERT INTO quota_costs (entry_id, day, guild_id, provider, model, pictures, failed, cost_micros)"
            " VALUES (?,?,?,?,?,?,?,?)",
            costs,
        )


async def joined(db: Database, days: int) -> tuple[list, list]:
    span = period(days, "UTC", NOW)
    scope = (
        "FROM quota_entries e LEFT JOIN generations g ON g.id = e.generation_id"
        " WHERE e.state IN ('committed', 'forgiven') AND e.day BETWEEN ? AND ? AND e.guild_id = ?"
    )
    params = (span.first_day, span.last_day, GUILD)
    daily = await db.fetchall(
        f"SELECT e.day, g.model, COUNT(*), TOTAL(e.cost_micros) {scope} GROUP BY 1, 2 ORDER BY 1, 2", params
    )
    members = await db.fetchall(
        f"SELECT e.user_id, COUNT(*), TOTAL(e.cost_micros) {scope} GROUP BY 1 ORDER BY 3 DESC LIMIT 5", params
    )
    return daily, members


async def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-day", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        await fill(db, args.per_day, args.days)
        print(f"{args.days} days x {args.per_day} requests in one server ({args.days * args.per_day} ledger entries)")
        for days in (30, 7, 1):
            report = await usage_report(db, guild_id=GUILD, days=days, timezone="UTC", now=NOW)
            daily, _ = await joined(db, days)
            assert report.images == sum(row[2] for row in daily)
            assert round(report.cost_usd * 1e6) == round(sum(row[3] for row in daily))
            owners = await timed(
                lambda d=days: usage_report(db, guild_id=GUILD, days=d, timezone="UTC", now=NOW), args.rounds
            )
            join = await timed(lambda d=days: joined(db, d), args.rounds)
            print(f"  {days:>2}-day report: whole report {owners:7.1f} ms   join (daily + members only) {join:7.1f} ms")
        report = await usage_report(db, guild_id=GUILD, days=30, timezone="UTC", now=NOW)
        chart = await timed(lambda: asyncio.to_thread(render_png, report), args.rounds)
        print(f"  30-day chart (PNG, in a worker thread): {chart:.1f} ms")
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
