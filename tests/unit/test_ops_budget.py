"""Budget alerts at 80 % and 100 % of a cap, fed by the real ledger's spend: each fires once per day and scope."""

from __future__ import annotations

from bot.config import Settings
from bot.models import ImageRequest
from bot.ops.budget import BudgetAlerts, reached
from bot.services import build_quota
from bot.storage.db import Database
from tests.unit.ops_day import Clock, local

SERVER = 1001
NOW = local("2026-03-10", 12)


def test_thresholds():
    assert [reached(used, 10) for used in (0, 7, 8, 9, 10, 12)] == [None, None, 80, 80, 100, 100]
    assert reached(5, None) is None and reached(0, 0) == 100
    assert reached(0.8 * 0.39, 0.39) == 80  # dollars: 80 % of a cap reached exactly, despite float rounding


async def test_alerts_follow_the_ledger_and_fire_once(tmp_path):
    db = await Database.open(tmp_path / "bot.sqlite3")
    settings = Settings(_env_file=None, server_daily_image_cap=5, server_daily_cost_cap_usd=-1, daily_quota=-1)
    ledger = build_quota(db, settings, clock=Clock(NOW))
    alerts = BudgetAlerts()
    heard = []
    try:
        for n in range(5):
            held = await ledger.reserve(ImageRequest(user_id=n + 1, channel_id=1, prompt="x", guild_id=SERVER))
            await ledger.commit(held, n + 1, 0.039)
            heard += [(n + 1, a.threshold, a.cap, a.text) for a in alerts.check(await ledger.spend(SERVER))]
            alerts.check(await ledger.spend(SERVER))  # a second look at the same spend says nothing new
    finally:
        await ledger.drain()
        await db.close()
    assert heard == [
        (4, 80, "images", "This server's daily image cap is 80 % used (4 of 5 images, 2026-03-10)."),
        (5, 100, "images", "This server's daily image cap is used up (5 of 5 images, 2026-03-10)."),
    ]


def test_jumping_past_both_thresholds_sends_one_alert_and_a_new_day_starts_over():
    from bot.quota.limits import Spend

    alerts = BudgetAlerts()

    def spend(day: str, cost: float) -> Spend:
        return Spend(None, day, 0, cost, None, 20.0, 0.0)

    assert [a.threshold for a in alerts.check(spend("2026-03-10", 21.0))] == [100]
    assert alerts.check(spend("2026-03-10", 22.0)) == []
    (again,) = alerts.check(spend("2026-03-11", 16.5))
    assert again.text == "The bot's daily cost cap is 80 % used ($16.50 of $20.00, 2026-03-11)."
