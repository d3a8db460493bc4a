"""The quota ledger: reservations and how they end, caps, crash recovery. A fake clock, never a sleep."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.errors import BudgetExhausted, Cancelled, PromptBlocked, QuotaExceeded, ShuttingDown, UpstreamTimeout
from bot.models import ImageRequest, Price, Reservation
from bot.quota.ledger import QuotaLedger
from bot.quota.limits import GLOBAL_DEFAULT
from bot.services import build_quota
from bot.storage.db import Database
from cogs.ui.wording import footer_text

GUILD = 111
NOON_UTC = datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()
MIDNIGHT_UTC = datetime(2024, 6, 2, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOON_UTC) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def local(zone: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def ask(user: int = 1, guild: int | None = GUILD, roles: tuple[int, ...] = ()) -> ImageRequest:
    return ImageRequest(user_id=user, channel_id=5, prompt="a cat", guild_id=guild, role_ids=roles)


def make(db: Database, clock: Clock | None = None, **options: object) -> QuotaLedger:
    options.setdefault("daily_quota", 3)
    return QuotaLedger(db, clock=clock or Clock(), **options)  # type: ignore[arg-type]


async def entries(db: Database) -> list[tuple[int, str, str | None]]:
    rows = await db.fetchall("SELECT user_id, state, reason FROM quota_entries ORDER BY id")
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_reserve_then_commit_counts_as_used(db):
    ledger = make(db)
    reservation = await ledger.reserve(ask())
    assert (reservation.limit, reservation.remaining, reservation.resets_at) == (3, 2, MIDNIGHT_UTC)
    held = await ledger.status(1, GUILD)
    assert (held.used, held.reserved, held.left) == (0, 1, 2)

    assert await ledger.commit(reservation, generation_id=42, cost_usd=0.05)
    done = await ledger.status(1, GUILD)
    assert (done.used, done.reserved, done.left, done.refunded) == (1, 0, 2, 0)
    row = await db.fetchone("SELECT state, reason, generation_id, cost_micros FROM quota_entries")
    assert tuple(row) == ("committed", "delivered", 42, 50_000)


@pytest.mark.parametrize("failure", [UpstreamTimeout(), PromptBlocked("SAFETY"), Cancelled(), ShuttingDown()])
async def test_every_other_ending_is_refunded_with_its_reason(db, failure):
    ledger = make(db)
    reservation = await ledger.reserve(ask())
    assert await ledger.refund(reservation, type(failure).__name__)
    status = await ledger.status(1, GUILD)
    assert (status.used, status.reserved, status.left, status.refunded) == (0, 0, 3, 1)
    assert await entries(db) == [(1, "refunded", type(failure).__name__)]


async def test_commit_and_refund_are_idempotent_and_the_first_ending_wins(db):
    ledger = make(db)
    delivered, failed = await ledger.reserve(ask()), await ledger.reserve(ask())
    assert await ledger.commit(delivered, 1, 0.039)
    assert not await ledger.commit(delivered, 1, 0.039)
    assert not await ledger.refund(delivered, "UpstreamTimeout")
    assert await ledger.refund(failed, "UpstreamTimeout")
    assert not await ledger.refund(failed, "Cancelled")
    assert not await ledger.commit(failed, 2, 0.039)
    assert await entries(db) == [(1, "committed", "delivered"), (1, "refunded", "UpstreamTimeout")]
    status = await ledger.status(1, GUILD)
    assert (status.used, status.refunded, status.left) == (1, 1, 2)


async def test_a_refused_request_writes_nothing(db):
    ledger = make(db, daily_quota=1)
    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    with pytest.raises(QuotaExceeded) as refused:
        await ledger.reserve(ask())
    assert (refused.value.limit, refused.value.resets_at_ts) == (1, MIDNIGHT_UTC)
    assert await entries(db) == [(1, "committed", "delivered")]
    assert (await ledger.spend(GUILD)).images == 1


async def test_open_reservations_count_so_queued_jobs_cannot_pass_the_limit(db):
    ledger = make(db, daily_quota=2)
    await ledger.reserve(ask())
    await ledger.reserve(ask())
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(ask())
    assert (await ledger.status(1, GUILD)).reserved == 2


async def test_usage_is_counted_per_server_and_separately_outside_servers(db):
    ledger = make(db, daily_quota=1)
    await ledger.reserve(ask(guild=GUILD))
    await ledger.reserve(ask(guild=222))
    await ledger.reserve(ask(guild=None))
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(ask(guild=None))
    assert [(await ledger.status(1, g)).left for g in (GUILD, 222, None, 333)] == [0, 0, 0, 1]


async def test_unlimited_global_default_never_refuses(db):
    ledger = make(db, daily_quota=-1)
    for _ in range(20):
        reservation = await ledger.reserve(ask())
        assert (reservation.limit, reservation.remaining) == (None, None)
    status = await ledger.status(1, GUILD)
    assert (status.limit, status.left, status.reserved, status.source) == (None, None, 20, GLOBAL_DEFAULT)
    assert footer_text(status) == f"No daily limit · resets <t:{int(MIDNIGHT_UTC)}:R>"


async def test_footer_reads_left_of_allowance_and_the_reset(db):
    ledger = make(db, daily_quota=10)
    for _ in range(7):
        await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    assert footer_text(await ledger.status(1, GUILD)) == f"3 of 10 left today · resets <t:{int(MIDNIGHT_UTC)}:R>"


# --- spending caps ------------------------------------------------------------------------------------------


async def test_server_image_cap_counts_open_reservations_and_refunds_free_it(db):
    ledger = make(db, daily_quota=-1, server_daily_image_cap=2)
    first = await ledger.reserve(ask(user=1))
    await ledger.reserve(ask(user=2))
    with pytest.raises(BudgetExhausted) as refused:
        await ledger.reserve(ask(user=3))
    assert (refused.value.scope, refused.value.resets_at_ts) == ("server", MIDNIGHT_UTC)
    # Another server and DMs have their own budget.
    await ledger.reserve(ask(user=3, guild=222))
    await ledger.reserve(ask(user=3, guild=None))
    await ledger.refund(first, "UpstreamTimeout")
    await ledger.reserve(ask(user=3))
    spend = await ledger.spend(GUILD)
    assert (spend.images, spend.image_cap) == (2, 2)
    assert [row[1] for row in await entries(db)] == ["refunded", "open", "open", "open", "open"]


async def test_global_image_cap_spans_servers_and_dms(db):
    ledger = make(db, daily_quota=-1, global_daily_image_cap=3)
    await ledger.reserve(ask(guild=1))
    await ledger.reserve(ask(guild=2))
    await ledger.reserve(ask(guild=None))
    with pytest.raises(BudgetExhausted) as refused:
        await ledger.reserve(ask(guild=3))
    assert refused.value.scope == "global"
    assert (await ledger.spend(None)).images == 3


async def test_cost_caps_use_the_estimate_while_open_and_the_actual_cost_once_committed(db):
    ledger = make(db, daily_quota=-1, default_price=Price(1, 0.04), server_daily_cost_cap_usd=0.10)
    first = await ledger.reserve(ask())
    await ledger.reserve(ask())
    with pytest.raises(BudgetExhausted) as refused:  # 0.08 held + 0.04 > 0.10
        await ledger.reserve(ask())
    assert refused.value.scope == "server"
    # The delivered image turned out cheaper: 0.01 + 0.04 held + 0.04 fits under 0.10.
    await ledger.commit(first, 1, 0.01)
    await ledger.reserve(ask())
    spend = await ledger.spend(GUILD)
    assert (spend.images, spend.cost_usd, spend.cost_cap_usd) == (3, pytest.approx(0.09), pytest.approx(0.10))


async def test_global_cost_cap(db):
    ledger = make(db, daily_quota=-1, default_price=Price(1, 0.039), global_daily_cost_cap_usd=0.078)
    await ledger.reserve(ask(guild=1))
    await ledger.reserve(ask(guild=2))
    with pytest.raises(BudgetExhausted) as refused:
        await ledger.reserve(ask(guild=3))
    assert refused.value.scope == "global"
    assert (await ledger.spend(None)).cost_usd == pytest.approx(0.078)


async def test_spend_without_an_image_counts_toward_cost_caps_on_its_day_but_in_no_quota(db):
    """What the moderation model costs: in the server's and the bot's spend (so in the caps), not in images."""
    clock = Clock()
    ledger = make(db, clock, daily_quota=5, default_price=Price(1, 0.04), server_daily_cost_cap_usd=0.10)
    await ledger.add_spend(GUILD, 0.07, provider="gemini", model="gemini-2.5-flash-lite")
    await ledger.add_spend(None, 0.01, provider="gemini", model="gemini-2.5-flash-lite")  # a DM: the bot's only
    with pytest.raises(BudgetExhausted) as refused:  # 0.07 spent + 0.04 > 0.10
        await ledger.reserve(ask())
    assert refused.value.scope == "server"
    server, everyone = await ledger.spend(GUILD), await ledger.spend(None)
    assert (server.images, server.cost_usd) == (0, pytest.approx(0.07))
    assert (everyone.images, everyone.cost_usd) == (0, pytest.approx(0.08))
    assert (await ledger.status(1, GUILD)).used == 0
    clock.now = MIDNIGHT_UTC
    await ledger.reserve(ask())  # a new day, a new budget


async def test_the_member_hears_about_their_own_quota_before_the_servers_budget(db):
    ledger = make(db, daily_quota=1, server_daily_image_cap=1)
    await ledger.reserve(ask(user=1))
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(ask(user=1))
    with pytest.raises(BudgetExhausted):
        await ledger.reserve(ask(user=2))


async def test_caps_reset_with_the_day(db):
    clock = Clock()
    ledger = make(db, clock, daily_quota=-1, global_daily_image_cap=1)
    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    with pytest.raises(BudgetExhausted):
        await ledger.reserve(ask())
    clock.now = MIDNIGHT_UTC
    await ledger.reserve(ask())
    assert (await ledger.spend(None)).images == 1


# --- crash recovery -----------------------------------------------------------------------------------------


async def test_a_reservation_left_open_by_a_crash_is_refunded_by_the_next_process(db):
    first = await Database.open(db.url)
    ledger = make(first, daily_quota=2)
    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    await ledger.reserve(ask())  # the process dies while this one waits upstream
    await first.close()

    ledger = make(db, daily_quota=2)
    assert await ledger.recover() == 1
    assert await ledger.recover() == 0
    assert await entries(db) == [(1, "committed", "delivered"), (1, "refunded", "crash-recovery")]
    status = await ledger.status(1, GUILD)
    assert (status.used, status.reserved, status.left, status.refunded) == (1, 0, 1, 1)
    assert (await ledger.spend(GUILD)).images == 1


async def test_from_settings_takes_every_quota_setting(db):
    settings = Settings(
        discord_token="t",
        gemini_api_key="k",
        daily_quota=4,
        quota_timezone="Asia/Kolkata",
        model_prices="gemini-nano-banana-2.1:1K=0.5",  # the default picture, at the operator's price
        credit_usd=0.5,  # one credit each
        server_daily_image_cap=7,
        global_daily_image_cap=9,
        server_daily_cost_cap_usd=1.0,
        global_daily_cost_cap_usd=2.0,
        _env_file=None,
    )
    ledger = build_quota(db, settings, clock=Clock())
    reservation = await ledger.reserve(ask())
    assert (reservation.limit, reservation.resets_at) == (4, utc(2024, 6, 1, 18, 30))
    await ledger.reserve(ask())
    with pytest.raises(BudgetExhausted) as refused:  # $1.00 of server budget at $0.50 an image
        await ledger.reserve(ask())
    assert refused.value.scope == "server"
    server, everyone = await ledger.spend(GUILD), await ledger.spend(None)
    assert (server.image_cap, server.cost_cap_usd, everyone.image_cap, everyone.cost_cap_usd) == (7, 1.0, 9, 2.0)


async def test_the_credits_migration_keeps_every_existing_row_meaning_the_same(tmp_path):
    """A database from before credits: each image becomes one credit, limits and grants stay as they are, and the
    day's spend (held and delivered images, refunds not counted) does not move."""
    import sqlite3

    from bot.storage.db import migrations

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for version, _name, sql in migrations():
        if version < 5:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;")
    day = "2024-06-01"
    rows = [("committed", 39_000), ("committed", 39_000), ("open", 39_000), ("refunded", 39_000)]
    conn.executemany(
        "INSERT INTO quota_entries (day, guild_id, user_id, state, cost_micros, created_at) VALUES (?, ?, 1, ?, ?, 0)",
        [(day, GUILD, state, cost) for state, cost in rows],
    )
    conn.execute("UPDATE quota_entries SET state = 'refunded' WHERE id = 4")  # a refund, as the old ledger made it
    conn.execute("INSERT INTO quota_user_limits (guild_id, user_id, daily_limit) VALUES (?, 1, 5)", (GUILD,))
    conn.execute(
        "INSERT INTO quota_grants (guild_id, user_id, day, amount, granted_by, created_at) VALUES (?, 1, ?, 2, 9, 0)",
        (GUILD, day),
    )
    conn.commit()
    before = conn.execute("SELECT images, cost_micros FROM quota_spend WHERE day = ? ORDER BY scope", (day,)).fetchall()
    conn.close()

    db = await Database.open(path)
    try:
        ledger = make(db, daily_quota=10)
        status = await ledger.status(1, GUILD)
        assert (status.limit, status.granted, status.used, status.reserved, status.left) == (5, 2, 2, 1, 4)
        after = await db.fetchall("SELECT images, cost_micros FROM quota_spend WHERE day = ? ORDER BY scope", (day,))
        assert [tuple(r) for r in after] == before == [(3, 117_000), (3, 117_000)]
        # The old open entry ends by the new rules: refunded with nothing billed, it leaves the spend.
        held = Reservation(3, 1, GUILD, 7, 4, MIDNIGHT_UTC)
        assert await ledger.refund(held, "crash-recovery", 0.0)
        spend = await ledger.spend(GUILD)
        assert (spend.images, spend.cost_usd) == (2, 0.078)
    finally:
        await db.close()
