"""The ledger read for reports and handed over or forgotten for privacy (`bot.ops.usage`, `bot.ops.privacy`).

Reports read what the ledger holds, never counters kept on the side: delivered entries (committed, or forgiven by an
admin: those were paid for) are the images and credits; cost is what every ended entry may have been billed,
refunded ones included (a timeout after the request was sent); held ones are requests still running; refunds carry
the reason the ledger recorded. What one entry is worth in credits is written once, in `CREDITS`.

Forgetting keeps what today's limits need: entries of earlier days lose the member's id; today's keep it until the
day ends (spent and running ones count toward the daily credits, refunded ones toward the daily upstream
attempts), or a member could forget their way past today's limits. `quota_forgotten` remembers up to which
entry, so the daily retention pass anonymises exactly those later, and none the member made after forgetting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.storage.db import Database
from bot.storage.rows import dict_rows

ANONYMOUS = 0  # the user id of entries that belong to no one any more
# What one ledger entry is worth in credits (before the credits ledger, every entry was one image: "1").
CREDITS = "credits"
SPENT = "('committed', 'forgiven')"


@dataclass(frozen=True, slots=True)
class CostEntry:
    day: str
    user_id: int
    generation_id: int | None
    credits: float  # charged to the member: 0 for a refunded entry
    cost_micros: int  # what the upstream may have billed for it
    delivered: bool  # False: refunded, but the provider may have billed it


def _scope(guild_id: int | None, first_day: str, last_day: str) -> tuple[str, tuple[Any, ...]]:
    # The ledger keys DMs as guild 0, so a server's report is for a real server and never picks DMs up.
    if guild_id is None:
        return "day BETWEEN ? AND ?", (first_day, last_day)
    return "day BETWEEN ? AND ? AND guild_id = ?", (first_day, last_day, guild_id)


async def cost_entries(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[CostEntry]:
    """Every entry of the quota days [first_day, last_day] that was delivered or may have been billed, of one
    server or of the whole bot (None)."""
    where, params = _scope(guild_id, first_day, last_day)
    rows = await db.fetchall(
        f"SELECT day, user_id, generation_id, IIF(state IN {SPENT}, {CREDITS}, 0), cost_micros, state IN {SPENT}"
        f" FROM quota_entries WHERE (state IN {SPENT} OR (state = 'refunded' AND cost_micros > 0)) AND {where}"
        " ORDER BY id",
        params,
    )
    return [CostEntry(row[0], row[1], row[2], row[3], row[4], bool(row[5])) for row in rows]


async def held_count(db: Database, guild_id: int | None, first_day: str, last_day: str) -> int:
    """Requests holding a reservation right now (queued or running)."""
    where, params = _scope(guild_id, first_day, last_day)
    row = await db.fetchone(f"SELECT COUNT(*) FROM quota_entries WHERE state = 'open' AND {where}", params)
    return int(row[0]) if row else 0


async def refund_counts(db: Database, guild_id: int | None, first_day: str, last_day: str) -> list[tuple[str, int]]:
    """(why, count) of the refunded entries, most frequent first."""
    where, params = _scope(guild_id, first_day, last_day)
    rows = await db.fetchall(
        "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM quota_entries"
        f" WHERE state = 'refunded' AND {where} GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    )
    return [(row[0], row[1]) for row in rows]


# --- privacy: run inside the caller's transaction (`conn`) ------------------------------------------------------


async def export_member(conn: Any, user_id: int) -> dict[str, list[dict[str, Any]]]:
    member = (user_id,)
    return {
        "quota_entries": await dict_rows(conn, "SELECT * FROM quota_entries WHERE user_id = ? ORDER BY id", member),
        "quota_grants": await dict_rows(conn, "SELECT * FROM quota_grants WHERE user_id = ? ORDER BY id", member),
        "quota_limits": await dict_rows(conn, "SELECT * FROM quota_user_limits WHERE user_id = ?", member),
        "quota_admin_actions": await dict_rows(
            conn, "SELECT * FROM quota_audit WHERE user_id = ? OR actor_id = ? ORDER BY id", member * 2
        ),
    }


@dataclass(frozen=True, slots=True)
class LedgerForgotten:
    anonymised: int
    kept_today: int  # today's entries that still carry the member's id, for today's limit
    grants_deleted: int


async def forget_member(conn: Any, user_id: int, today: str) -> LedgerForgotten:
    """Entries of earlier days lose the member's id (counts and cost stay for `/usage`);
    grants of earlier days go, today's stay (they are part of today's limit). Limits an admin set for the member
    and the admin audit trail stay: they are the server's rules and its record, not the member's content.
    Changing user_id fires none of the ledger's spend triggers: the day's spend stays as it is."""
    cursor = await conn.execute(
        "UPDATE quota_entries SET user_id = ? WHERE user_id = ? AND day < ?",
        (ANONYMOUS, user_id, today),
    )
    anonymised = int(cursor.rowcount)
    cursor = await conn.execute("SELECT COUNT(*), MAX(id) FROM quota_entries WHERE user_id = ?", (user_id,))
    kept, last_id = await cursor.fetchone()
    if kept:
        await conn.execute(
            "INSERT INTO quota_forgotten (user_id, day, last_entry_id) VALUES (?,?,?) ON CONFLICT (user_id)"
            " DO UPDATE SET day = excluded.day, last_entry_id = MAX(last_entry_id, excluded.last_entry_id)",
            (user_id, today, last_id),
        )
    cursor = await conn.execute("DELETE FROM quota_grants WHERE user_id = ? AND day < ?", (user_id, today))
    return LedgerForgotten(anonymised, int(kept), int(cursor.rowcount))


async def finish_forgetting(conn: Any, today: str) -> int:
    """Anonymise the entries forgetting kept for a day that has ended; returns how many."""
    cursor = await conn.execute(
        "UPDATE quota_entries SET user_id = ? WHERE day < ? AND EXISTS (SELECT 1 FROM quota_forgotten f"
        " WHERE f.user_id = quota_entries.user_id AND f.day < ? AND quota_entries.id <= f.last_entry_id)",
        (ANONYMOUS, today, today),
    )
    changed = int(cursor.rowcount)
    await conn.execute("DELETE FROM quota_forgotten WHERE day < ?", (today,))
    return changed
