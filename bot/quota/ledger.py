"""The quota ledger: a request reserves one unit when it is accepted, commits it when the image was delivered,
and is refunded on every other ending. Each entry says why it ended.

Every decision (the member's limit, their usage today, the server's and the bot's spend) is read inside the same
`BEGIN IMMEDIATE` transaction as the row it leads to, so concurrent requests, even from another process on the
same file, can never overshoot a limit or a cap. A refused request writes nothing. Open reservations count
against the member's quota and against the spending caps, so a burst of queued jobs cannot slip past either.

Reserve, commit and refund are synchronous functions run whole on the database thread, and those that arrive
together share one transaction (`bot.quota.batch`): nothing can interleave between a read and its write, and a
burst costs one round trip to the database thread instead of one per statement (see bench/quota.py).

How limits combine and what a quota day is: see `bot.quota.limits`. Admins' changes (limits, grants, resets) are
written together with their audit row (who, when, what) in one transaction and answer with the resulting state;
permission checks belong to the caller (the cog).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import DEFAULTS
from bot.errors import BudgetExhausted, InvalidRequest, QuotaExceeded
from bot.models import ImageRequest, Reservation
from bot.quota.batch import GroupCommit
from bot.quota.facts import FACTS, Facts, facts_params, read_facts, to_micros
from bot.quota.limits import (
    GLOBAL_DEFAULT,
    MAX_LIMIT,
    SERVER_DEFAULT,
    AuditAction,
    AuditEntry,
    QuotaDays,
    QuotaStatus,
    ServerQuota,
    Spend,
    check_limit,
    resolve_limit,
    to_limit,
)
from bot.storage.db import Database

log = logging.getLogger(__name__)

GLOBAL_SCOPE = -1  # quota_spend.scope of the whole bot's totals
NO_GUILD = 0  # guild key of DMs and the CLI


def _set_or_clear(table: str, keys: dict[str, int], limit: int | None) -> tuple[str, tuple[int, ...]]:
    """The statement that stores a limit in one of the limit tables, or removes it (None)."""
    if limit is None:
        return f"DELETE FROM {table} WHERE " + " AND ".join(f"{k} = ?" for k in keys), tuple(keys.values())
    columns = ", ".join(keys)
    return (
        f"INSERT INTO {table} ({columns}, daily_limit) VALUES ({', '.join('?' * (len(keys) + 1))})"
        f" ON CONFLICT ({columns}) DO UPDATE SET daily_limit = excluded.daily_limit",
        (*keys.values(), limit),
    )


class QuotaLedger:
    """Implements `bot.pipeline.Quota`. Caps and limits use -1 for "none"/"unlimited"."""

    def __init__(
        self,
        db: Database,
        *,
        daily_quota: int,
        timezone: str | ZoneInfo = DEFAULTS.quota_timezone,
        # Unless given, no price and no caps (the bot's come from the settings, bot.services).
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

    # --- the pipeline's side ----------------------------------------------------------------------------------

    async def reserve(self, request: ImageRequest) -> Reservation:
        """Hold one unit for `request`, or raise `QuotaExceeded` (the member's limit) or `BudgetExhausted` (a
        server or global cap). The member's quota is checked first: it is the answer they can act on."""
        return await self._batch.run(self._reserve, request, self.clock(), orphan=self._refund_orphan)

    def _reserve(self, conn: sqlite3.Connection, request: ImageRequest, now: float) -> Reservation:
        guild = request.guild_id or NO_GUILD
        day, resets_at = self.days.day_key(now), self.days.next_reset(now)
        facts = read_facts(conn, guild, request.user_id, request.role_ids, day)
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

    async def charge_failed(self, reservation: Reservation, cost_usd: float) -> None:
        """A request that failed after a provider may have billed it (a timeout after sending, an answer that
        could not be used): the cost counts toward the server's and the bot's spend on the reservation's day,
        but not toward the member's quota or the image counts."""
        micros = to_micros(cost_usd)
        if micros > 0:
            await self._batch.run(self._charge_failed, reservation.id, micros)

    def _charge_failed(self, conn: sqlite3.Connection, entry_id: int, micros: int) -> None:
        row = conn.execute("SELECT day, guild_id FROM quota_entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            return
        day, guild = row
        conn.execute(
            "INSERT INTO quota_spend (day, scope, images, cost_micros) VALUES (?, ?, 0, ?), (?, ?, 0, ?)"
            " ON CONFLICT (day, scope) DO UPDATE SET cost_micros = cost_micros + excluded.cost_micros",
            (day, guild, micros, day, GLOBAL_SCOPE, micros),
        )

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
        rows = await self.db.conn.execute_fetchall(FACTS, facts_params(guild, user_id, role_ids, day))
        facts = Facts.from_rows(rows)
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

    def _status(self, user_id: int, guild: int, day: str, resets_at: float, facts: Facts) -> QuotaStatus:
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

    # --- server admins' controls: each change is written with its audit row in one transaction ---------------

    async def set_user_limit(
        self, guild_id: int, user_id: int, limit: int | None, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        check_limit(limit)
        sql, params = _set_or_clear("quota_user_limits", {"guild_id": guild_id, "user_id": user_id}, limit)
        await self._change(guild_id, actor_id, "set_user_limit", sql, params, user_id=user_id, value=limit)
        return await self.status(user_id, guild_id, role_ids)

    async def grant(
        self, guild_id: int, user_id: int, amount: int, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        """Extra units for today only; they add to whatever limit applies."""
        if not 1 <= amount <= MAX_LIMIT:
            raise InvalidRequest(f"A grant must be between 1 and {MAX_LIMIT} images.")
        now = self.clock()
        await self._change(
            guild_id,
            actor_id,
            "grant",
            "INSERT INTO quota_grants (guild_id, user_id, day, amount, granted_by, created_at) VALUES (?,?,?,?,?,?)",
            (guild_id, user_id, self.days.day_key(now), amount, actor_id, now),
            user_id=user_id,
            value=amount,
        )
        return await self.status(user_id, guild_id, role_ids)

    async def reset_user(
        self, guild_id: int, user_id: int, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        """Forgive what the member used today. Their delivered entries become 'forgiven': they no longer count
        against the member but still count toward the server's and the bot's spend, because they were paid
        for. Reservations still open are left alone and count when they end."""
        forgiven = await self._change(
            guild_id,
            actor_id,
            "reset_user",
            "UPDATE quota_entries SET state = 'forgiven'"
            " WHERE guild_id = ? AND user_id = ? AND day = ? AND state = 'committed'",
            (guild_id, user_id, self.days.day_key(self.clock())),
            user_id=user_id,
            value=None,
            value_is_count=True,
        )
        log.info("quota of user %s in guild %s reset by %s: %d forgiven", user_id, guild_id, actor_id, forgiven)
        return await self.status(user_id, guild_id, role_ids)

    async def set_server_default(self, guild_id: int, limit: int | None, *, actor_id: int) -> ServerQuota:
        check_limit(limit)
        sql, params = _set_or_clear("quota_server_limits", {"guild_id": guild_id}, limit)
        await self._change(guild_id, actor_id, "set_server_default", sql, params, value=limit)
        return await self.server_quota(guild_id)

    async def set_role_limit(self, guild_id: int, role_id: int, limit: int | None, *, actor_id: int) -> ServerQuota:
        check_limit(limit)
        sql, params = _set_or_clear("quota_role_limits", {"guild_id": guild_id, "role_id": role_id}, limit)
        await self._change(guild_id, actor_id, "set_role_limit", sql, params, role_id=role_id, value=limit)
        return await self.server_quota(guild_id)

    async def server_quota(self, guild_id: int) -> ServerQuota:
        row = await self.db.fetchone("SELECT daily_limit FROM quota_server_limits WHERE guild_id = ?", (guild_id,))
        roles = await self.db.fetchall(
            "SELECT role_id, daily_limit FROM quota_role_limits WHERE guild_id = ? ORDER BY role_id", (guild_id,)
        )
        return ServerQuota(
            guild_id=guild_id,
            default_limit=to_limit(row[0] if row else self.daily_quota),
            default_source=SERVER_DEFAULT if row else GLOBAL_DEFAULT,
            role_limits={role_id: to_limit(value) for role_id, value in roles},
            spend=await self.spend(guild_id),
        )

    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The server's latest quota changes, newest first."""
        rows = await self.db.fetchall(
            "SELECT id, at, guild_id, actor_id, action, user_id, role_id, value FROM quota_audit"
            " WHERE guild_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [AuditEntry(*row) for row in rows]

    async def _change(
        self,
        guild_id: int,
        actor_id: int,
        action: AuditAction,
        sql: str,
        params: tuple[Any, ...],
        *,
        user_id: int | None = None,
        role_id: int | None = None,
        value: int | None,
        value_is_count: bool = False,
    ) -> int:
        """Apply one change and its audit row atomically; returns how many rows the change touched, which is the
        audited value when `value_is_count` (a reset records how many units it forgave)."""
        async with self.db.transaction() as conn:
            touched = (await conn.execute(sql, params)).rowcount
            await conn.execute(
                "INSERT INTO quota_audit (at, guild_id, actor_id, action, user_id, role_id, value)"
                " VALUES (?,?,?,?,?,?,?)",
                (self.clock(), guild_id, actor_id, action, user_id, role_id, touched if value_is_count else value),
            )
        return touched
