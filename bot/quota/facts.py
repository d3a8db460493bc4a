"""What every quota decision reads, in one statement: the member's limits, grants, credits by state, their
credits and upstream attempts across every server, and the server's and the bot's spend. `QuotaLedger` runs it
inside the transaction that writes the decision."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bot.storage.db import Reader

# Everything a decision (or a status) needs, in one statement: limits, grants, usage by state, spend. The same text
# on both engines: the member's roles are one placeholder each (a member has at most 250).
_FACTS = """
SELECT 'user' AS kind, daily_limit AS a, NULL AS b FROM quota_user_limits
    WHERE guild_id = ? AND user_id = ?
UNION ALL SELECT 'role', daily_limit, role_id FROM quota_role_limits
    WHERE guild_id = ? AND role_id IN ({roles})
UNION ALL SELECT 'server', daily_limit, NULL FROM quota_server_limits WHERE guild_id = ?
UNION ALL SELECT 'granted', CAST(COALESCE(SUM(amount), 0) AS BIGINT), NULL FROM quota_grants
    WHERE guild_id = ? AND user_id = ? AND day = ?
UNION ALL SELECT state, CAST(COALESCE(SUM(credits), 0) AS BIGINT), NULL FROM quota_entries
    WHERE guild_id = ? AND user_id = ? AND day = ? GROUP BY state
UNION ALL SELECT 'everywhere', CAST(COALESCE(SUM(CASE WHEN state = 'refunded' THEN 0 ELSE credits END), 0) AS BIGINT),
        CAST(COALESCE(SUM(attempts + CASE WHEN state = 'open' AND attempts = 0 THEN 1 ELSE 0 END), 0) AS BIGINT)
    FROM quota_entries WHERE user_id = ? AND day = ?
UNION ALL SELECT CASE WHEN scope = -1 THEN 'spend:global' ELSE 'spend:server' END, images, cost_micros
    FROM quota_spend WHERE day = ? AND scope IN (?, -1)
"""


@lru_cache(maxsize=64)
def facts_sql(role_count: int) -> str:
    return _FACTS.format(roles=", ".join("?" * role_count) or "NULL")


def to_micros(usd: float) -> int:
    """Costs are summed as integer millionths of a dollar so that totals and cap checks are exact."""
    return round(usd * 1_000_000)


@dataclass(slots=True)
class Facts:
    user_override: int | None = None
    roles: list[tuple[int, int]] = field(default_factory=list)
    server_default: int | None = None
    granted: int = 0
    states: dict[str, int] = field(default_factory=dict)  # credits by entry state, this server
    everywhere: int = 0  # credits held or spent today in every server and DMs together
    # Calls to the image model today, everywhere; a request still waiting for its first call counts as one.
    attempts: int = 0
    server_spend: tuple[int, int] = (0, 0)  # images, cost in micros
    global_spend: tuple[int, int] = (0, 0)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> Facts:
        facts = cls()
        for kind, a, b in rows:
            match kind:
                case "user":
                    facts.user_override = a
                case "role":
                    facts.roles.append((b, a))
                case "server":
                    facts.server_default = a
                case "granted":
                    facts.granted = int(a)
                case "everywhere":
                    facts.everywhere, facts.attempts = int(a), int(b or 0)
                case "spend:server":
                    facts.server_spend = (a, b)
                case "spend:global":
                    facts.global_spend = (a, b)
                case state:
                    facts.states[state] = int(a)
        return facts


async def read_facts(db: Reader, guild: int, user_id: int, role_ids: Iterable[int], day: str) -> Facts:
    """Read through a transaction (a decision) or the database (a display)."""
    roles = tuple(role_ids)
    params = (guild, user_id, guild, *roles, guild, guild, user_id, day, guild, user_id, day, user_id, day, day, guild)
    return Facts.from_rows(await db.fetchall(facts_sql(len(roles)), params))  # type: ignore[arg-type]
