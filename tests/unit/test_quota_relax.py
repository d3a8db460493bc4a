"""The relax allowance in the ledger: relax requests take their price from it, never from the member's credits;
each side runs out on its own; the caps count relax at half the estimated price; a restart keeps the
reservations of the relax jobs it resumes. A fake clock, never a sleep."""

from __future__ import annotations

import dataclasses

import pytest

from bot.errors import BudgetExhausted, QuotaExceeded
from bot.models import ImageRequest
from bot.relax import relax_price
from tests.unit.test_quota import GUILD, ask, make

PRICE = 0.04


def relaxed(user: int = 1) -> ImageRequest:
    return dataclasses.replace(ask(user), relax=True)


async def test_a_relax_request_takes_its_price_from_the_relax_allowance_only(db):
    ledger = make(db, daily_quota=3, relax_daily_quota=2, price_per_image_usd=PRICE)
    held = await ledger.reserve(relaxed())
    assert (held.limit, held.remaining) == (2, 1)
    status = await ledger.status(1, GUILD)
    assert (status.relax_reserved, status.relax_used, status.relax_left) == (1, 0, 1)
    assert (status.reserved, status.used, status.left) == (0, 0, 3)
    assert await ledger.commit(held, generation_id=7, cost_usd=PRICE / 2)
    status = await ledger.status(1, GUILD)
    assert (status.relax_used, status.relax_left, status.used, status.left) == (1, 1, 0, 3)
    spend = await ledger.spend(GUILD)
    assert spend.images == 1 and spend.cost_usd == pytest.approx(PRICE / 2)


async def test_each_allowance_runs_out_on_its_own_and_says_which(db):
    ledger = make(db, daily_quota=1, relax_daily_quota=1)
    await ledger.reserve(ask())
    with pytest.raises(QuotaExceeded) as fast:
        await ledger.reserve(ask())
    assert (fast.value.lane, fast.value.limit, fast.value.relax_left) == ("fast", 1, 1)  # relax can still pay
    await ledger.reserve(relaxed())
    with pytest.raises(QuotaExceeded) as relax:
        await ledger.reserve(relaxed())
    assert (relax.value.lane, relax.value.limit, relax.value.relax_left) == ("relax", 1, 0)
    with pytest.raises(QuotaExceeded) as both:
        await ledger.reserve(ask())
    assert both.value.relax_left == 0  # nothing to offer any more


@pytest.mark.parametrize(("relax_quota", "limit", "left"), [(0, 0, 0), (-1, None, None)])
async def test_relax_off_and_unlimited(db, relax_quota, limit, left):
    ledger = make(db, daily_quota=1, relax_daily_quota=relax_quota)
    status = await ledger.status(1, GUILD)
    assert (status.relax_limit, status.relax_left) == (limit, left)
    if relax_quota == 0:
        with pytest.raises(QuotaExceeded):
            await ledger.reserve(relaxed())
    else:
        for _ in range(5):
            assert (await ledger.reserve(relaxed())).remaining is None


async def test_a_refunded_relax_request_gives_its_credits_back(db):
    ledger = make(db, relax_daily_quota=1)
    held = await ledger.reserve(relaxed())
    assert await ledger.refund(held, "BatchEnded")
    status = await ledger.status(1, GUILD)
    assert (status.relax_used, status.relax_reserved, status.relax_left) == (0, 0, 1)
    assert (await ledger.spend(GUILD)).images == 0


async def test_caps_count_relax_at_its_own_price(db):
    # The cap fits one standard image, or two relax ones (half the estimate each).
    ledger = make(db, daily_quota=10, relax_daily_quota=10, price_per_image_usd=PRICE, global_daily_cost_cap_usd=PRICE)
    await ledger.reserve(relaxed())
    await ledger.reserve(relaxed())
    with pytest.raises(BudgetExhausted):
        await ledger.reserve(relaxed())
    assert (await ledger.spend(None)).cost_usd == pytest.approx(PRICE)


async def test_recover_keeps_the_reservations_of_resumed_relax_jobs(db):
    ledger = make(db, relax_daily_quota=5)
    kept = await ledger.reserve(relaxed())
    lost = await ledger.reserve(relaxed())
    fast = await ledger.reserve(ask())
    assert await ledger.recover(keep={kept.id}) == 2
    rows = await db.fetchall("SELECT id, state, reason FROM quota_entries ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (kept.id, "open", None),
        (lost.id, "refunded", "crash-recovery"),
        (fast.id, "refunded", "crash-recovery"),
    ]
    assert await ledger.commit(kept, generation_id=1, cost_usd=0.02)  # the resumed job can still end it


def test_the_relax_price_is_half_rounded_up_to_whole_credits():
    request = relaxed()
    assert relax_price(request, standard_usd=0.039) == relax_price(request, standard_usd=0.039, standard_credits=1)
    assert relax_price(request, standard_usd=0.039).credits == 1  # one credit today: half rounds up to one
    assert relax_price(request, standard_usd=0.039).usd == pytest.approx(0.0195)
    assert relax_price(request, standard_usd=0.134, standard_credits=4).credits == 2  # a 4-credit picture: 2
    assert relax_price(request, standard_usd=0.24, standard_credits=7).credits == 4
