"""What the bot keeps about one member, handed over (`export_member`) or removed (`forget_member`), and the
retention pass that redacts old prompts (`apply_retention`).

Forgetting removes what the member wrote or sent (prompts, stored input images and where they came from, the
model's raw answers, moderation texts) and every link from a stored row to them, except what today's limits need.
Each table's owner says what that means for its rows (`bot.editing.generations`, `bot.quota.records`,
`bot.moderation.records`, `bot.moderation.appeals`, `bot.relax.store`); this module runs them together in one
transaction, so a member is never half forgotten, and an export is one consistent picture. Both engines (SQLite,
PostgreSQL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.editing import generations
from bot.moderation import appeals
from bot.moderation import records as moderation
from bot.quota import records as ledger
from bot.relax import store as relax
from bot.storage.db import Database

ANONYMOUS = generations.ANONYMOUS
DAY_SECONDS = 86_400


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
    appeals_blanked: int = 0
    relax_jobs_deleted: int = 0  # ended ones; a live one is deleted by the retention pass once it has ended

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    prompts_redacted: int
    inputs_dropped: int
    ledger_anonymised: int
    moderation_anonymised: int
    relax_jobs_deleted: int = 0  # ended relax jobs, with their requests


async def export_member(db: Database, user_id: int) -> dict[str, Any]:
    """Everything stored about a member, as a JSON-able dict (every column, so columns added later are exported
    without changing this)."""
    async with db.transaction() as tx:
        return {
            "user_id": user_id,
            **await generations.export_member(tx, user_id),
            **await ledger.export_member(tx, user_id),
            **await moderation.export_member(tx, user_id),
            **await appeals.export_member(tx, user_id),
            **await relax.export_member(tx, user_id),
        }


async def forget_member(
    db: Database, user_id: int, *, today: str, now: float, cooldown_window_seconds: float
) -> ForgetReport:
    """Remove what a member wrote or sent, in one transaction (see the owners for what stays). `today` is the
    quota day key (YYYY-MM-DD in QUOTA_TIMEZONE) whose entries must keep counting."""
    if user_id == ANONYMOUS:
        raise ValueError("user id 0 is the anonymous user")
    async with db.transaction() as tx:
        made, inputs = await generations.forget_member(tx, db.dialect, user_id, now)
        spent = await ledger.forget_member(tx, user_id, today)
        blocks = await moderation.forget_member(tx, db.dialect, user_id, now, cooldown_window_seconds)
        appealed = await appeals.forget_member(tx, user_id, now)
        relaxed = await relax.forget_member(tx, user_id)
    return ForgetReport(
        generations=made,
        inputs=inputs,
        ledger_anonymised=spent.anonymised,
        ledger_kept_today=spent.kept_today,
        grants_deleted=spent.grants_deleted,
        moderation_anonymised=blocks.anonymised,
        moderation_kept_for_cooldown=blocks.kept_for_cooldown,
        cooldowns_deleted=blocks.cooldowns_deleted,
        appeals_blanked=appealed,
        relax_jobs_deleted=relaxed,
    )


async def apply_retention(
    db: Database, *, prompt_retention_days: int, today: str, now: float, cooldown_window_seconds: float
) -> RetentionReport:
    """Run daily: redact prompts (and drop stored input bytes) older than `prompt_retention_days` (0: keep them),
    delete ended relax jobs, and finish forgetting: ids that `forget_member` kept for a day that has ended are
    anonymised now."""
    async with db.transaction() as tx:
        prompts = inputs = 0
        if prompt_retention_days > 0:
            prompts, inputs = await generations.redact_older_than(tx, now - prompt_retention_days * DAY_SECONDS)
        relaxed = await relax.delete_ended(tx)
        spent = await ledger.finish_forgetting(tx, today)
        blocks = await moderation.finish_forgetting(tx, now, cooldown_window_seconds)
    return RetentionReport(prompts, inputs, spent, blocks, relaxed)
