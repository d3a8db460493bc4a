"""Where a member's limit comes from, grants, quota days across time zones and DST, and the admin controls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import InvalidRequest, QuotaExceeded
from bot.quota.limits import (
    GLOBAL_DEFAULT,
    ROLE,
    SERVER_DEFAULT,
    USER_OVERRIDE,
    QuotaDays,
    resolve_limit,
)
from cogs.ui.wording import source_text
from tests.unit.test_quota import GUILD, NOON_UTC, Clock, ask, local, make, utc

ADMIN = 900
ARTISTS, NEWBIES, PATRONS = 10, 20, 30


# --- precedence ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "roles", "user", "expected"),
    [
        (None, [], None, (5, GLOBAL_DEFAULT, None)),
        (8, [], None, (8, SERVER_DEFAULT, None)),
        (-1, [], None, (None, SERVER_DEFAULT, None)),
        (8, [(ARTISTS, 3)], None, (3, ROLE, ARTISTS)),  # a role may restrict below the server default
        (8, [(ARTISTS, 3), (PATRONS, 12), (NEWBIES, 1)], None, (12, ROLE, PATRONS)),  # the most generous role
        (8, [(ARTISTS, 50), (PATRONS, -1)], None, (None, ROLE, PATRONS)),  # unlimited beats any number
        (8, [(PATRONS, 4), (ARTISTS, 4)], None, (4, ROLE, ARTISTS)),  # a tie names the same role every time
        (8, [(PATRONS, -1)], 2, (2, USER_OVERRIDE, None)),  # the override beats even an unlimited role
        (None, [], -1, (None, USER_OVERRIDE, None)),
        (None, [], 0, (0, USER_OVERRIDE, None)),
    ],
)
def test_precedence(server, roles, user, expected):
    got = resolve_limit(global_default=5, server_default=server, role_limits=roles, user_override=user)
    assert got == expected


async def test_limits_set_by_admins_apply_to_reservations(db):
    ledger = make(db, daily_quota=1)
    await ledger.set_server_default(GUILD, 2, actor_id=ADMIN)
    await ledger.set_role_limit(GUILD, ARTISTS, 3, actor_id=ADMIN)
    await ledger.set_role_limit(GUILD, NEWBIES, 0, actor_id=ADMIN)
    await ledger.set_user_limit(GUILD, 4, -1, actor_id=ADMIN)

    async def granted(user: int, roles: tuple[int, ...] = ()) -> int:
        count = 0
        for _ in range(6):
            try:
                await ledger.reserve(ask(user=user, roles=roles))
            except QuotaExceeded:
                break
            count += 1
        return count

    assert await granted(1) == 2  # server default
    assert await granted(2, (ARTISTS, NEWBIES, 999)) == 3  # best of the member's roles; 999 has no limit
    assert await granted(3, (NEWBIES,)) == 0
    assert await granted(4, (NEWBIES,)) == 6  # unlimited override
    assert await granted(5, ()) == 2
    # Another server keeps the global default.
    assert (await ledger.status(1, 222)).limit == 1

    status = await ledger.status(2, GUILD, (ARTISTS, NEWBIES))
    assert (status.source, status.role_id, source_text(status)) == (ROLE, ARTISTS, f"role <@&{ARTISTS}>")


async def test_clearing_a_setting_falls_back_to_the_next_source(db):
    ledger = make(db, daily_quota=7)
    await ledger.set_user_limit(GUILD, 1, 2, actor_id=ADMIN)
    await ledger.set_server_default(GUILD, 4, actor_id=ADMIN)
    assert (await ledger.status(1, GUILD)).source == USER_OVERRIDE
    cleared = await ledger.set_user_limit(GUILD, 1, None, actor_id=ADMIN)
    assert (cleared.limit, cleared.source) == (4, SERVER_DEFAULT)
    server = await ledger.set_server_default(GUILD, None, actor_id=ADMIN)
    assert (server.default_limit, server.default_source) == (7, GLOBAL_DEFAULT)
    assert (await ledger.status(1, GUILD)).limit == 7


# --- grants -------------------------------------------------------------------------------------------------


async def test_grants_add_to_today_only(db):
    clock = Clock(utc(2024, 6, 1, 23, 0))
    ledger = make(db, clock, daily_quota=1)
    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    after = await ledger.grant(GUILD, 1, 2, actor_id=ADMIN)
    await ledger.grant(GUILD, 1, 1, actor_id=ADMIN)
    status = await ledger.status(1, GUILD)
    assert (status.limit, status.granted, status.allowance, status.left) == (1, 3, 4, 3)
    assert (after.granted, after.left) == (2, 2)
    assert source_text(status) == "global default + 3 granted today"
    for _ in range(3):
        await ledger.reserve(ask())
    with pytest.raises(QuotaExceeded) as refused:
        await ledger.reserve(ask())
    assert refused.value.limit == 4

    clock.now = utc(2024, 6, 2, 0, 0)
    tomorrow = await ledger.status(1, GUILD)
    assert (tomorrow.granted, tomorrow.allowance, tomorrow.left) == (0, 1, 1)


async def test_a_grant_must_be_positive(db):
    ledger = make(db)
    with pytest.raises(InvalidRequest):
        await ledger.grant(GUILD, 1, 0, actor_id=ADMIN)
    with pytest.raises(InvalidRequest):
        await ledger.set_user_limit(GUILD, 1, -2, actor_id=ADMIN)
    assert await ledger.audit_log(GUILD) == []


# --- quota days ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "during", "day_starts", "day_ends", "hours"),
    [
        # Spring forward: 23-hour days.
        ("America/New_York", (2024, 3, 10, 12), utc(2024, 3, 10, 5), utc(2024, 3, 11, 4), 23),
        ("Europe/Berlin", (2024, 3, 31, 12), utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), 23),
        # Fall back: 25-hour days.
        ("America/New_York", (2024, 11, 3, 12), utc(2024, 11, 3, 4), utc(2024, 11, 4, 5), 25),
        ("Europe/Berlin", (2024, 10, 27, 12), utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),
        ("Pacific/Chatham", (2024, 4, 7, 12), utc(2024, 4, 6, 10, 15), utc(2024, 4, 7, 11, 15), 25),
        # Half- and quarter-hour offsets, no DST.
        ("Asia/Kolkata", (2024, 6, 1, 12), utc(2024, 5, 31, 18, 30), utc(2024, 6, 1, 18, 30), 24),
        # Midnight itself skipped (spring) or repeated (autumn) by the DST change.
        ("America/Santiago", (2024, 9, 7, 12), utc(2024, 9, 7, 4), utc(2024, 9, 8, 4), 24),
        ("America/Santiago", (2024, 4, 6, 12), utc(2024, 4, 6, 3), utc(2024, 4, 7, 4), 25),
        ("Asia/Beirut", (2022, 10, 29, 12), utc(2022, 10, 28, 21), utc(2022, 10, 29, 22), 25),
    ],
)
async def test_the_day_resets_at_local_midnight(db, zone, during, day_starts, day_ends, hours):
    clock = Clock(day_starts)
    ledger = make(db, clock, daily_quota=1, timezone=zone)
    assert day_ends - day_starts == hours * 3600

    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)  # the first instant of the day
    clock.now = local(zone, *during)
    with pytest.raises(QuotaExceeded) as refused:
        await ledger.reserve(ask())
    assert refused.value.resets_at_ts == day_ends
    clock.now = day_ends - 0.001
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(ask())
    clock.now = day_ends
    reservation = await ledger.reserve(ask())
    assert reservation.resets_at > day_ends


async def test_a_reservation_counts_against_the_day_it_was_made(db):
    clock = Clock(utc(2024, 6, 1, 23, 59))
    ledger = make(db, clock, daily_quota=1)
    reservation = await ledger.reserve(ask())
    clock.now = utc(2024, 6, 2, 0, 1)
    await ledger.commit(reservation, 1, 0.039)
    today = await ledger.status(1, GUILD)
    assert (today.used, today.left) == (0, 1)
    clock.now = utc(2024, 6, 1, 23, 59, 59)
    assert (await ledger.status(1, GUILD)).used == 1


def test_when_clocks_fall_back_across_midnight_the_repeated_hour_ends_at_the_second_midnight():
    days = QuotaDays("America/Goose_Bay")
    # 2010-11-07 00:01 ADT became 2010-11-06 23:01 AST: 03:01Z to 04:00Z show the 6th again.
    assert days.next_reset(utc(2010, 11, 7, 2, 30)) == utc(2010, 11, 7, 3)
    assert days.day_key(utc(2010, 11, 7, 3, 30)) == "2010-11-06"
    assert days.next_reset(utc(2010, 11, 7, 3, 30)) == utc(2010, 11, 7, 4)


ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Beirut",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Goose_Bay",
    "Pacific/Apia",
]


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), ts=st.floats(min_value=utc(2000, 1, 1), max_value=utc(2037, 12, 31)))
def test_next_reset_is_exactly_where_the_local_date_changes(zone, ts):
    days = QuotaDays(zone)
    reset = days.next_reset(ts)
    assert ts < reset <= ts + 26 * 3600
    assert days.day_key(reset - 0.001) == days.day_key(ts)
    assert days.day_key(reset) > days.day_key(ts)


# --- admin controls and their audit -------------------------------------------------------------------------


async def test_reset_forgives_todays_use_but_not_the_spend(db):
    ledger = make(db, daily_quota=2)
    for _ in range(2):
        await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    held = await ledger.reserve(ask(user=2))
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(ask())

    status = await ledger.reset_user(GUILD, 1, actor_id=ADMIN)
    assert (status.used, status.left) == (0, 2)
    assert (await ledger.spend(GUILD)).images == 3  # those images were made and paid for
    await ledger.reserve(ask())
    rows = await db.fetchall("SELECT state, reason FROM quota_entries WHERE user_id = 1 ORDER BY id")
    assert [tuple(r) for r in rows] == [("forgiven", "delivered"), ("forgiven", "delivered"), ("open", None)]
    assert await ledger.commit(held, 3, 0.039)  # other members' entries are untouched


async def test_every_change_is_audited_with_who_when_and_what(db):
    clock = Clock()
    ledger = make(db, clock)
    await ledger.commit(await ledger.reserve(ask(user=1)), 1, 0.039)
    changes = [
        ledger.set_user_limit(GUILD, 1, 5, actor_id=ADMIN),
        ledger.grant(GUILD, 1, 2, actor_id=ADMIN),
        ledger.reset_user(GUILD, 1, actor_id=ADMIN + 1),
        ledger.set_server_default(GUILD, -1, actor_id=ADMIN),
        ledger.set_role_limit(GUILD, ARTISTS, 9, actor_id=ADMIN),
        ledger.set_user_limit(GUILD, 1, None, actor_id=ADMIN),
    ]
    for change in changes:
        clock.now += 1
        await change
    await ledger.status(1, GUILD)  # reading changes nothing
    log = await ledger.audit_log(GUILD)
    assert [(e.at - NOON_UTC, e.actor_id, e.action, e.user_id, e.role_id, e.value) for e in reversed(log)] == [
        (1, ADMIN, "set_user_limit", 1, None, 5),
        (2, ADMIN, "grant", 1, None, 2),
        (3, ADMIN + 1, "reset_user", 1, None, 1),  # one delivered image forgiven
        (4, ADMIN, "set_server_default", None, None, -1),
        (5, ADMIN, "set_role_limit", None, ARTISTS, 9),
        (6, ADMIN, "set_user_limit", 1, None, None),
    ]
    assert {e.guild_id for e in log} == {GUILD}
    assert await ledger.audit_log(222) == []


async def test_role_and_server_changes_answer_with_the_servers_settings(db):
    ledger = make(db, daily_quota=3, server_daily_image_cap=50)
    await ledger.commit(await ledger.reserve(ask()), 1, 0.039)
    await ledger.set_role_limit(GUILD, ARTISTS, 9, actor_id=ADMIN)
    server = await ledger.set_role_limit(GUILD, PATRONS, -1, actor_id=ADMIN)
    assert server.role_limits == {ARTISTS: 9, PATRONS: None}
    assert (server.default_limit, server.default_source) == (3, GLOBAL_DEFAULT)
    assert (server.spend.images, server.spend.image_cap) == (1, 50)
    server = await ledger.set_role_limit(GUILD, ARTISTS, None, actor_id=ADMIN)
    assert server.role_limits == {PATRONS: None}
