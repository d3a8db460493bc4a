"""Owner leases: recovery refunds only what no live process answers for. Two processes are two connections to
one database file, each with its own ledger and lease; time is a fake clock, and each heartbeat is one `tick()`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot.config import Settings
from bot.quota.ledger import QuotaLedger
from bot.services import Services
from bot.storage.db import Database
from bot.storage.leases import ProcessLease
from tests.unit.test_quota import GUILD, Clock, ask

LEASE = 60.0


@dataclass
class Process:
    db: Database
    lease: ProcessLease
    ledger: QuotaLedger


@pytest.fixture
async def start(db: Database, clock: Clock) -> AsyncIterator:
    """`await start("blue")` starts a process of instance "blue" as the bot does, with a connection of its own to
    the test's database (either engine): lease, recovery, sweeps."""
    opened: list[Database] = []

    async def launch(instance: str) -> Process:
        db = await Database.open(url)
        opened.append(db)
        lease = ProcessLease(db, instance_id=instance, lease_seconds=LEASE, clock=clock)
        ledger = QuotaLedger(db, daily_quota=100, clock=clock, owner=lease.owner)
        await lease.register()
        await ledger.recover()
        lease._sweep = ledger.recover  # the background loop's job, run by hand through tick()
        return Process(db, lease, ledger)

    url = db.url
    yield launch
    for each in opened:
        await each.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def states(db: Database) -> list[tuple[str, str | None]]:
    return [tuple(r) for r in await db.fetchall("SELECT state, reason FROM quota_entries ORDER BY id")]  # type: ignore[misc]


async def test_an_overlapping_deploy_leaves_the_old_process_s_images_in_flight_alone(start, clock):
    old = await start("blue")
    in_flight = [await old.ledger.reserve(ask(user=u)) for u in range(20)]

    new = await start("green")  # the new version starts while the old one still finishes its images
    assert await new.ledger.recover() == 0
    clock.now += LEASE / 3
    await old.lease.tick()
    assert await new.lease.tick() == 0
    for reservation in in_flight:
        assert await old.ledger.commit(reservation, 1, 0.039)

    assert await states(new.db) == [("committed", "delivered")] * 20
    assert old.ledger.late_commits == 0
    assert (await new.ledger.status(0, GUILD)).used == 1


async def test_a_dead_process_s_credits_stay_held_for_a_lease_then_a_live_one_gives_them_back(start, clock):
    dead = await start("blue")
    live = await start("green")
    held = [await dead.ledger.reserve(ask(user=7)) for _ in range(3)]
    mine = await live.ledger.reserve(ask(user=8))
    # `dead` never ticks again (killed with -9); `live` keeps its heartbeat.
    swept = []
    for _ in range(5):
        clock.now += LEASE / 3
        swept.append(await live.lease.tick())
    # Held through the whole lease (its last instant included), given back by the first sweep after it.
    assert swept == [0, 0, 0, 3, 0]
    assert await states(live.db) == [("refunded", "lease-expired")] * 3 + [("open", None)]
    status = await live.ledger.status(7, GUILD)
    assert (status.reserved, status.refunded, status.left) == (0, 3, 100)
    assert await live.ledger.commit(mine, 1, 0.039)
    assert held  # the dead process's handles are never used again


async def test_held_until_the_lease_runs_out_to_the_second(start, clock):
    dead = await start("blue")
    live = await start("green")
    await dead.ledger.reserve(ask())
    clock.now += LEASE
    assert await live.ledger.recover() == 0  # the lease still covers this very second
    clock.now += 0.001
    assert await live.ledger.recover() == 1


async def test_a_restart_under_the_same_instance_reclaims_its_earlier_run_at_once(start, clock, caplog):
    first = await start("blue")
    other = await start("green")
    await first.ledger.reserve(ask(user=1))
    await other.ledger.reserve(ask(user=2))

    with caplog.at_level(logging.WARNING):
        again = await start("blue")  # same instance name, new process, the old lease still running
    assert await states(again.db) == [("refunded", "restarted"), ("open", None)]
    assert "earlier run of instance 'blue'" in caplog.text


async def test_a_commit_after_its_lease_ran_out_is_warned_about_counted_and_marked(start, clock, caplog):
    stalled = await start("blue")
    live = await start("green")
    reservation = await stalled.ledger.reserve(ask())
    clock.now += LEASE + 1  # `stalled` missed its heartbeats: the others may take its entries
    assert await live.lease.tick() == 1

    with caplog.at_level(logging.WARNING):
        assert not await stalled.ledger.commit(reservation, 9, 0.039)
        assert not await stalled.lease.renew()  # it hears that its lease had lapsed
    assert stalled.ledger.late_commits == 1 and stalled.lease.lapses == 1
    assert "delivered after it had been refunded" in caplog.text and "lease had run out" in caplog.text
    row = await live.db.fetchone("SELECT state, reason, generation_id FROM quota_entries")
    assert tuple(row) == ("refunded", "lease-expired (delivered)", 9)
    assert not await stalled.ledger.commit(reservation, 9, 0.039)
    assert stalled.ledger.late_commits == 1  # counted once


async def test_a_process_that_stops_cleanly_gives_its_lease_up(start, clock):
    leaving = await start("blue")
    live = await start("green")
    await leaving.ledger.reserve(ask())  # say the grace period ran out with this one still open
    await leaving.lease.close()
    assert await live.lease.tick() == 1
    assert await states(live.db) == [("refunded", "lease-expired")]
    assert [tuple(r) for r in await live.db.fetchall("SELECT instance_id FROM process_leases")] == [("green",)]


async def test_the_bot_sweeps_in_the_background_and_a_cli_helper_never_reclaims_the_bot_s_entries(db):
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token="t",
        gemini_api_key="k",
        database_url=db.url,
        instance_id="blue",
        process_lease_seconds=0.3,
    )
    bot = await Services.start(settings)
    cli = await Services.start(settings, recover=False)
    try:
        assert cli.lease.owner.instance_id.startswith("blue-cli-")
        held = await cli.quota.reserve(ask())
        # A process that died long ago left one open; the bot's own heartbeat sweeps it without a restart.
        await bot.db.execute("INSERT INTO process_leases VALUES ('gone', 'red', 'h', 1, 0, 1)")
        await bot.db.execute(
            "INSERT INTO quota_entries (day, guild_id, user_id, cost_micros, created_at, owner)"
            " VALUES ('2024-06-01', 1, 1, 0, 0, 'gone')"
        )
        for _ in range(200):
            if await bot.db.fetchone("SELECT 1 FROM quota_entries WHERE owner = 'gone' AND state = 'refunded'"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the background sweep never refunded the dead process's entry")
        assert await cli.quota.commit(held, 1, 0.039)  # the CLI's own request was never the bot's to take
    finally:
        for services in (cli, bot):
            await services.stop_accepting()
            await services.close()
