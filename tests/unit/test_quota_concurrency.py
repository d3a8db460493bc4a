"""Many requests at once: limits and caps hold exactly, within one process and across two on the same file."""

from __future__ import annotations

import asyncio
import random

from bot.errors import BudgetExhausted, QuotaExceeded
from bot.models import Price
from bot.quota.ledger import QuotaLedger
from bot.storage.db import Database
from tests.unit.test_quota import Clock, ask, make


async def outcomes(calls) -> tuple[list, list]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    return granted, refused


async def test_200_simultaneous_requests_with_5_left_get_exactly_5(db):
    ledger = make(db, daily_quota=8)
    for _ in range(3):
        await ledger.commit(await ledger.reserve(ask()), 1, 0.039)

    granted, refused = await outcomes(ledger.reserve(ask()) for _ in range(200))

    assert len(granted) == 5
    assert len(refused) == 195 and all(isinstance(e, QuotaExceeded) for e in refused)
    assert sorted(r.remaining for r in granted) == [0, 1, 2, 3, 4]
    rows = await db.fetchall("SELECT state, COUNT(*) FROM quota_entries GROUP BY state ORDER BY state")
    assert [tuple(r) for r in rows] == [("committed", 3), ("open", 5)]


async def test_many_members_against_a_global_cap_get_exact_totals(db):
    ledger = make(db, daily_quota=6, global_daily_image_cap=137, server_daily_image_cap=60)
    guilds = [1, 2, 3, None]
    calls = [ledger.reserve(ask(user=u, guild=g)) for g in guilds for u in range(10) for _ in range(8)]
    random.Random(3).shuffle(calls)

    granted, refused = await outcomes(calls)

    assert len(granted) == 137
    assert all(isinstance(e, QuotaExceeded | BudgetExhausted) for e in refused)
    per_member: dict[tuple[int, int | None], int] = {}
    for r in granted:
        per_member[r.user_id, r.guild_id] = per_member.get((r.user_id, r.guild_id), 0) + 1
    assert max(per_member.values()) <= 6
    per_guild = {g: sum(n for (_, gg), n in per_member.items() if gg == g) for g in guilds}
    assert max(per_guild[g] for g in (1, 2, 3)) <= 60
    assert (await ledger.spend(None)).images == 137
    assert [(await ledger.spend(g)).images for g in (1, 2, 3)] == [per_guild[1], per_guild[2], per_guild[3]]


async def test_two_processes_on_one_file_never_overshoot(db):
    other = await Database.open(db.url)
    try:
        clock = Clock()
        ledgers = [make(db, clock, daily_quota=5), make(other, clock, daily_quota=5)]
        granted, refused = await outcomes(ledgers[i % 2].reserve(ask()) for i in range(40))
        assert len(granted) == 5 and len(refused) == 35
        row = await other.fetchone("SELECT COUNT(*) FROM quota_entries WHERE state = 'open'")
        assert row[0] == 5
    finally:
        await other.close()


async def test_daily_totals_always_equal_the_ledger(db):
    """The spend totals are kept by triggers; after a random mix of every operation they must match a recount."""
    clock = Clock()
    ledger: QuotaLedger = make(db, clock, daily_quota=4, default_price=Price(1, 0.039), global_daily_image_cap=70)
    rng = random.Random(7)
    held = []
    for step in range(400):
        roll = rng.random()
        if roll < 0.5:
            try:
                held.append(await ledger.reserve(ask(user=rng.randrange(8), guild=rng.choice([1, 2, None]))))
            except (QuotaExceeded, BudgetExhausted):
                pass
        elif held and roll < 0.75:
            await ledger.commit(held.pop(rng.randrange(len(held))), step, rng.choice([0.0, 0.039, 0.12]))
        elif held and roll < 0.95:  # refunded to the member; some of those calls were billed anyway
            billed = rng.choice([0.0, 0.0, 0.002, 0.039])
            await ledger.refund(held.pop(rng.randrange(len(held))), "UpstreamUnavailable", billed)
        elif roll < 0.97:
            await ledger.reset_user(rng.choice([1, 2]), rng.randrange(8), actor_id=1)
        else:
            clock.now += 6 * 3600

    # Spend counts what holds or may have cost money: everything but refunds that billed nothing.
    recount = await db.fetchall(
        "SELECT day, guild_id, COUNT(*), SUM(cost_micros) FROM quota_entries WHERE state != 'refunded'"
        " OR cost_micros > 0 GROUP BY day, guild_id UNION ALL SELECT day, -1, COUNT(*), SUM(cost_micros)"
        " FROM quota_entries WHERE state != 'refunded' OR cost_micros > 0 GROUP BY day ORDER BY 1, 2"
    )
    totals = await db.fetchall(
        "SELECT day, scope, images, cost_micros FROM quota_spend WHERE images > 0 ORDER BY day, scope"
    )
    assert len(recount) > 6
    assert [tuple(r) for r in totals] == [tuple(r) for r in recount]
