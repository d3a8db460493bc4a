"""The quota ledger: a request reserves one unit when it is accepted, commits it when the image was delivered,
and is refunded on every other ending. Each entry says why it ended.

Every decision (the member's limit, their usage today, the server's and the bot's spend) is read inside the same
`BEGIN IMMEDIATE` transaction as the row it leads to, so concurrent requests, even from another process on the
same file, can never overshoot a limit or a cap. A refused request writes nothing. Open reservations count
against the member's quota and against the spending caps, so a burst of queued jobs cannot slip past either.

Reserve, commit and refund are synchronous functions run whole on the database thread, and those that arrive
together share one transaction (`bot.quota_batch`): nothing can interleave between a read and its write, and a
burst costs one round trip to the database thread instead of one per statement (see bench/quota.py).

How limits combine and what a quota day is: see `bot.quota_limits`. Admin controls: `bot.quota_admin`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.errors import BudgetExhausted, QuotaExceeded
from bot.models import ImageRequest, Reservation
from bot.quota.admin import QuotaAdmin
from bot.quota.batch import GroupCommit
from bot.quota.limits import QuotaDays, QuotaStatus, Spend, resolve_limit
from bot.storage.db import Database

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

GLOBAL_SCOPE = -1  # quota_spend.scope of the whole bot's totals
NO_GUILD = 0  # guild key of DMs and the CLI

# Everything a decision (or a status) needs, in one statement: limits, grants, usage by state, spend.
_FACTS = """
SELECT 'user' AS kind, daily_limit AS a, NULL AS b FROM quota_user_limits
    WHERE guild_id = :guild AND user_id = :user
UNION ALL SELECT 'role', daily_limit, role_id FROM quota_role_limits
    WHERE guild_id = :guild AND role_id IN (SELECT value FROM json_each(:roles))
UNION ALL SELECT 'server', daily_limit, NULL FROM quota_server_limits WHERE guild_id = :guild
UNION ALL SELECT 'granted', TOTAL(amount), NULL FROM quota_grants
    WHERE guild_id = :guild AND user_id = :user AND day = :day
UNION ALL SELECT state, COUNT(*), NULL FROM quota_entries
    WHERE guild_id = :guild AND user_id = :user AND day = :day GROUP BY state
UNION ALL SELECT IIF(scope = -1, 'spend:global', 'spend:server'), images, cost_micros FROM quota_spend
    WHERE day = :day AND scope IN (:guild, -1)
"""


def to_micros(usd: float) -> int:
    """Costs are summed as integer millionths of a dollar so that totals and cap checks are exact."""
    return round(usd * 1_000_000)


@dataclass(slots=True)
class _Facts:
    user_override: int | None = None
    roles: list[tuple[int, int]] = field(default_factory=list)
    server_default: int | None = None
    granted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    server_spend: tuple[int, int] = (0, 0)  # images, cost in micros
    global_spend: tuple[int, int] = (0, 0)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> _Facts:
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
                case "spend:server":
                    facts.server_spend = (a, b)
                case "spend:global":
                    facts.global_spend = (a, b)
                case state:
                    facts.states[state] = a
        return facts


def _facts_params(guild: int, user_id: int, role_ids: Iterable[int], day: str) -> dict[str, object]:
    return {"guild": guild, "user": user_id, "roles": json.dumps(list(role_ids)), "day": day}


def _facts(conn: sqlite3.Connection, guild: int, user_id: int, role_ids: Iterable[int], day: str) -> _Facts:
    return _Facts.from_rows(conn.execute(_FACTS, _facts_params(guild, user_id, role_ids, day)).fetchall())


class QuotaLedger(QuotaAdmin):
    """Implements `bot.pipeline.Quota`. Caps and limits use -1 for "none"/"unlimited"."""

    def __init__(
        self,
        db: Database,
        *,
        daily_quota: int,
        timezone: str | ZoneInfo = "UTC",
        price_per_image_usd: float = 0.0,
        server_daily_image_cap: int = -1,
        global_daily_image_cap: int = -1,
        server_daily_cost_cap_usd: float = -1.0,
        global_daily_cost_cap_usd: float = -1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.daily_quota = daily_quota
        self.days = QuotaDays(timezone)
        self.price_micros = to_micros(price_per_image_usd)
        self.server_image_cap = None if server_daily_image_cap < 0 else server_daily_image_cap
        self.global_image_cap = None if global_daily_image_cap < 0 else global_daily_image_cap
        self.server_cost_cap = None if server_daily_cost_cap_usd < 0 else to_micros(server_daily_cost_cap_usd)
        self.global_cost_cap = None if global_daily_cost_cap_usd < 0 else to_micros(global_daily_cost_cap_usd)
        self.clock = clock
        self._batch = GroupCommit(db)
        self._orphans: set[asyncio.Future[bool]] = set()

    @classmethod
    def from_settings(cls, db: Database, settings: Settings, *, clock: Callable[[], float] = time.time) -> QuotaLedger:
        return cls(
            db,
            daily_quota=settings.daily_quota,
            timezone=settings.quota_timezone,
            price_per_image_usd=settings.price_per_image_usd,
            server_daily_image_cap=settings.server_daily_image_cap,
            global_daily_image_cap=settings.global_daily_image_cap,
            server_daily_cost_cap_usd=settings.server_daily_cost_cap_usd,
            global_daily_cost_cap_usd=settings.global_daily_cost_cap_usd,
            clock=clock,
        )

    # --- the pipeline's side ----------------------------------------------------------------------------------

    async def reserve(self, request: ImageRequest) -> Reservation:
        """Hold one unit for `request`, or raise `QuotaExceeded` (the member's limit) or `BudgetExhausted` (a
        server or global cap). The member's quota is checked first: it is the answer they can act on."""
        return await self._batch.run(self._reserve, request, self.clock(), orphan=self._refund_orphan)

    def _reserve(self, conn: sqlite3.Connection, request: ImageRequest, now: float) -> Reservation:
        guild = request.guild_id or NO_GUILD
        day, resets_at = self.days.day_key(now), self.days.next_reset(now)
        facts = _facts(conn, guild, request.user_id, request.role_ids, day)
        status = self._status(request.user_id, guild, day, resets_at, facts)
        if status.left is not None and status.left < 1:
            raise QuotaExceeded(status.allowance or 0, resets_at)
        if guild != NO_GUILD and self._over(facts.server_spend, self.server_image_cap, self.server_cost_cap):
            raise BudgetExhausted("server", resets_at)
        if self._over(facts.global_spend, self.global_image_cap, self.global_cost_cap):
            raise BudgetExhausted("global", resets_at)
        entry_id = conn.execute(
            "INSERT INTO quota_entries (day, guild_id, user_id, cost_micros, created_at) VALUES (?,?,?,?,?)",
            (day, guild, request.user_id, self.price_micros, now),
        ).lastrowid
        assert entry_id is not None
        remaining = None if status.left is None else status.left - 1
        return Reservation(entry_id, request.user_id, request.guild_id, status.allowance, remaining, resets_at)

    def budget_reached(self, spend: Spend) -> bool:
        """Whether a cap refuses the next image, judged as `reserve` judges it."""
        cost_cap = None if spend.cost_cap_usd is None else to_micros(spend.cost_cap_usd)
        return self._over((spend.images, to_micros(spend.cost_usd)), spend.image_cap, cost_cap)

    async def current(self, reservation: Reservation, request: ImageRequest) -> Reservation:
        """The same held unit with the numbers as they stand now (what `/quota` says at this moment): the ones taken
        at reservation miss everything since (other requests ending in either order, grants, new limits)."""
        status = await self.status(request.user_id, request.guild_id, request.role_ids)
        return dataclasses.replace(reservation, limit=status.allowance, remaining=status.left)

    def _over(self, spend: tuple[int, int], image_cap: int | None, cost_cap: int | None) -> bool:
        """Whether one more image (at the estimated price) would pass a cap."""
        images, cost = spend
        return (image_cap is not None and images + 1 > image_cap) or (
            cost_cap is not None and cost + self.price_micros > cost_cap
        )

    def _refund_orphan(self, reservation: Reservation) -> None:
        """A reserve whose caller was cancelled meanwhile still reserved; nobody will end it, so give it back."""
        task = asyncio.ensure_future(self.refund(reservation, "Cancelled"))
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    async def drain(self) -> None:
        """Wait until every operation submitted so far, and the refunds of reservations whose caller was
        cancelled, have reached the database; call before closing it."""
        while True:
            await self._batch.wait_idle()
            if not self._orphans:
                return
            await asyncio.gather(*self._orphans, return_exceptions=True)

    async def commit(self, reservation: Reservation, generation_id: int, cost_usd: float) -> bool:
        """The image was delivered. False (and nothing changes) if the reservation had already ended."""
        sql = ", generation_id = ?, cost_micros = ?"
        extra = (generation_id, to_micros(cost_usd))
        return await self._end(reservation, "committed", "delivered", sql, extra)

    async def refund(self, reservation: Reservation, reason: str) -> bool:
        """Give the unit back; `reason` is why the request ended (the pipeline passes the exception's class name).
        False (and nothing changes) if the reservation had already ended."""
        return await self._end(reservation, "refunded", reason, "", ())

    async def _end(
        self, reservation: Reservation, state: str, reason: str, extra_sql: str, extra: tuple[object, ...]
    ) -> bool:
        # Only an open entry can end, so a second commit or refund (or one after the other) changes nothing.
        sql = f"UPDATE quota_entries SET state = ?, reason = ?, ended_at = ?{extra_sql} WHERE id = ? AND state = 'open'"
        params = (state, reason, self.clock(), *extra, reservation.id)
        changed = await self._batch.run(lambda conn: conn.execute(sql, params).rowcount == 1)
        if not changed:
            log.debug("quota entry %s already ended; %s ignored", reservation.id, state)
        return changed

    async def recover(self) -> int:
        """Refund every reservation left open by an earlier run (crash, kill). Call once at start, before any
        request is accepted. Returns how many were refunded."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE quota_entries SET state = 'refunded', reason = 'crash-recovery', ended_at = ?"
                " WHERE state = 'open'",
                (self.clock(),),
            )
            return cursor.rowcount

    # --- what users and admins see ----------------------------------------------------------------------------

    async def status(self, user_id: int, guild_id: int | None, role_ids: Iterable[int] = ()) -> QuotaStatus:
        guild = guild_id or NO_GUILD
        now = self.clock()
        day = self.days.day_key(now)
        # A plain read, outside the write lock: a display may be a moment behind, a decision never is.
        rows = await self.db.conn.execute_fetchall(_FACTS, _facts_params(guild, user_id, role_ids, day))
        facts = _Facts.from_rows(rows)
        return self._status(user_id, guild, day, self.days.next_reset(now), facts)

    async def spend(self, guild_id: int | None) -> Spend:
        """Today's images (held or delivered) and estimated cost of one server, or of the whole bot (None)."""
        now = self.clock()
        day = self.days.day_key(now)
        scope = GLOBAL_SCOPE if guild_id is None else guild_id
        row = await self.db.fetchone(
            "SELECT images, cost_micros FROM quota_spend WHERE day = ? AND scope = ?", (day, scope)
        )
        images, micros = (row[0], row[1]) if row else (0, 0)
        image_cap, cost_cap = (
            (self.global_image_cap, self.global_cost_cap)
            if guild_id is None
            else (self.server_image_cap, self.server_cost_cap)
        )
        return Spend(
            guild_id,
            day,
            images,
            micros / 1_000_000,
            image_cap,
            None if cost_cap is None else cost_cap / 1_000_000,
            self.days.next_reset(now),
        )

    def _status(self, user_id: int, guild: int, day: str, resets_at: float, facts: _Facts) -> QuotaStatus:
        limit, source, role_id = resolve_limit(
            global_default=self.daily_quota,
            server_default=facts.server_default,
            role_limits=facts.roles,
            user_override=facts.user_override,
        )
        return QuotaStatus(
            user_id=user_id,
            guild_id=guild,
            day=day,
            limit=limit,
            source=source,
            role_id=role_id,
            granted=facts.granted,
            used=facts.states.get("committed", 0),
            reserved=facts.states.get("open", 0),
            refunded=facts.states.get("refunded", 0),
            resets_at=resets_at,
        )
