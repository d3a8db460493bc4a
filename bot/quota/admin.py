"""Server admins' controls over quotas: a member's limit, grants, resets, the server default and role limits.

Each change is written with its audit row (who, when, what) in one transaction and answers with the resulting
state; permission checks belong to the caller (the cog). The operator's caps apply: no limit above
`max_admin_limit` (and no unlimited while that is set), no more than `max_admin_grant` credits granted to one
member in a day. A mixin of `QuotaLedger`, which owns the connection, the clock and the status reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot.errors import InvalidRequest
from bot.quota.limits import (
    GLOBAL_DEFAULT,
    MAX_LIMIT,
    ROLE,
    SERVER_DEFAULT,
    AuditAction,
    AuditEntry,
    QuotaDays,
    QuotaStatus,
    ServerQuota,
    Spend,
    capped,
    check_limit,
    to_limit,
)
from bot.storage.db import Database

log = logging.getLogger(__name__)

# Every transaction that writes the ledger takes this lock: decisions take turns across processes (PostgreSQL;
# SQLite's single writer already makes them), exactly as they do within one.
LEDGER_LOCK = "gib:quota-ledger"


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


class QuotaAdmin:
    db: Database
    days: QuotaDays
    clock: Callable[[], float]
    daily_quota: int
    max_admin_limit: int
    max_admin_grant: int

    if TYPE_CHECKING:  # QuotaLedger's

        async def status(self, user_id: int, guild_id: int | None, role_ids: Iterable[int] = ()) -> QuotaStatus: ...

        async def spend(self, guild_id: int | None) -> Spend: ...

    async def set_user_limit(
        self, guild_id: int, user_id: int, limit: int | None, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        check_limit(limit, self.max_admin_limit)
        sql, params = _set_or_clear("quota_user_limits", {"guild_id": guild_id, "user_id": user_id}, limit)
        await self._change(guild_id, actor_id, "set_user_limit", sql, params, user_id=user_id, value=limit)
        return await self.status(user_id, guild_id, role_ids)

    async def grant(
        self, guild_id: int, user_id: int, amount: int, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        """Extra credits for today only; they add to whatever limit applies. At most `max_admin_grant` credits to
        one member in one day, all grants together (the operator's cap)."""
        if not 1 <= amount <= MAX_LIMIT:
            raise InvalidRequest(f"A grant must be between 1 and {MAX_LIMIT} credits.")
        now = self.clock()
        granted = (await self.status(user_id, guild_id, role_ids)).granted
        if granted + amount > self.max_admin_grant:
            raise InvalidRequest(
                f"The bot's operator lets a server grant one member at most {self.max_admin_grant} credits a day; "
                f"this member already has {granted} granted today, so at most {max(0, self.max_admin_grant - granted)} "
                "more."
            )
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
        check_limit(limit, self.max_admin_limit)
        sql, params = _set_or_clear("quota_server_limits", {"guild_id": guild_id}, limit)
        await self._change(guild_id, actor_id, "set_server_default", sql, params, value=limit)
        return await self.server_quota(guild_id)

    async def set_role_limit(self, guild_id: int, role_id: int, limit: int | None, *, actor_id: int) -> ServerQuota:
        check_limit(limit, self.max_admin_limit)
        sql, params = _set_or_clear("quota_role_limits", {"guild_id": guild_id, "role_id": role_id}, limit)
        await self._change(guild_id, actor_id, "set_role_limit", sql, params, role_id=role_id, value=limit)
        return await self.server_quota(guild_id)

    async def server_quota(self, guild_id: int) -> ServerQuota:
        row = await self.db.fetchone("SELECT daily_limit FROM quota_server_limits WHERE guild_id = ?", (guild_id,))
        roles = await self.db.fetchall(
            "SELECT role_id, daily_limit FROM quota_role_limits WHERE guild_id = ? ORDER BY role_id", (guild_id,)
        )
        source = SERVER_DEFAULT if row else GLOBAL_DEFAULT
        return ServerQuota(
            guild_id=guild_id,
            default_limit=capped(to_limit(row[0] if row else self.daily_quota), source, self.max_admin_limit),
            default_source=source,
            role_limits={role_id: capped(to_limit(value), ROLE, self.max_admin_limit) for role_id, value in roles},
            spend=await self.spend(guild_id),
        )

    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The server's latest quota changes, newest first."""
        rows = await self.db.fetchall(
            "SELECT id, at, guild_id, actor_id, action, user_id, role_id, value, detail FROM quota_audit"
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
        detail: str | None = None,
    ) -> int:
        """Apply one change and its audit row atomically; returns how many rows the change touched, which is the
        audited value when `value_is_count` (a reset records how many units it forgave)."""
        async with self.db.transaction(lock=LEDGER_LOCK) as tx:
            touched = await tx.execute(sql, params)
            await tx.execute(
                "INSERT INTO quota_audit (at, guild_id, actor_id, action, user_id, role_id, value, detail)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    self.clock(),
                    guild_id,
                    actor_id,
                    action,
                    user_id,
                    role_id,
                    touched if value_is_count else value,
                    detail,
                ),
            )
        return touched
