"""The usage report after a scripted day through the real core: its numbers are the ledger's, the chart has a bar
per day and model and decodes as a PNG, the CSV parses, the terminal command writes both."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from bot.config import Settings
from bot.ops.report import output_paths, report
from bot.ops.usage import Blocks, MemberSpend, Reason, usage_report
from bot.ops.usage_render import CSV_HEADER, chart_figure, csv_rows, render_png, render_table, to_csv
from bot.storage.db import Database
from tests.unit.ops_day import (
    ALICE,
    BOB,
    CAROL,
    CREDITS,
    FLASH,
    OTHER_SERVER,
    PRICES,
    PRO,
    SERVER,
    TODAY,
    TZ,
    YESTERDAY,
    Clock,
    local,
    open_core,
    scripted_day,
)

NOW = local(TODAY, 18)


@pytest.fixture
async def day(db):
    """The scripted day, on each engine (conftest's `db`)."""
    core = await open_core(db, Clock(NOW))
    await scripted_day(core)
    core.clock.now = NOW
    yield core
    await core.ledger.drain()


async def test_server_today_equals_the_ledger(day):
    got = await usage_report(day.db, guild_id=SERVER, days=1, timezone=TZ, now=NOW)
    spend = await day.ledger.spend(SERVER)  # the ledger's own account of the server's day
    # The ledger's spend counts every request that may cost: the delivered ones and the timed-out call, whose
    # member was refunded but which Google may bill all the same (at the price table's estimate).
    assert (got.images + got.billed_failures, got.cost_usd) == (spend.images, pytest.approx(spend.cost_usd))
    assert (got.images, got.billed_failures, got.held) == (4, 1, 0)
    assert got.credits == 3 * CREDITS[FLASH] + CREDITS[PRO]  # credits by the price table: Pro's image is 4
    assert {(m.model, m.provider, m.images, m.billed_failures) for m in got.by_model} == {
        (FLASH, "gemini", 3, 1),  # the provider as each generation recorded it
        (PRO, "gateway", 1, 0),
    }
    assert [m.model for m in got.by_model] == [FLASH, PRO]  # most expensive first: 4 x 0.039 > 1 x 0.134
    assert got.by_model[0].cost_usd == pytest.approx(4 * PRICES[FLASH])
    assert got.by_model[1].cost_usd == pytest.approx(PRICES[PRO])
    alice = await day.ledger.status(ALICE, SERVER)
    bob = await day.ledger.status(BOB, SERVER)
    assert (alice.used, bob.used) == (3 * CREDITS[FLASH], CREDITS[PRO])  # what each member was charged
    assert got.busiest == (  # by credits; Bob's cost includes the call that timed out on him
        MemberSpend(BOB, 1, bob.used, pytest.approx(PRICES[PRO] + PRICES[FLASH])),
        MemberSpend(ALICE, 3, alice.used, pytest.approx(3 * PRICES[FLASH])),
    )
    assert sorted(got.refunds, key=lambda r: r.reason) == [
        Reason("GenerationFailed", 1),
        Reason("ImageBlocked", 1),
        Reason("UpstreamTimeout", 1),
    ]
    assert bob.refunded == got.refunded  # every refund today on this server was Bob's
    assert sorted(got.failures, key=lambda r: r.reason) == sorted(got.refunds, key=lambda r: r.reason)
    assert sorted(got.blocks, key=lambda b: b.tier) == [
        Blocks("local", "gore", 1),
        Blocks("upstream", "IMAGE_SAFETY", 1),
    ]


async def test_whole_bot_and_longer_periods(day):
    everything = await usage_report(day.db, guild_id=None, days=1, timezone=TZ, now=NOW)
    bot_spend = await day.ledger.spend(None)
    assert everything.images == 4 + 2 + 1  # the server, the other server, the DM
    assert everything.images + everything.billed_failures == bot_spend.images
    assert everything.cost_usd == pytest.approx(bot_spend.cost_usd)
    assert [m.user_id for m in everything.busiest] == [ALICE, BOB, CAROL]  # Alice's DM Pro image counts for her
    assert everything.busiest[0].credits == 3 * CREDITS[FLASH] + CREDITS[PRO]
    other = await usage_report(day.db, guild_id=OTHER_SERVER, days=1, timezone=TZ, now=NOW)
    assert (other.images, [m.user_id for m in other.busiest], other.refunds, other.blocks) == (2, [CAROL], (), ())

    week = await usage_report(day.db, guild_id=SERVER, days=7, timezone=TZ, now=NOW)
    assert week.period.day_keys[-2:] == [YESTERDAY, TODAY] and len(week.period.day_keys) == 7
    assert week.images == 4 + 1
    assert {(r.day, r.model): r.images for r in week.daily} == {
        (YESTERDAY, FLASH): 1,
        (TODAY, FLASH): 3,
        (TODAY, PRO): 1,
    }


async def test_a_running_request_is_held_not_spent(day):
    from bot.models import ImageRequest

    day.clock.now = NOW
    held = await day.ledger.reserve(ImageRequest(user_id=BOB, channel_id=1, prompt="x", guild_id=SERVER))
    got = await usage_report(day.db, guild_id=SERVER, days=1, timezone=TZ, now=NOW)
    assert (got.held, got.images) == (1, 4)
    await day.ledger.refund(held, "Cancelled")


async def test_chart_has_a_bar_per_day_and_model_and_decodes(day):
    week = await usage_report(day.db, guild_id=SERVER, days=7, timezone=TZ, now=NOW)
    figure = chart_figure(week)
    images_axes, cost_axes = figure.axes
    for axes in (images_axes, cost_axes):
        assert [len(bars) for bars in axes.containers] == [7] * len(week.models)
        assert [c.get_label() for c in axes.containers] == week.models
    # The stacked heights of each day add up to that day's images and cost.
    per_day = {day_key: 0.0 for day_key in week.period.day_keys}
    for row in week.daily:
        per_day[row.day] += row.images
    stacked = [sum(bars[n].get_height() for bars in images_axes.containers) for n in range(7)]
    assert stacked == list(per_day.values())
    cost_today = sum(bars[6].get_height() for bars in cost_axes.containers)
    assert cost_today == pytest.approx(3 * PRICES[FLASH] + PRICES[PRO] + PRICES[FLASH])  # and the timed-out call

    data = render_png(week)
    with Image.open(io.BytesIO(data)) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.size == (1000, 600)


async def test_csv_parses_into_the_same_rows(day):
    week = await usage_report(day.db, guild_id=SERVER, days=7, timezone=TZ, now=NOW)
    rows = list(csv.DictReader(io.StringIO(to_csv(week))))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 7 * 2 == len(csv_rows(week))  # every day, for each model seen
    assert sum(int(r["images"]) for r in rows) == week.images
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(week.cost_usd)
    assert {r["day"] for r in rows} == set(week.period.day_keys)


async def test_table_reads_as_the_report(day):
    got = await usage_report(day.db, guild_id=SERVER, days=1, timezone=TZ, now=NOW)
    text = render_table(got)
    assert text.startswith(
        f"Usage of server {SERVER}, today ({TODAY})\nImages 4 · credits 7 · cost $0.290 · 1 failed but billed\n"
    )
    assert f"\n  {FLASH}  gemini         3        3  $0.156\n  {PRO}      gateway        1        4  $0.134\n" in text
    assert "Refunds: 3" in text and "Blocks: 2" in text and "Failures: 3" in text
    assert "\n  local     gore              1\n  upstream  IMAGE_SAFETY      1\n" in text


async def test_report_command_prints_and_writes_files(day, tmp_path):
    settings = Settings(_env_file=None, database_url=day.db.url, quota_timezone=TZ)
    out = io.StringIO()
    code = await report(settings, days=30, out_dir=tmp_path / "out", now=NOW, stdout=out)
    assert code == 0
    png_path, csv_path = output_paths(tmp_path / "out", None, 30)
    assert "Usage of the whole bot, last 30 days" in out.getvalue() and str(png_path) in out.getvalue()
    with Image.open(png_path) as picture:
        assert picture.format == "PNG"
    rows = list(csv.DictReader(csv_path.open()))
    assert sum(int(r["images"]) for r in rows) == 8  # 7 today, 1 yesterday


async def test_report_command_refuses_bad_input(tmp_path, capsys):
    settings = Settings(_env_file=None, database_path=tmp_path / "missing.sqlite3")
    assert await report(settings, days=30, out_dir=tmp_path) == 2
    assert "No database at" in capsys.readouterr().err
    assert await report(settings, days=0, out_dir=tmp_path) == 2
    assert not (tmp_path / "missing.sqlite3").exists()


async def test_an_empty_period_still_has_a_chart_and_a_table(tmp_path):
    db = await Database.open(tmp_path / "empty.sqlite3")
    try:
        got = await usage_report(db, guild_id=None, days=7, timezone="UTC", now=NOW)
    finally:
        await db.close()
    assert (got.images, got.models, to_csv(got).splitlines()) == (0, [], [",".join(CSV_HEADER)])
    assert "Images 0" in render_table(got)
    with Image.open(io.BytesIO(render_png(got))) as picture:
        assert picture.format == "PNG"
