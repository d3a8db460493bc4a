"""Appeals of the AI second opinion's blocks (Midjourney's pattern: a block by that tier offers an Appeal button).

`Appeals.appeal(guild, member, block id)` is what the Discord side calls when the button is pressed. At most
`MODERATION_APPEALS_PER_DAY` appeals per member in any 24 hours, wherever they were made. With
`MODERATION_APPEAL_MODEL` set, that model re-reads the prompt (charitably: it was appealed) and may overturn the
block: the block then stops counting toward a cool-down and the first model's cached verdict is replaced, so
sending the prompt again goes through. Without it the appeal is recorded for the server's moderators.

Every appeal and its result is a row of `moderation_appeals` (this module owns that table; the blocks themselves
are the store's), and `on_appeal` (the log channel, when the Discord side sets it) hears of each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import InvalidRequest
from bot.moderation.ai import NONE, AIJudgement, AIModerator, cache_key
from bot.storage.db import Tx
from bot.storage.rows import dict_rows

if TYPE_CHECKING:
    from bot.moderation.store import AuditEntry, Moderation

log = logging.getLogger(__name__)

_DAY = 86_400.0
MODERATORS = "moderators"  # `decided_by` when no model re-checks
Outcome = Literal["overturned", "upheld", "referred"]  # referred: no appeal model, the moderators will look


@dataclass(frozen=True, slots=True)
class AppealResult:
    id: int  # the appeal's row
    block_id: int
    outcome: Outcome
    decided_by: str  # the appeal model's id, or MODERATORS
    reason: str
    appeals_left: int  # the member's appeals left in the last 24 hours

    @property
    def overturned(self) -> bool:
        return self.outcome == "overturned"


# Hears of each appeal with the block it was about, after both are stored.
AppealHook = Callable[["AuditEntry", AppealResult], Awaitable[None]]


class Appeals:
    def __init__(self, store: Moderation, model: AIModerator | None, per_day: int) -> None:
        self.store = store
        self.model = model
        self.per_day = per_day
        self.on_appeal: AppealHook | None = None
        self._checking: set[int] = set()  # blocks whose appeal is being decided (a double press waits for none)

    async def appeal(self, guild_id: int | None, user_id: int, block_id: int) -> AppealResult:
        """Re-check one AI block of this member; raises `InvalidRequest` with what to tell them otherwise."""
        block = await self.store.block(block_id)
        if block is None or block.user_id != user_id or block.guild_id != guild_id:
            raise InvalidRequest("That block is not one of yours here, or it is no longer on record.")
        if block.tier != "ai":
            raise InvalidRequest("Only blocks by the AI second opinion can be appealed; ask this server's moderators.")
        if block.overturned_at is not None:
            raise InvalidRequest("That block was already overturned: send the prompt again.")
        db, now = self.store.db, self.store.clock()
        if await db.fetchone("SELECT 1 FROM moderation_appeals WHERE block_id=?", (block_id,)):
            raise InvalidRequest("You already appealed that block; ask this server's moderators if you disagree.")
        row = await db.fetchone(
            "SELECT COUNT(*) FROM moderation_appeals WHERE user_id=? AND created_at > ?", (user_id, now - _DAY)
        )
        used = row[0] if row else 0
        if used >= self.per_day:
            raise InvalidRequest(f"You have used your {self.per_day} appeals for today; try again tomorrow.")
        if block_id in self._checking:
            raise InvalidRequest("That appeal is already being checked; its answer comes in a moment.")
        self._checking.add(block_id)
        try:
            outcome, decided_by, reason = await self._decide(block, guild_id)
        finally:
            self._checking.discard(block_id)
        appeal_id = await db.insert(
            "INSERT INTO moderation_appeals (created_at, block_id, user_id, guild_id, outcome, decided_by, reason)"
            " VALUES (?,?,?,?,?,?,?)",
            (self.store.clock(), block_id, user_id, guild_id, outcome, decided_by, reason),
        )
        if outcome == "overturned":
            await self.store.overturn(block_id)
        result = AppealResult(appeal_id, block_id, outcome, decided_by, reason, self.per_day - used - 1)
        log.info("appeal of moderation block %s by user %s: %s by %s", block_id, user_id, outcome, decided_by)
        if self.on_appeal is not None:
            try:
                await self.on_appeal(block, result)
            except Exception:  # a broken log channel must not change what the member is told
                log.warning("the moderation appeal listener failed", exc_info=True)
        return result

    async def _decide(self, block: AuditEntry, guild_id: int | None) -> tuple[Outcome, str, str]:
        if self.model is None:
            return "referred", MODERATORS, "no appeal model: this server's moderators will look"
        judgement = await self.model.ask(block.text, guild_id=guild_id)
        if judgement.error:
            why = f"the appeal model could not answer ({judgement.error}): this server's moderators will look"
            return "referred", self.model.model, why
        harmful = judgement.harmful and judgement.confidence >= self.model.min_confidence
        if not harmful and self.store.ai is not None:
            # The first model would block the same prompt again: remember the appeal's answer instead.
            self.store.ai.remember(cache_key(block.text), AIJudgement(NONE, judgement.confidence, judgement.reason))
        return ("upheld" if harmful else "overturned"), self.model.model, judgement.reason or judgement.category

    async def purge(self, before: float) -> None:
        """Forget appeals older than the audit log's retention (called with the store's purge)."""
        await self.store.db.execute("DELETE FROM moderation_appeals WHERE created_at < ?", (before,))


# --- privacy: run inside the caller's transaction (`tx`; see bot.ops.privacy) --------------------------------------


async def export_member(tx: Tx, user_id: int) -> dict[str, list[dict[str, Any]]]:
    rows = await dict_rows(tx, "SELECT * FROM moderation_appeals WHERE user_id = ? ORDER BY id", (user_id,))
    return {"moderation_appeals": rows}


async def forget_member(tx: Tx, user_id: int, now: float) -> int:
    """Blank the answers to a member's appeals (they may quote the prompt); those of the last 24 hours keep the
    member's id, since the daily number of appeals counts them. Returns how many appeals were blanked."""
    blanked = await tx.execute("UPDATE moderation_appeals SET reason = '' WHERE user_id = ?", (user_id,))
    await tx.execute(
        "UPDATE moderation_appeals SET user_id = 0 WHERE user_id = ? AND created_at <= ?", (user_id, now - _DAY)
    )
    return blanked
