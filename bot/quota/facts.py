"""What every quota decision reads, in one statement: the member's limits, grants, credits by state, their
credits and upstream attempts across every server, and the server's and the bot's spend. `QuotaLedger` runs it
inside the transaction that writes the decision."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Everything a decision (or a status) needs, in one statement: limits, grants, usage by state, spend.
FACTS = """
SELECT 'user' AS kind, daily_limit AS a, NULL AS b FROM quota_user_limits
    WHERE guild_id = :guild AND user_id = :user
UNION ALL SELECT 'role', daily_limit, role_id FROM quota_role_limits
    WHERE guild_id = :guild AND role_id IN (SELECT value FROM json_each(:roles))
UNION ALL SELECT 'server', daily_limit, NULL FROM quota_server_limits WHERE guild_id = :guild
UNION ALL SELECT 'granted', TOTAL(amount), NULL FROM quota_grants
    WHERE guild_id = :guild AND user_id = :user AND day = :day
UNION ALL SELECT state, TOTAL(credits), NULL FROM quota_entries
    WHERE guild_id = :guild AND user_id = :user AND day = :day GROUP BY state
UNION ALL SELECT 'everywhere', TOTAL(IIF(state = 'refunded', 0, credits)),
        TOTAL(attempts) + TOTAL(state = 'open' AND attempts = 0) FROM quota_entries
    WHERE user_id = :user AND day = :day
UNION ALL SELECT IIF(scope = -1, 'spend:global', 'spend:server'), images, cost_micros FROM quota_spend
    WHERE day = :day AND scope IN (:guild, -1)
"""


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


def facts_params(guild: int, user_id: int, role_ids: Iterable[int], day: str) -> dict[str, object]:
    return {"guild": guild, "user": user_id, "roles": json.dumps(list(role_ids)), "day": day}


def read_facts(conn: sqlite3.Connection, guild: int, user_id: int, role_ids: Iterable[int], day: str) -> Facts:
    return Facts.from_rows(conn.execute(FACTS, facts_params(guild, user_id, role_ids, day)).fetchall())
