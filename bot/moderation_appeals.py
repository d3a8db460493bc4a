"""Appeals of the AI second opinion's blocks (Midjourney's pattern: a block by that tier offers an Appeal button).

`Appeals.appeal(guild, member, audit id)` is the hook the Discord side calls when the button is pressed. At most
`MODERATION_APPEALS_PER_DAY` appeals per member in any 24 hours. With `MODERATION_APPEAL_MODEL` set, that model
re-reads the prompt (charitably: it was appealed) and may overturn the block: the block then stops counting
toward a cool-down and the first model's cached verdict is replaced, so sending the prompt again goes through.
Without it the appeal is recorded for the server's moderators. Every appeal and its result is a row of the audit
log (source "appeal"), and `on_appeal` (the log channel, when the Discord side sets it) hears of each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import InvalidRequest
from bot.moderation_ai import NONE, AIJudgement, AIModerator, cache_key

if TYPE_CHECKING:
    from bot.moderation_store import AuditEntry, Moderation

log = logging.getLogger(__name__)

_DAY = 86_400.0
APPEAL, OVERTURNED = "appeal", "ai-overturned"
# Audit sources that are not blocks, so never count toward a cool-down.
NOT_BLOCKS = f"'{APPEAL}', '{OVERTURNED}'"


@dataclass(frozen=True, slots=True)
class AppealResult:
    overturned: bool
    decided_by: str  # the appeal model's id, or "moderators" when no model re-checks
    reason: str
    appeals_left: int


AppealHook = Callable[["AuditEntry", AppealResult], Awaitable[None]]


class Appeals:
    def __init__(self, store: Moderation, model: AIModerator | None, per_day: int) -> None:
        self.store = store
        self.model = model
        self.per_day = per_day
        self.on_appeal: AppealHook | None = None

    async def appeal(self, guild_id: int | None, user_id: int, audit_id: int) -> AppealResult:
        """Re-check one AI block of this member; raises `InvalidRequest` with what to tell them otherwise."""
        db, now = self.store.db, self.store.clock()
        row = await db.fetchone("SELECT * FROM moderation_log WHERE id=?", (audit_id,))
        entry = self.store.entry(row) if row else None
        if entry is None or entry.user_id != user_id or entry.guild_id != guild_id:
            raise InvalidRequest("That block is not one of yours, or it is no longer on record.")
        if entry.source == OVERTURNED:
            raise InvalidRequest("That block was already overturned: send the prompt again.")
        if entry.source != "ai":
            raise InvalidRequest("Only blocks by the AI second opinion can be appealed; ask this server's moderators.")
        done = await db.fetchone(
            "SELECT COUNT(*) FROM moderation_log WHERE user_id=? AND source=? AND created_at > ?",
            (user_id, APPEAL, now - _DAY),
        )
        used = done[0] if done else 0
        if used >= self.per_day:
            raise InvalidRequest(f"You have used your {self.per_day} appeals for today; try again tomorrow.")
        result = await self._decide(entry, self.per_day - used - 1)
        outcome = "overturned" if result.overturned else ("upheld" if self.model else "sent to the moderators")
        detail = f"appeal of block #{audit_id}: {outcome} by {result.decided_by}: {result.reason}"
        appeal = await self.store.record_event(entry, APPEAL, detail)
        if result.overturned:
            await db.execute("UPDATE moderation_log SET source=? WHERE id=?", (OVERTURNED, audit_id))
        log.info("appeal of moderation block %s by user %s: %s", audit_id, user_id, outcome)
        if self.on_appeal is not None:
            try:
                await self.on_appeal(appeal, result)
            except Exception:  # a broken log channel must not change what the member is told
                log.warning("the moderation appeal listener failed", exc_info=True)
        return result

    async def _decide(self, entry: AuditEntry, left: int) -> AppealResult:
        if self.model is None:
            return AppealResult(False, "moderators", "no appeal model: the server's moderators will look", left)
        judgement = await self.model.ask(entry.text)
        if judgement.error:
            return AppealResult(False, self.model.model, f"the appeal model could not answer ({judgement.error})", left)
        harmful = judgement.harmful and judgement.confidence >= self.model.min_confidence
        if not harmful and self.store.ai is not None:
            # The first model would block the same prompt again: remember the appeal's answer instead.
            self.store.ai.remember(cache_key(entry.text), AIJudgement(NONE, judgement.confidence, judgement.reason))
        return AppealResult(not harmful, self.model.model, judgement.reason or judgement.category, left)
