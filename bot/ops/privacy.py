"""What the bot keeps about one member, handed over (`export_member`) or removed (`forget_member`), and the
retention pass that redacts old prompts (`apply_retention`).

Forgetting removes what the member wrote or sent (prompts, stored input images and where they came from, the
model's raw answers, moderation texts) and every link from a stored row to them, except what today's limits need:
 - a generation becomes an anonymous row: model, kind, status, tokens and timings stay (they are the server's
   spend by model); every other column is blanked. Blanking is by allow-list, so a column added later (a raw model
   answer, say) is blanked too without this module knowing its name. Its message id goes, so a Reroll or reply
   on the picture finds nothing to edit, and other members' edits of it lose it as a parent (their history no
   longer carries the member's words);
 - ledger entries of earlier days lose the member's id (counts and cost stay for `/usage`); today's spent and
   running entries keep it until the day ends, or the member could forget their way past today's limit;
   `apply_retention` anonymises them on a later day;
 - moderation log rows lose their text, term and detail; those inside the cool-down window keep the member's id
   (a cool-down counts them), the rest lose it. Active cool-downs stay, expired ones go;
 - grants of earlier days go; today's stay (they are part of today's limit). Limits an admin set for the member
   and the admin audit trail stay: they are the server's rules and its record, not the member's content.

Every table here will have one owner module (the generations/editing store, the ledger, the moderation store);
these functions are written against the current schema and are meant to move, table by table, into those owners.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

ANONYMOUS = 0  # the user id of rows that no longer belong to anyone (the CLI's requests use it as well)
DAY_SECONDS = 86_400

# Columns that say nothing about who asked or what: kept when a row is anonymised.
GENERATION_KEEP = frozenset(
    {
        "id",
        "created_at",
        "finished_at",
        "guild_id",
        "kind",
        "model",
        "input_images",
        "status",
        "error_kind",
        "prompt_tokens",
        "output_tokens",
        "total_tokens",
        "queued_ms",
        "upstream_ms",
        "mime_type",
        "image_bytes",
        "deleted_at",
        # Announced by the credits/real-cost and providers work; harmless while they do not exist.
        "provider",
        "model_version",
        "size",
        "credits",
        "cost_micros",
        "thinking_tokens",
    }
)
MODERATION_KEEP = frozenset({"id", "created_at", "user_id", "guild_id", "category", "source"})


class Store(Protocol):
    """The part of `bot.db.Database` used here."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


@dataclass(frozen=True, slots=True)
class ForgetReport:
    generations: int  # anonymised
    inputs: int  # input records deleted (with their bytes, if kept)
    ledger_anonymised: int
    ledger_kept_today: int  # today's entries that still carry the member's id, for today's limit
    grants_deleted: int
    moderation_anonymised: int
    moderation_kept_for_cooldown: int
    cooldowns_deleted: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    prompts_redacted: int
    inputs_dropped: int
    ledger_anonymised: int
    moderation_anonymised: int


async def _rows(conn: Any, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cursor = await conn.execute(sql, tuple(params))
    names = [d[0] for d in cursor.description]
    return [{name: _jsonable(value) for name, value in zip(names, row, strict=True)} for row in await cursor.fetchall()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


async def export_member(db: Store, user_id: int) -> dict[str, Any]:
    """Everything stored about a member, as a JSON-able dict. `SELECT *`, so columns added later are exported
    without changing this. Read in one transaction, so the parts agree with each other."""
    member = (user_id,)
    async with db.transaction() as conn:
        generations = await _rows(conn, "SELECT * FROM generations WHERE user_id = ? ORDER BY id", member)
        return {
            "user_id": user_id,
            "generations": generations,
            "generation_inputs": await _rows(
                conn,
                "SELECT i.* FROM generation_inputs i JOIN generations g ON g.id = i.generation_id"
                " WHERE g.user_id = ? ORDER BY i.generation_id, i.position",
                member,
            ),
            "quota_entries": await _rows(conn, "SELECT * FROM quota_entries WHERE user_id = ? ORDER BY id", member),
            "quota_grants": await _rows(conn, "SELECT * FROM quota_grants WHERE user_id = ? ORDER BY id", member),
            "quota_limits": await _rows(conn, "SELECT * FROM quota_user_limits WHERE user_id = ?", member),
            "quota_admin_actions": await _rows(
                conn, "SELECT * FROM quota_audit WHERE user_id = ? OR actor_id = ? ORDER BY id", member * 2
            ),
            "moderation_log": await _rows(conn, "SELECT * FROM moderation_log WHERE user_id = ? ORDER BY id", member),
            "moderation_cooldowns": await _rows(conn, "SELECT * FROM moderation_cooldowns WHERE user_id = ?", member),
            "moderation_terms_added": await _rows(
                conn, "SELECT * FROM moderation_terms WHERE added_by = ? ORDER BY added_at", member
            ),
        }


async def _columns(conn: Any, table: str) -> list[tuple[str, str, bool, Any]]:
    """(name, declared type, not null, default) of each column of `table`."""
    cursor = await conn.execute(f"PRAGMA table_info({table})")
    return [(row[1], str(row[2]).upper(), bool(row[3]), row[4]) for row in await cursor.fetchall()]


def _blank(declared: str, not_null: bool, default: Any) -> str:
    """The SQL value an anonymised column takes: its default, else NULL, else an empty value of its type."""
    if default is not None:
        return str(default)
    if not not_null:
        return "NULL"
    if "INT" in declared or "REAL" in declared or "NUM" in declared:
        return "0"
    return "x''" if "BLOB" in declared else "''"


async def _anonymise(conn: Any, table: str, keep: frozenset[str], where: str, params: tuple[Any, ...]) -> int:
    columns = await _columns(conn, table)
    sets = ", ".join(f"{name} = {_blank(kind, nn, default)}" for name, kind, nn, default in columns if name not in keep)
    cursor = await conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", params)
    return int(cursor.rowcount)


async def forget_member(
    db: Store, user_id: int, *, today: str, now: float, cooldown_window_seconds: float
) -> ForgetReport:
    """Remove what a member wrote or sent, in one transaction (see the module's docstring for what stays).
    `today` is the quota day key (YYYY-MM-DD in QUOTA_TIMEZONE) whose entries must keep counting."""
    if user_id == ANONYMOUS:
        raise ValueError("user id 0 is the anonymous user")
    member = (user_id,)
    async with db.transaction() as conn:
        mine = "SELECT id FROM generations WHERE user_id = ?"
        cursor = await conn.execute(f"DELETE FROM generation_inputs WHERE generation_id IN ({mine})", member)
        inputs = cursor.rowcount
        # Other members' edits of the member's pictures stop inheriting their words.
        await conn.execute(f"UPDATE generations SET parent_id = NULL WHERE parent_id IN ({mine})", member)
        generations = await _anonymise(conn, "generations", GENERATION_KEEP, "user_id = ?", member)
        await conn.execute(
            "UPDATE generations SET user_id = ?, deleted_at = COALESCE(deleted_at, ?) WHERE user_id = ?",
            (ANONYMOUS, now, user_id),
        )

        # Changing user_id fires none of the ledger's spend triggers: the day's spend stays as it is.
        cursor = await conn.execute(
            "UPDATE quota_entries SET user_id = ? WHERE user_id = ? AND (day < ? OR state = 'refunded')",
            (ANONYMOUS, user_id, today),
        )
        ledger_anonymised = cursor.rowcount
        cursor = await conn.execute("SELECT COUNT(*) FROM quota_entries WHERE user_id = ?", member)
        (ledger_kept,) = await cursor.fetchone()
        cursor = await conn.execute("DELETE FROM quota_grants WHERE user_id = ? AND day < ?", (user_id, today))
        grants = cursor.rowcount

        moderation = await _anonymise(conn, "moderation_log", MODERATION_KEEP, "user_id = ?", member)
        cursor = await conn.execute(
            "UPDATE moderation_log SET user_id = ? WHERE user_id = ? AND created_at <= ?",
            (ANONYMOUS, user_id, now - cooldown_window_seconds),
        )
        kept_for_cooldown = moderation - cursor.rowcount
        cursor = await conn.execute("DELETE FROM moderation_cooldowns WHERE user_id = ? AND until < ?", (user_id, now))
        cooldowns = cursor.rowcount
    return ForgetReport(
        generations=generations,
        inputs=inputs,
        ledger_anonymised=ledger_anonymised,
        ledger_kept_today=int(ledger_kept),
        grants_deleted=grants,
        moderation_anonymised=moderation,
        moderation_kept_for_cooldown=kept_for_cooldown,
        cooldowns_deleted=cooldowns,
    )


async def apply_retention(
    db: Store, *, prompt_retention_days: int, today: str, now: float, cooldown_window_seconds: float
) -> RetentionReport:
    """Run daily: redact prompts (and drop stored input bytes) older than `prompt_retention_days` (0: keep them),
    and finish forgetting: ids that `forget_member` kept for a day that has ended are anonymised now."""
    async with db.transaction() as conn:
        prompts = inputs = 0
        if prompt_retention_days > 0:
            cutoff = now - prompt_retention_days * DAY_SECONDS
            cursor = await conn.execute(
                "UPDATE generations SET prompt = '' WHERE created_at < ? AND prompt != ''", (cutoff,)
            )
            prompts = cursor.rowcount
            cursor = await conn.execute(
                "UPDATE generation_inputs SET data = NULL WHERE data IS NOT NULL AND generation_id IN"
                " (SELECT id FROM generations WHERE created_at < ?)",
                (cutoff,),
            )
            inputs = cursor.rowcount
        # A spent entry of a forgotten member points at an anonymous generation once its day is over.
        cursor = await conn.execute(
            "UPDATE quota_entries SET user_id = ? WHERE day < ? AND user_id != ? AND generation_id IN"
            " (SELECT id FROM generations WHERE user_id = ?)",
            (ANONYMOUS, today, ANONYMOUS, ANONYMOUS),
        )
        ledger = cursor.rowcount
        # A forgotten block has an empty text (a real prompt never is: empty prompts are refused before moderation).
        cursor = await conn.execute(
            "UPDATE moderation_log SET user_id = ? WHERE text = '' AND user_id != ? AND created_at <= ?",
            (ANONYMOUS, ANONYMOUS, now - cooldown_window_seconds),
        )
        moderation = cursor.rowcount
    return RetentionReport(prompts, inputs, ledger, moderation)
