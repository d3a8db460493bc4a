"""Moderation as the pipeline sees it: each server's rules from the database, the audit log and cool-downs.

`Moderation` implements the pipeline's `Moderator`: `check` evaluates every text that would reach the model
against the server's policy (cached in memory, dropped on every change so `/moderation add` applies to the next
request), records each block, and puts users with repeated blocks on a cool-down. The filter itself is the pure
`bot.moderation.filter`.

A cool-down follows the member: blocks add up wherever they happened (every server and DMs), and a cool-down
refuses the member's requests everywhere, not only where it started. It is stored with the place it started
(`guild_key`, 0 for DMs), whose moderators can lift it.

`second_opinion` asks the optional AI tier (`bot.moderation.ai`) about a request the word lists allowed; the
pipeline calls it once the door has answered the user, since a model call can outlast Discord's 3 seconds. Its
blocks are recorded like the others (tier "ai") and can be appealed (`appeal`, see `bot.moderation.appeals`).

`on_block`, when set (the Discord side sets it to post in a server's moderation log channel), hears of every
recorded block, ours or a provider's (Google's, a gateway's), after it is stored; its failures are logged and
never reach the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass, replace
from typing import Literal

from bot.config import DEFAULTS
from bot.errors import CoolingDown, ImageBlocked, InvalidRequest, ModerationBlocked, PromptBlocked
from bot.models import ImageRequest
from bot.moderation.ai import AIModerator
from bot.moderation.appeals import AppealResult, Appeals
from bot.moderation.filter import (
    CATEGORIES,
    DEFAULT_POLICY,
    OPTIONAL_CATEGORIES,
    Explanation,
    Policy,
    Verdict,
    evaluate,
    evaluate_conversation,
    explain,
)
from bot.moderation.text import fold, skeleton, tokens
from bot.ops.metrics import Metrics
from bot.storage.db import Database

log = logging.getLogger(__name__)

TermKind = Literal["block", "allow"]
# The bot's moderation (word lists or AI tier), or the image provider's filter ("google" in the table since Google
# was the only one; which provider refused is `AuditEntry.provider`).
BlockSource = Literal["bot", "google"]
Tier = Literal["local", "ai"]  # which tier of the bot's moderation decided
TERM_KINDS: tuple[TermKind, ...] = ("block", "allow")
MAX_TERM_CHARS = 100
MAX_AUDIT_TEXT_CHARS = 4000
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ModerationConfig:
    """A server's moderation settings, for `/moderation list`."""

    guild_id: int | None
    enabled: dict[str, bool]  # every category; csam is always True
    blocked_terms: tuple[str, ...]
    allowed_terms: tuple[str, ...]
    log_channel_id: int | None
    moderation_enabled: bool  # False: the operator switched moderation off, only csam applies


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    created_at: float
    user_id: int
    guild_id: int | None
    channel_id: int
    text: str
    category: str
    term: str | None
    source: BlockSource
    detail: str
    tier: Tier = "local"
    overturned_at: float | None = None  # an appeal overturned this block: it no longer counts toward a cool-down
    provider: str | None = None  # "google" blocks: the name users read for the provider that refused (None: Google)


# Hears of each recorded block, with the end of the cool-down that block started (None: it started none).
BlockHook = Callable[[AuditEntry, float | None], Awaitable[None]]


def term_key(term: str) -> str:
    """How the filter reads a term: two spellings that read the same ("N.U.D.E", "nude") are one entry."""
    words = [skeleton(t.text) for t in tokens(fold(term.rstrip("*")))]
    return " ".join(words) + ("*" if term.endswith("*") and words else "")


class Moderation:
    def __init__(
        self,
        db: Database,
        *,
        enabled: bool = DEFAULTS.moderation_enabled,
        cooldown_blocks: int = DEFAULTS.moderation_cooldown_blocks,
        cooldown_window_seconds: float = DEFAULTS.moderation_cooldown_window_seconds,
        cooldown_seconds: float = DEFAULTS.moderation_cooldown_seconds,
        retention_days: int = DEFAULTS.moderation_log_retention_days,
        max_terms: int = DEFAULTS.moderation_max_server_terms,
        ai: AIModerator | None = None,
        appeal_model: AIModerator | None = None,
        appeals_per_day: int = DEFAULTS.moderation_appeals_per_day,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics.disabled()
        self.enabled = enabled
        self.cooldown_blocks = cooldown_blocks
        self.cooldown_window_seconds = cooldown_window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.retention_days = retention_days
        self.max_terms = max_terms
        self.clock = clock
        self._policies: dict[int, Policy] = {}
        self._last_purge = 0.0
        self.on_block: BlockHook | None = None
        self.ai = ai  # the optional second opinion; None: off
        self.appeals = Appeals(self, appeal_model, appeals_per_day)

    # --- the pipeline's Moderator ---------------------------------------------------------------------------

    async def check(self, request: ImageRequest) -> None:
        """Raise `CoolingDown` or `ModerationBlocked`, or return to let the request through."""
        active = await self.active_cooldown(request.user_id)
        if active is not None:
            ends, started_in = active
            raise CoolingDown(ends, elsewhere=started_in != request.guild_id)
        texts = [*request.history, request.prompt]
        index, verdict = evaluate_conversation(texts, await self.policy(request.guild_id))
        if verdict.allowed:
            return
        if 0 <= index < len(request.history):
            # Only an earlier instruction matches (perhaps someone else's, perhaps a term added since): refuse,
            # but neither log it as this user's prompt nor count it toward their cool-down.
            raise ModerationBlocked(
                verdict.category or "",
                None,
                reason=verdict.explanation,
                in_history=True,
                in_dm=request.guild_id is None,
            )
        await self._block(request, texts[index] if index >= 0 else "\n".join(texts), verdict)

    async def second_opinion(self, request: ImageRequest) -> None:
        """Ask the AI tier, when there is one, about a request `check` let through (its prompt read together with
        the conversation before it, and its input images when the settings send them); raise `ModerationBlocked`
        with `tier="ai"` and the `appeal_id` of the recorded block, or return."""
        if self.ai is None or not self.enabled:
            return
        text = "\n".join([*request.history, request.prompt])
        verdict = await self.ai.judge(text, request.images, guild_id=request.guild_id)
        if verdict.blocked:
            await self._block(request, text, verdict)

    async def appeal(self, guild_id: int | None, user_id: int, audit_id: int) -> AppealResult:
        """The Appeal button of an AI block: see `bot.moderation.appeals`."""
        return await self.appeals.appeal(guild_id, user_id, audit_id)

    async def _block(self, request: ImageRequest, text: str, verdict: Verdict) -> None:
        tier: Tier = "ai" if verdict.tier == "ai" else "local"
        detail = f"{verdict.explanation} [{verdict.decided_by}]"
        until, entry_id = await self._record(request, text, verdict.category or "", verdict.term, "bot", detail, tier)
        log.info(
            "moderation (%s) blocked a request of user %s in guild %s: %s (%s)",
            tier,
            request.user_id,
            request.guild_id,
            verdict.category,
            verdict.term,
        )
        # csam gets no hint: telling the user what to rephrase would coach them around the rule.
        hint = None if verdict.category == "csam" else verdict.written
        raise ModerationBlocked(
            verdict.category or "",
            hint,
            reason=verdict.explanation,
            in_dm=request.guild_id is None,
            cooldown_until=until,
            tier=tier,
            appeal_id=entry_id if tier == "ai" else None,  # the Discord side offers an Appeal button
        )

    async def record_upstream_block(self, request: ImageRequest, exc: PromptBlocked | ImageBlocked) -> None:
        what = "prompt refused" if isinstance(exc, PromptBlocked) else "image refused"
        detail = f"{what}: {exc.message}" if exc.message else what
        # The pipeline re-raises `exc` to the user, who should hear that this block started a cool-down.
        exc.cooldown_until, _ = await self._record(
            request, request.prompt, exc.reason, None, "google", detail, provider=exc.provider_label
        )

    async def _record(
        self,
        request: ImageRequest,
        text: str,
        category: str,
        term: str | None,
        source: BlockSource,
        detail: str,
        tier: Tier = "local",
        *,
        provider: str | None = None,
    ) -> tuple[float | None, int]:
        """Store the block; returns the end of the cool-down it started (None: it started none) and its id."""
        now = self.clock()
        guild_key = request.guild_id or 0
        entry = AuditEntry(
            id=0,  # set once inserted
            created_at=now,
            user_id=request.user_id,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            text=text[:MAX_AUDIT_TEXT_CHARS],
            category=category,
            term=term,
            source=source,
            detail=detail[:MAX_AUDIT_TEXT_CHARS],
            tier=tier,
            provider=provider,
        )
        until = None
        # A member's blocks are counted and their cool-down written by one process at a time.
        async with self.db.transaction(lock=f"moderation:{request.user_id}") as tx:
            entry_id = await tx.insert(
                "INSERT INTO moderation_log (created_at, user_id, guild_id, channel_id, text, category, term,"
                " source, detail, tier, overturned_at, provider) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                astuple(entry)[1:],
            )
            entry = replace(entry, id=entry_id)
            # Blocks count wherever they happened, from the latest cool-down (or lift) anywhere on.
            row = await tx.fetchone("SELECT MAX(since) FROM moderation_cooldowns WHERE user_id=?", (request.user_id,))
            counted_from = max(now - self.cooldown_window_seconds, row[0] if row and row[0] is not None else 0.0)
            row = await tx.fetchone(
                "SELECT COUNT(*) FROM moderation_log WHERE user_id=? AND created_at > ?"
                " AND overturned_at IS NULL",  # a block overturned on appeal was no block
                (request.user_id, counted_from),
            )
            blocks = row[0] if row else 0
            if blocks >= self.cooldown_blocks:
                until = now + self.cooldown_seconds
                await tx.execute(
                    "INSERT INTO moderation_cooldowns (guild_key, user_id, until, since) VALUES (?,?,?,?)"
                    " ON CONFLICT (guild_key, user_id) DO UPDATE SET until=excluded.until, since=excluded.since",
                    (guild_key, request.user_id, until, now),
                )
                log.info("user %s in guild %s is on a moderation cool-down", request.user_id, request.guild_id)
        # The metrics' tier: the bot's own (local rules, or the AI second opinion), or the provider's filter.
        self.metrics.moderation_blocked(tier="upstream" if source == "google" else tier, category=category)
        if now - self._last_purge > _DAY:
            await self.purge_expired()
        if self.on_block is not None:
            try:
                await self.on_block(entry, until)
            except Exception:  # a broken log channel must not change what the user is told
                log.warning("the moderation block listener failed", exc_info=True)
        return until, entry.id

    # --- cool-downs and audit -------------------------------------------------------------------------------

    async def active_cooldown(self, user_id: int) -> tuple[float, int | None] | None:
        """The member's cool-down in force, wherever it started: (when it ends, the server it started in; None
        for DMs), the one ending last if there are several."""
        row = await self.db.fetchone(
            "SELECT until, guild_key FROM moderation_cooldowns WHERE user_id=? AND until > ? ORDER BY until DESC"
            " LIMIT 1",
            (user_id, self.clock()),
        )
        return (row[0], row[1] or None) if row else None

    async def cooldown_until(self, guild_id: int | None, user_id: int) -> float | None:
        """The end of the cool-down that started in this server (None: in DMs), if it still runs."""
        row = await self.db.fetchone(
            "SELECT until FROM moderation_cooldowns WHERE guild_key=? AND user_id=?", (guild_id or 0, user_id)
        )
        return row[0] if row and row[0] > self.clock() else None

    async def lift_cooldown(self, guild_id: int | None, user_id: int) -> bool:
        """End a user's cool-down now; earlier blocks no longer count toward the next. False if there was none."""
        active = await self.cooldown_until(guild_id, user_id) is not None
        now = self.clock()
        await self.db.execute(
            "UPDATE moderation_cooldowns SET until=?, since=? WHERE guild_key=? AND user_id=?",
            (now, now, guild_id or 0, user_id),
        )
        return active

    async def log(self, guild_id: int | None, limit: int = 20, *, user_id: int | None = None) -> list[AuditEntry]:
        """The most recent blocks in a server (or in DMs for None), newest first."""
        sql = "SELECT * FROM moderation_log WHERE guild_id IS NOT DISTINCT FROM ?"
        params: list[object] = [guild_id]
        if user_id is not None:
            sql += " AND user_id=?"
            params.append(user_id)
        rows = await self.db.fetchall(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit))
        return [AuditEntry(**dict(row)) for row in rows]

    async def block(self, entry_id: int) -> AuditEntry | None:
        """One recorded block, by id (None once purged)."""
        row = await self.db.fetchone("SELECT * FROM moderation_log WHERE id=?", (entry_id,))
        return AuditEntry(**dict(row)) if row else None

    async def overturn(self, entry_id: int) -> None:
        """An appeal overturned this block: it stays on record, but no longer counts toward a cool-down."""
        await self.db.execute(
            "UPDATE moderation_log SET overturned_at=? WHERE id=? AND overturned_at IS NULL", (self.clock(), entry_id)
        )

    async def purge_expired(self) -> int:
        """Delete audit rows older than the retention period; returns how many went."""
        now = self._last_purge = self.clock()
        async with self.db.transaction() as tx:
            purged = await tx.execute(
                "DELETE FROM moderation_log WHERE created_at < ?", (now - self.retention_days * _DAY,)
            )
            # A cool-down row matters while it runs or while its blocks can still add up to the next one.
            await tx.execute(
                "DELETE FROM moderation_cooldowns WHERE until < ? AND since < ?",
                (now, now - self.cooldown_window_seconds),
            )
        await self.appeals.purge(now - self.retention_days * _DAY)
        if purged:
            log.info("purged %d moderation log rows older than %d days", purged, self.retention_days)
        return purged

    # --- server configuration -------------------------------------------------------------------------------

    async def policy(self, guild_id: int | None) -> Policy:
        if not self.enabled:
            return _CSAM_ONLY
        if guild_id is None:
            return DEFAULT_POLICY
        policy = self._policies.get(guild_id)
        if policy is None:
            policy = self._policies[guild_id] = await self._load(guild_id)
        return policy

    async def _load(self, guild_id: int) -> Policy:
        categories = await self.db.fetchall(
            "SELECT category FROM moderation_categories WHERE guild_id=? AND enabled=0", (guild_id,)
        )
        terms = await self.db.fetchall(
            "SELECT kind, term FROM moderation_terms WHERE guild_id=? ORDER BY added_at", (guild_id,)
        )
        return Policy(
            disabled=frozenset(row[0] for row in categories),
            blocked_terms=tuple(row[1] for row in terms if row[0] == "block"),
            allowed_terms=tuple(row[1] for row in terms if row[0] == "allow"),
        )

    async def evaluate(self, guild_id: int | None, text: str) -> Verdict:
        return evaluate(text, await self.policy(guild_id))

    async def explain(self, guild_id: int | None, text: str) -> Explanation:
        """For `/moderation test`: what the filter sees in `text` under this server's rules, and the AI second
        opinion's answer when the word lists allow it (a test costs one model call, then it is cached)."""
        explanation = explain(text, await self.policy(guild_id))
        if explanation.verdict.blocked or self.ai is None or not self.enabled:
            return explanation
        judgement = await self.ai.ask(text, guild_id=guild_id)
        note = judgement.error or f"{judgement.category} ({judgement.confidence:.2f}): {judgement.reason}"
        return replace(explanation, verdict=self.ai.verdict(judgement), ai_note=f"AI second opinion: {note}")

    async def set_category(self, guild_id: int, category: str, enabled: bool, *, by: int | None = None) -> None:
        if category == "csam":
            if enabled:
                return
            raise InvalidRequest(
                "The csam category (sexual content involving minors) is always on and cannot be switched off."
            )
        if category not in OPTIONAL_CATEGORIES:
            raise InvalidRequest(f"Unknown category {category!r}; choose one of {', '.join(OPTIONAL_CATEGORIES)}.")
        await self.db.execute(
            "INSERT INTO moderation_categories (guild_id, category, enabled, updated_at, updated_by)"
            " VALUES (?,?,?,?,?) ON CONFLICT (guild_id, category) DO UPDATE SET enabled=excluded.enabled,"
            " updated_at=excluded.updated_at, updated_by=excluded.updated_by",
            (guild_id, category, int(enabled), self.clock(), by),
        )
        self._policies.pop(guild_id, None)

    async def add_term(self, guild_id: int, term: str, kind: str = "block", *, by: int | None = None) -> bool:
        """Add a server term; False when the server already has one that reads the same."""
        term = " ".join(term.split())
        key = term_key(term)
        if kind not in TERM_KINDS:
            raise InvalidRequest(f"A term is either 'block' or 'allow', not {kind!r}.")
        if not key.strip("*"):
            raise InvalidRequest("That term has no letters or digits to match.")
        if len(term) > MAX_TERM_CHARS:
            raise InvalidRequest(f"Terms are at most {MAX_TERM_CHARS} characters long.")
        if kind == "allow" and evaluate(term.rstrip("*")).category == "csam":
            raise InvalidRequest("That term is part of the csam rule, which no server setting can relax.")
        row = await self.db.fetchone("SELECT COUNT(*) FROM moderation_terms WHERE guild_id=?", (guild_id,))
        if row and row[0] >= self.max_terms:
            raise InvalidRequest(f"This server already has {self.max_terms} terms; remove some first.")
        added = await self.db.execute(
            "INSERT INTO moderation_terms (guild_id, kind, term, normalised, added_at, added_by)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (guild_id, kind, term, key, self.clock(), by),
        )
        self._policies.pop(guild_id, None)
        return added > 0

    async def remove_term(self, guild_id: int, term: str, kind: str | None = None) -> bool:
        """Remove a server term (of either kind unless `kind` is given); False when there was none."""
        sql = "DELETE FROM moderation_terms WHERE guild_id=? AND normalised=?"
        params: tuple[object, ...] = (guild_id, term_key(" ".join(term.split())))
        if kind is not None:
            sql, params = sql + " AND kind=?", (*params, kind)
        removed = await self.db.execute(sql, params)
        self._policies.pop(guild_id, None)
        return removed > 0

    async def list_config(self, guild_id: int | None) -> ModerationConfig:
        policy = await self.policy(guild_id)
        stored = await self._load(guild_id) if guild_id is not None else DEFAULT_POLICY
        return ModerationConfig(
            guild_id=guild_id,
            enabled={c: policy.enabled(c) for c in CATEGORIES},
            blocked_terms=stored.blocked_terms,
            allowed_terms=stored.allowed_terms,
            log_channel_id=await self.get_log_channel(guild_id) if guild_id is not None else None,
            moderation_enabled=self.enabled,
        )

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        await self.db.execute(
            "INSERT INTO moderation_guilds (guild_id, log_channel_id, updated_at) VALUES (?,?,?)"
            " ON CONFLICT (guild_id) DO UPDATE SET log_channel_id=excluded.log_channel_id,"
            " updated_at=excluded.updated_at",
            (guild_id, channel_id, self.clock()),
        )

    async def get_log_channel(self, guild_id: int) -> int | None:
        row = await self.db.fetchone("SELECT log_channel_id FROM moderation_guilds WHERE guild_id=?", (guild_id,))
        return row[0] if row else None


_CSAM_ONLY = Policy.csam_only()
