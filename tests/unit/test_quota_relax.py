"""The relax allowance in the ledger: relax requests hold their (Flex) price in it, never in the member's credits
here or everywhere; each side runs out on its own and says which; the caps and the daily attempts count both;
a restart keeps the reservations of the relax jobs it resumes (tests/unit/test_leases.py). A fake clock, never a
sleep."""

from __future__ import annotations

import pytest

from bot.errors import BudgetExhausted, QuotaExceeded
from bot.models import ImageRequest, Price, as_relax
from bot.providers.registry import ModelRegistry
from tests.unit.test_quota import GUILD, ask, make

FLEX = Price(2, 0.067)  # what a relax Pro 1K costs: half of 4 credits / $0.134
STANDARD = Price(4, 0.134)


def relaxed(user: int = 1, guild: int | None = GUILD) -> ImageRequest:
    return as_relax(ask(user, guild))


async def test_a_relax_request_holds_its_price_in_the_relax_allowance_only(db):
    ledger = make(db, daily_quota=10, relax_daily_quota=5)
    held = await ledger.reserve(relaxed(), FLEX)
    assert (held.limit, held.remaining, held.credits) == (5, 3, 2)
    status = await ledger.status(1, GUILD)
    assert (status.relax_reserved, status.relax_used, status.relax_left) == (2, 0, 3)
    assert (status.reserved, status.used, status.left) == (0, 0, 10)
    assert await ledger.commit(held, generation_id=7, cost_usd=0.065)
    status = await ledger.status(1, GUILD)
    assert (status.relax_used, status.relax_left, status.used, status.left) == (2, 3, 0, 10)
    spend = await ledger.spend(GUILD)
    assert spend.images == 1 and spend.cost_usd == pytest.approx(0.065)  # the real cost, half-price rates
    current = await ledger.current(held, relaxed())
    assert (current.limit, current.remaining) == (5, 3)


async def test_each_allowance_runs_out_on_its_own_and_says_which(db):
    ledger = make(db, daily_quota=4, relax_daily_quota=3)
    await ledger.reserve(ask(), STANDARD)
    with pytest.raises(QuotaExceeded) as fast:
        await ledger.reserve(ask(), STANDARD)
    assert (fast.value.lane, fast.value.left, fast.value.relax_left) == ("fast", 0, 3)  # relax can still pay
    await ledger.reserve(relaxed(), FLEX)
    with pytest.raises(QuotaExceeded) as relax:
        await ledger.reserve(relaxed(), FLEX)
    assert (relax.value.lane, relax.value.limit, relax.value.needed, relax.value.left) == ("relax", 3, 2, 1)
    with pytest.raises(QuotaExceeded) as both:
        await ledger.reserve(ask(), STANDARD)
    assert both.value.relax_left == 1  # less than a relax Pro costs: nothing to offer


async def test_relax_credits_are_not_counted_in_the_cap_across_servers(db):
    ledger = make(db, daily_quota=10, relax_daily_quota=10, user_global_daily_credits=4)
    await ledger.reserve(relaxed(guild=GUILD), FLEX)
    await ledger.reserve(relaxed(guild=None), FLEX)
    await ledger.reserve(ask(guild=None), STANDARD)  # the bot-wide cap of 4 still fits a standard Pro
    with pytest.raises(QuotaExceeded) as capped:
        await ledger.reserve(ask(), STANDARD)
    assert capped.value.scope == "everywhere"


async def test_the_daily_attempts_count_relax_calls_too(db):
    ledger = make(db, daily_quota=10, relax_daily_quota=10, user_daily_upstream_attempts=2)
    held = await ledger.reserve(relaxed(), FLEX)
    ledger.attempt(held)
    ledger.attempt(held)
    await ledger.drain()
    assert (await ledger.status(1, GUILD)).attempts_left == 0


@pytest.mark.parametrize(("relax_quota", "limit", "left"), [(0, 0, 0), (-1, None, None)])
async def test_relax_off_and_unlimited(db, relax_quota, limit, left):
    ledger = make(db, daily_quota=1, relax_daily_quota=relax_quota)
    status = await ledger.status(1, GUILD)
    assert (status.relax_limit, status.relax_left) == (limit, left)
    if relax_quota == 0:
        with pytest.raises(QuotaExceeded):
            await ledger.reserve(relaxed(), FLEX)
    else:
        for _ in range(5):
            assert (await ledger.reserve(relaxed(), FLEX)).remaining is None


async def test_a_refunded_relax_request_gives_its_credits_back(db):
    ledger = make(db, relax_daily_quota=2)
    held = await ledger.reserve(relaxed(), FLEX)
    assert await ledger.refund(held, "BatchEnded")
    status = await ledger.status(1, GUILD)
    assert (status.relax_used, status.relax_reserved, status.relax_left) == (0, 0, 2)
    assert (await ledger.spend(GUILD)).images == 0  # nothing was made, nothing was billed


async def test_caps_count_relax_at_its_own_estimate(db):
    ledger = make(db, daily_quota=100, relax_daily_quota=100, global_daily_cost_cap_usd=0.134)
    await ledger.reserve(relaxed(), FLEX)
    await ledger.reserve(relaxed(), FLEX)  # two relax Pro pictures fit where one standard one does
    with pytest.raises(BudgetExhausted):
        await ledger.reserve(relaxed(), FLEX)


def test_the_relax_price_is_the_registrys_flex_price_rounded_up_to_whole_credits():
    registry = ModelRegistry.build()
    default, pro = registry.default, registry.get("gemini-3-pro-image")
    assert registry.price(default, "1K", "flex").credits == 1  # half a credit rounds up to one
    assert registry.price(default, "1K", "flex").estimate_usd == pytest.approx(registry.price_usd(default, "1K") / 2)
    assert [registry.price(pro, size, "flex").credits for size in ("1K", "4K")] == [2, 4]
    assert registry.price(pro, "4K", "batch") == registry.price(pro, "4K", "flex")  # Batch costs what Flex does
