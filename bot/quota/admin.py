"""Server admins' controls over quotas. Each change is written together with its audit row (who, when, what) in
one transaction and answers with the resulting state. Limits: -1 = unlimited, None = remove the setting so the
next source in line applies (see `bot.quota_limits`). Permission checks belong to the caller (the cog)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot.errors import InvalidRequest
from bot.quota.limits import (
    GLOBAL_DEFAULT,
    SERVER_DEFAULT,
    UNLIMITED,
    AuditEntry,
    QuotaDays,
    QuotaStatus,
    ServerQuota,
    Spend,
    to_limit,
)

if TYPE_CHECKING:
    from bot.storage.db import Database

log = logging.getLogger(__name__)

# Far above any sensible daily number; keeps a typo from being stored as "practically unlimited".
MAX_LIMIT = 100_000


def _check_limit(limit: int | None) -> None:
    if limit is not None and not UNLIMITED <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"A daily limit must be between 0 and {MAX_LIMIT}, or -1 for unlimited.")


class QuotaAdmin:
    """Mixed into `QuotaLedger`, which provides the attributes and the two readers declared here."""

    db: Database
    days: QuotaDays
    daily_quota: int
    clock: Callable[[], float]

    async def status(self, user_id: int, guild_id: int | None, role_ids: Iterable[int] = ()) -> QuotaStatus:
        raise NotImplementedError

    async def spend(self, guild_id: int | None) -> Spend:
        raise NotImplementedError

    async def set_user_limit(
        self, guild_id: int, user_id: int, limit: int | None, *, actor_id: int, role_ids: Iterable[int] = ()
    ) -> QuotaStatus:
        _check_limit(limit)
        if limit is None:
            sql, params = "DELETE FROM quota_user_limits WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        else:
            sql = (
                "INSERT INTO quota_user_limits (guild_id, user_id, daily_limit) VALUES (?,?,?)"
                " ON CONFLICT (guild_id, user_id) DO UPDATE SET daily_limit = excluded.daily_limit"
            )
            params = (guild_id, user_id, limit)
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
        _check_limit(limit)
        if limit is None:
            sql, params = "DELETE FROM quota_server_limits WHERE guild_id = ?", (guild_id,)
        else:
            sql = (
                "INSERT INTO quota_server_limits (guild_id, daily_limit) VALUES (?,?)"
                " ON CONFLICT (guild_id) DO UPDATE SET daily_limit = excluded.daily_limit"
            )
            params = (guild_id, limit)
        await self._change(guild_id, actor_id, "set_server_default", sql, params, value=limit)
        return await self.server_quota(guild_id)

    async def set_role_limit(self, guild_id: int, role_id: int, limit: int | None, *, actor_id: int) -> ServerQuota:
        _check_limit(limit)
        if limit is None:
            sql, params = "DELETE FROM quota_role_limits WHERE guild_id = ? AND role_id = ?", (guild_id, role_id)
        else:
            sql = (
                "INSERT INTO quota_role_limits (guild_id, role_id, daily_limit) VALUES (?,?,?)"
                " ON CONFLICT (guild_id, role_id) DO UPDATE SET daily_limit = excluded.daily_limit"
            )
            params = (guild_id, role_id, limit)
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
        action: str,
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
