"""The moderation audit read for reports and handed over or forgotten for privacy (`bot.ops.usage`,
`bot.ops.privacy`); `store` owns everything else about these tables.

Forgetting blanks the texts (the prompt, the matched term, the detail) and keeps who-when-what-category: the
blocks inside the cool-down window keep the member's id (a cool-down counts them), the rest lose it, and the
daily retention pass anonymises the kept ones once the window has passed. Active cool-downs stay, expired ones go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import anonymise, dict_rows

ANONYMOUS = 0
KEPT_WHEN_FORGOTTEN = frozenset(
    {"id", "created_at", "user_id", "guild_id", "category", "source", "tier", "overturned_at", "provider"}
)


async def block_counts(db: Database, guild_id: int | None, start: float, end: float) -> list[tuple[str, str, int]]:
    """(tier, category, count) of the blocks recorded in [start, end), of one server or of all (None). The tier:
    `local` (the bot's rules), `ai` (its AI second opinion) or `upstream` (the provider's own filter)."""
    scope, params = ("", (start, end)) if guild_id is None else (" AND guild_id = ?", (start, end, guild_id))
    rows = await db.fetchall(
        "SELECT CASE WHEN source = 'google' THEN 'upstream' ELSE tier END AS t, category, COUNT(*) FROM moderation_log"
        f" WHERE created_at >= ? AND created_at < ?{scope} GROUP BY CASE WHEN source = 'google' THEN 'upstream'"
        " ELSE tier END, category",
        params,
    )
    counts = [(row[0], row[1], int(row[2])) for row in rows]
    return sorted(counts, key=lambda c: (-c[2], c[0], c[1]))


# --- privacy: run inside the caller's transaction (`tx`) ----------------------------------------------------------


async def export_member(tx: Tx, user_id: int) -> dict[str, list[dict[str, Any]]]:
    member = (user_id,)
    return {
        "moderation_log": await dict_rows(tx, "SELECT * FROM moderation_log WHERE user_id = ? ORDER BY id", member),
        "moderation_cooldowns": await dict_rows(tx, "SELECT * FROM moderation_cooldowns WHERE user_id = ?", member),
        "moderation_terms_added": await dict_rows(
            tx, "SELECT * FROM moderation_terms WHERE added_by = ? ORDER BY added_at", member
        ),
    }


@dataclass(frozen=True, slots=True)
class ModerationForgotten:
    anonymised: int  # rows whose texts were blanked
    kept_for_cooldown: int  # of those, rows that still carry the member's id
    cooldowns_deleted: int


async def forget_member(
    tx: Tx, dialect: Dialect, user_id: int, now: float, cooldown_window: float
) -> ModerationForgotten:
    blanked = await anonymise(tx, dialect, "moderation_log", KEPT_WHEN_FORGOTTEN, "user_id = ?", (user_id,))
    anonymous = await tx.execute(
        "UPDATE moderation_log SET user_id = ? WHERE user_id = ? AND created_at <= ?",
        (ANONYMOUS, user_id, now - cooldown_window),
    )
    cooldowns = await tx.execute("DELETE FROM moderation_cooldowns WHERE user_id = ? AND until < ?", (user_id, now))
    return ModerationForgotten(blanked, blanked - anonymous, cooldowns)


async def finish_forgetting(tx: Tx, now: float, cooldown_window: float) -> int:
    """Anonymise forgotten blocks (their text is empty; a real prompt never is: empty prompts are refused before
    moderation) once they no longer count toward a cool-down; returns how many."""
    return await tx.execute(
        "UPDATE moderation_log SET user_id = ? WHERE text = '' AND user_id != ? AND created_at <= ?",
        (ANONYMOUS, ANONYMOUS, now - cooldown_window),
    )
