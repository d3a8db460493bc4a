"""Spend per provider: what a request's calls cost at each provider (`Bill.costs`), kept by the ledger with the
request's ending (`quota_costs`), and read back per provider and model so that the parts add up to the total."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.errors import Charge, TextOnlyAnswer, UpstreamTimeout, UpstreamUnavailable
from bot.models import Cost, GeneratedImage, ImageRequest, Price
from bot.providers.billing import Bill, describe
from bot.quota.ledger import QuotaLedger
from bot.quota.limits import SpendLine

NOON = datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()
GUILD, OTHER = 111, 222
MODEL = "gemini-3-pro-image"


def ledger(db) -> QuotaLedger:
    return QuotaLedger(db, daily_quota=-1, clock=lambda: NOON)


def ask(guild: int | None = GUILD) -> ImageRequest:
    return ImageRequest(user_id=1, channel_id=5, prompt="a cat", guild_id=guild)


def picture(provider: str, cost: float | None, *charges: Charge) -> GeneratedImage:
    return GeneratedImage(b"", "image/png", "m", provider=provider, cost_usd=cost, charges=charges)


def refused(exc, *, billed=None, cost=None, charges=(), provider=None):
    exc.billed, exc.cost_usd, exc.charges = billed, cost, tuple(charges)
    if provider:
        exc.blame(provider, provider)
    return exc


# --- a request's bill, per provider ---------------------------------------------------------------------------


def test_a_bill_keeps_each_providers_part_in_the_order_they_were_called():
    bill = Bill(0.134, MODEL)
    bill.started()
    bill.failed(refused(UpstreamTimeout("stalled"), provider="gemini"))  # outside a chain: its own provider
    bill.started()
    # Through the chain: Google's timeout as a charge, then the gateway's picture at its reported cost.
    bill.answered(picture("gw", 0.15, Charge("gemini", "m", None, "UpstreamTimeout")))
    assert bill.costs() == (
        Cost("gemini", MODEL, 0.134 * 2, pictures=0, failed=2),
        Cost("gw", MODEL, 0.15, pictures=1, failed=0),
    )
    assert bill.total_usd == pytest.approx(0.134 * 2 + 0.15)
    assert describe(bill.costs()) == "; gemini $0.2680 (2 failed), gw $0.1500"


def test_what_bills_nothing_leaves_no_part_and_a_cut_off_call_belongs_to_nobody():
    bill = Bill(0.0336, MODEL)
    bill.failed(refused(UpstreamUnavailable("503"), billed=False, provider="gemini"))
    bill.failed(refused(TextOnlyAnswer("which fox?"), billed=True, cost=0.0004, provider="gemini"))
    bill.failed(asyncio.CancelledError())
    assert bill.costs() == (Cost("gemini", MODEL, 0.0004, failed=1), Cost("", MODEL, 0.0336, failed=1))
    assert describe(bill.costs()[:1]) == "" and describe(bill.costs()[:1], always=True) == "; gemini $0.0004 (1 failed)"


# --- the ledger keeps the parts with the ending, and shows them ---------------------------------------------


async def test_spend_by_provider_adds_up_to_the_spend_and_shows_what_is_still_running(db):
    quota = ledger(db)
    delivered = await quota.reserve(ask(), Price(4, 0.134))
    failed = await quota.reserve(ask(), Price(4, 0.134))
    elsewhere = await quota.reserve(ask(OTHER), Price(4, 0.134))
    running = await quota.reserve(ask(), Price(4, 0.134))
    both = (Cost("gemini", MODEL, 0.134, failed=1), Cost("gw", MODEL, 0.15, pictures=1))
    assert await quota.commit(delivered, 1, 0.284, both)
    assert await quota.refund(failed, "UpstreamTimeout", 0.134, (Cost("gemini", MODEL, 0.134, failed=1),))
    assert await quota.commit(elsewhere, 2, 0.1, (Cost("gemini", MODEL, 0.1, pictures=1),))

    here = await quota.spend_by_provider(GUILD)
    assert here.lines == (
        SpendLine("gemini", MODEL, 0, 2, 0.268),
        SpendLine("gw", MODEL, 1, 0, 0.15),
    )
    assert (here.open_requests, here.open_usd, here.other_usd) == (1, 0.134, 0)
    total = (await quota.spend(GUILD)).cost_usd
    assert sum(line.cost_usd for line in here.lines) + here.open_usd == pytest.approx(total)

    everywhere = await quota.spend_by_provider(None)
    assert everywhere.lines[0] == SpendLine("gemini", MODEL, 1, 2, 0.368)
    assert (await quota.refund(running, "Cancelled")) and (await quota.spend_by_provider(GUILD)).open_requests == 0


async def test_the_entry_holds_the_sum_of_its_parts_and_a_second_ending_changes_nothing(db):
    quota = ledger(db)
    held = await quota.reserve(ask(), Price(1, 0.0336))
    parts = (Cost("gemini", MODEL, 0.0000004, failed=1), Cost("gw", MODEL, 0.0400004, pictures=1))
    assert await quota.commit(held, 1, 0.0400008, parts)
    assert not await quota.refund(held, "late", 0.5, (Cost("gw", MODEL, 0.5, failed=1),))
    row = await db.fetchone("SELECT cost_micros FROM quota_entries WHERE id = ?", (held.id,))
    rows = await db.fetchall("SELECT provider, cost_micros FROM quota_costs ORDER BY provider")
    assert [tuple(r) for r in rows] == [("gemini", 0), ("gw", 40000)] and row[0] == 40000


async def test_spend_without_a_provider_on_record_is_shown_apart(db):
    quota = ledger(db)
    await quota.reserve(ask(), Price(1, 0.0336))
    quota.attempt(await quota.reserve(ask(), Price(1, 0.0336)))  # a call was made, then the bot died
    await quota.drain()
    assert await QuotaLedger(db, daily_quota=-1, clock=lambda: NOON).recover() == 2
    here = await quota.spend_by_provider(GUILD)
    assert here.lines == () and here.open_requests == 0
    assert here.other_usd == pytest.approx(0.0336)  # its estimate stays in spend, for no provider in particular
    legacy = await quota.reserve(ask(), Price(1, 0.0336))
    await quota.commit(legacy, 3, 0.04)  # an ending without parts (a caller that does not know them)
    assert (await quota.spend_by_provider(GUILD)).other_usd == pytest.approx(0.0736)


async def test_the_moderation_models_checks_show_as_their_providers_spend(db):
    quota = ledger(db)
    await quota.add_spend(GUILD, 0.0002, provider="gemini", model="gemini-2.5-flash-lite")
    await quota.add_spend(GUILD, 0.0003, provider="gemini", model="gemini-2.5-flash-lite")
    await quota.add_spend(None, 0.0001, provider="gemini", model="gemini-2.5-flash-lite")  # a DM
    here, everywhere = await quota.spend_by_provider(GUILD), await quota.spend_by_provider(None)
    assert here.lines == (SpendLine("gemini", "gemini-2.5-flash-lite", 0, 0, 0.0005, checks=2),)
    assert everywhere.lines == (SpendLine("gemini", "gemini-2.5-flash-lite", 0, 0, 0.0006, checks=3),)
    assert here.other_usd == 0 and (await quota.spend(GUILD)).cost_usd == pytest.approx(0.0005)
