"""The ledger read for reports and handed over or forgotten for privacy (`bot.ops.usage`, `bot.ops.privacy`).

Reports read what the ledger holds, never counters kept on the side: delivered entries (committed, or forgiven by
an admin: those were paid for) are the images and credits; the dollars are what every ended entry may be billed,
refunded ones included (a timeout after the request was sent), split per provider and model by the rows each
ending wrote (`quota_costs`), with the moderation model's checks beside them; what no row names (a request
recovery refunded at its estimate) is reported as such. Held entries are requests still running; refunds carry
the reason the ledger recorded. What one entry is worth in credits is written once, in `CREDITS`.

Forgetting keeps what today's limits need: entries of earlier days lose the member's id; today's keep it until the
day ends (spent and running ones count toward the daily credits, refunded ones toward the daily upstream
attempts), or a member could forget their way past today's limits. `quota_forgotten` remembers up to which
entry, so the daily retention pass anonymises exactly those later, and none the member made after forgetting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.storage.db import Database, Tx
from bot.storage.rows import dict_rows

ANONYMOUS = 0  # the user id of entries that belong to no one any more
# What one ledger entry is worth in credits (before the credits ledger, every entry was one image: "1").
CREDITS = "credits"
SPENT = "('committed', 'forgiven')"


@dataclass(frozen=True, slots=True)
class CostLine:
    """One day's spend with one provider on one model."""

    day: str
    provider: str  # "" when no provider could be told
    model: str
    pictures: int  # delivered pictures it made
    credits: float  # what their members were charged for them
    failed: int  # calls that brought no picture but may be billed
    checks: int  # calls of the moderation model
    cost_micros: int


@dataclass(frozen=True, slots=True)
class DayTotal:
    """One day's entries: what they may be billed in all, and how much of it `quota_costs` names."""

    day: str
    images: int
    credits: float
    cost_micros: int  # every ended entry (delivered or refunded)
    named_micros: int  # of that, what rows per provider account for
    held: int  # entries still open


@dataclass(frozen=True, slots=True)
class MemberTotal:
    user_id: int
    images: int
    credits: float
    cost_micros: int


def _scope(guild_id: int | None, first_day: str, last_day: str, alias: str = "") -> tuple[str, tuple[Any, ...]]:
    # The ledger keys DMs as guild 0, so a server's report is for a real server and never picks DMs up.
    where = f"{alias}day BETWEEN ? AND ?"
    if guild_id is None:
        return where, (first_day, last_day)
    return f"{where} AND {alias}guild_id = ?", (first_day, last_day, guild_id)


async def cost_lines(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[CostLine]:
    """Spend per day, provider and model of the quota days [first_day, last_day], of one server or of the whole
    bot (None)."""
    where, params = _scope(guild_id, first_day, last_day, "c.")
    rows = await db.fetchall(
        f"SELECT c.day, c.provider, c.model, CAST(SUM(CASE WHEN e.state IN {SPENT} THEN c.pictures ELSE 0 END)"
        f" AS BIGINT), SUM(CASE WHEN c.pictures > 0 AND e.state IN {SPENT} THEN e.{CREDITS} ELSE 0 END),"
        " CAST(SUM(c.failed) AS BIGINT), CAST(SUM(c.checks) AS BIGINT), CAST(SUM(c.cost_micros) AS BIGINT)"
        f" FROM quota_costs c LEFT JOIN quota_entries e ON e.id = c.entry_id WHERE {where}"
        " GROUP BY c.day, c.provider, c.model ORDER BY c.day, c.provider, c.model",
        params,
    )
    return [CostLine(r[0], r[1], r[2], int(r[3]), float(r[4] or 0), int(r[5]), int(r[6]), int(r[7])) for r in rows]


async def day_totals(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[DayTotal]:
    where, params = _scope(guild_id, first_day, last_day)
    rows = await db.fetchall(
        f"SELECT day, CAST(SUM(CASE WHEN state IN {SPENT} THEN 1 ELSE 0 END) AS BIGINT),"
        f" SUM(CASE WHEN state IN {SPENT} THEN {CREDITS} ELSE 0 END),"
        " CAST(SUM(CASE WHEN state != 'open' THEN cost_micros ELSE 0 END) AS BIGINT),"
        " CAST(SUM(CASE WHEN state = 'open' THEN 1 ELSE 0 END) AS BIGINT)"
        f" FROM quota_entries WHERE {where} GROUP BY day",
        params,
    )
    named_where, named_params = _scope(guild_id, first_day, last_day)
    named_rows = await db.fetchall(
        "SELECT day, CAST(SUM(cost_micros) AS BIGINT) FROM quota_costs"
        f" WHERE entry_id IS NOT NULL AND {named_where} GROUP BY day",
        named_params,
    )
    named: dict[str, int] = {row[0]: int(row[1] or 0) for row in named_rows}
    return [
        DayTotal(r[0], int(r[1]), float(r[2] or 0), int(r[3] or 0), named.get(r[0], 0), int(r[4]))
        for r in sorted(rows, key=lambda r: r[0])
    ]


async def member_totals(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[MemberTotal]:
    """What each member got and may have cost (their refunded calls included), the anonymous user left out."""
    where, params = _scope(guild_id, first_day, last_day)
    rows = await db.fetchall(
        f"SELECT user_id, CAST(SUM(CASE WHEN state IN {SPENT} THEN 1 ELSE 0 END) AS BIGINT),"
        f" SUM(CASE WHEN state IN {SPENT} THEN {CREDITS} ELSE 0 END),"
        " CAST(SUM(CASE WHEN state != 'open' THEN cost_micros ELSE 0 END) AS BIGINT)"
        f" FROM quota_entries WHERE {where} AND user_id != ? GROUP BY user_id",
        (*params, ANONYMOUS),
    )
    return [MemberTotal(int(r[0]), int(r[1]), float(r[2] or 0), int(r[3] or 0)) for r in rows]


async def refund_counts(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[tuple[str, int]]:
    """(why, count) of the refunded entries, most frequent first."""
    where, params = _scope(guild_id, first_day, last_day)
    rows = await db.fetchall(
        "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM quota_entries"
        f" WHERE state = 'refunded' AND {where} GROUP BY COALESCE(reason, 'unknown')",
        params,
    )
    return sorted(((r[0], int(r[1])) for r in rows), key=lambda r: (-r[1], r[0]))


# --- privacy: run inside the caller's transaction (`tx`) ----------------------------------------------------------


async def export_member(tx: Tx, user_id: int) -> dict[str, list[dict[str, Any]]]:
    member = (user_id,)
    return {
        "quota_entries": await dict_rows(tx, "SELECT * FROM quota_entries WHERE user_id = ? ORDER BY id", member),
        "quota_grants": await dict_rows(tx, "SELECT * FROM quota_grants WHERE user_id = ? ORDER BY id", member),
        "quota_limits": await dict_rows(tx, "SELECT * FROM quota_user_limits WHERE user_id = ?", member),
        "quota_admin_actions": await dict_rows(
            tx, "SELECT * FROM quota_audit WHERE user_id = ? OR actor_id = ? ORDER BY id", member * 2
        ),
    }


@dataclass(frozen=True, slots=True)
class LedgerForgotten:
    anonymised: int
    kept_today: int  # today's entries that still carry the member's id, for today's limits
    grants_deleted: int


async def forget_member(tx: Tx, user_id: int, today: str) -> LedgerForgotten:
    """Entries of earlier days lose the member's id (counts and cost stay for `/usage`); grants of earlier days
    go, today's stay (they are part of today's limit). Limits an admin set for the member and the admin audit
    trail stay: they are the server's rules and its record, not the member's content. Changing user_id fires none
    of the ledger's spend triggers: the day's spend stays as it is."""
    anonymised = await tx.execute(
        "UPDATE quota_entries SET user_id = ? WHERE user_id = ? AND day < ?", (ANONYMOUS, user_id, today)
    )
    row = await tx.fetchone("SELECT COUNT(*), MAX(id) FROM quota_entries WHERE user_id = ?", (user_id,))
    kept, last_id = (int(row[0]), row[1]) if row else (0, None)
    if kept:
        await tx.execute(
            "INSERT INTO quota_forgotten (user_id, day, last_entry_id) VALUES (?,?,?) ON CONFLICT (user_id)"
            " DO UPDATE SET day = excluded.day, last_entry_id = CASE WHEN quota_forgotten.last_entry_id >"
            " excluded.last_entry_id THEN quota_forgotten.last_entry_id ELSE excluded.last_entry_id END",
            (user_id, today, last_id),
        )
    grants = await tx.execute("DELETE FROM quota_grants WHERE user_id = ? AND day < ?", (user_id, today))
    return LedgerForgotten(anonymised, kept, grants)


async def finish_forgetting(tx: Tx, today: str) -> int:
    """Anonymise the entries forgetting kept for a day that has ended; returns how many."""
    changed = await tx.execute(
        "UPDATE quota_entries SET user_id = ? WHERE day < ? AND EXISTS (SELECT 1 FROM quota_forgotten f"
        " WHERE f.user_id = quota_entries.user_id AND f.day < ? AND quota_entries.id <= f.last_entry_id)",
        (ANONYMOUS, today, today),
    )
    await tx.execute("DELETE FROM quota_forgotten WHERE day < ?", (today,))
    return changed
