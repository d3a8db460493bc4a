"""The `server_settings` table and the only code with SQL on it: each server's rules for where the bot may be
used (`bot.ops.access`) and where its budget alerts go. Read on every request, so kept in memory per server and
dropped on every change (one process writes them: the one that answers `/settings`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from bot.errors import InvalidRequest
from bot.ops.access import MAX_ENTRIES, Place, ServerRules, check
from bot.storage.db import Database

log = logging.getLogger(__name__)

_FIELDS = ("allowed", "denied", "roles", "threads", "explain", "alert_channel_id")


class ServerSettings:
    def __init__(self, db: Database, *, allow_dms: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.allow_dms = allow_dms
        self.clock = clock
        self._cache: dict[int, ServerRules | None] = {}

    async def rules(self, guild_id: int) -> ServerRules:
        """The server's rules (the open defaults when it never set any)."""
        return await self._stored(guild_id) or ServerRules(guild_id)

    async def _stored(self, guild_id: int) -> ServerRules | None:
        if guild_id in self._cache:
            return self._cache[guild_id]
        row = await self.db.fetchone(
            "SELECT allowed_places, denied_places, generator_roles, threads_allowed, explain_refusals,"
            " alert_channel_id FROM server_settings WHERE guild_id = ?",
            (guild_id,),
        )
        rules = None
        if row is not None:
            rules = ServerRules(
                guild_id,
                allowed=_ids(row[0]),
                denied=_ids(row[1]),
                roles=_ids(row[2]),
                threads=bool(row[3]),
                explain=bool(row[4]),
                alert_channel_id=row[5],
            )
        self._cache[guild_id] = rules
        return rules

    async def check(self, place: Place, role_ids: tuple[int, ...]) -> None:
        """Raise `NotHere` when the bot may not be used at `place` by a member with `role_ids`."""
        rules = await self._stored(place.guild_id) if place.guild_id is not None else None
        check(rules, place, role_ids, allow_dms=self.allow_dms)

    async def update(self, guild_id: int, *, by: int, **changes: Any) -> ServerRules:
        """Change some of a server's rules (`allowed`, `denied`, `roles`, `threads`, `explain`,
        `alert_channel_id`); returns them as they now stand."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown server settings {sorted(unknown)}")
        for name in ("allowed", "denied", "roles"):
            if name in changes:
                changes[name] = tuple(dict.fromkeys(int(i) for i in changes[name]))
                if len(changes[name]) > MAX_ENTRIES:
                    raise InvalidRequest(f"A server can list at most {MAX_ENTRIES} entries per rule.")
        rules = replace(await self.rules(guild_id), **changes)
        await self.db.execute(
            "INSERT INTO server_settings (guild_id, allowed_places, denied_places, generator_roles,"
            " threads_allowed, explain_refusals, alert_channel_id, updated_at, updated_by)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (guild_id) DO UPDATE SET"
            " allowed_places = excluded.allowed_places, denied_places = excluded.denied_places,"
            " generator_roles = excluded.generator_roles, threads_allowed = excluded.threads_allowed,"
            " explain_refusals = excluded.explain_refusals, alert_channel_id = excluded.alert_channel_id,"
            " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (
                guild_id,
                json.dumps(rules.allowed),
                json.dumps(rules.denied),
                json.dumps(rules.roles),
                int(rules.threads),
                int(rules.explain),
                rules.alert_channel_id,
                self.clock(),
                by,
            ),
        )
        self._cache.pop(guild_id, None)
        log.info("server %s settings changed by %s: %s", guild_id, by, sorted(changes))
        return rules

    async def reset(self, guild_id: int) -> ServerRules:
        """Back to the open defaults (the alert channel goes too)."""
        await self.db.execute("DELETE FROM server_settings WHERE guild_id = ?", (guild_id,))
        self._cache.pop(guild_id, None)
        return ServerRules(guild_id)


def _ids(text: str | None) -> tuple[int, ...]:
    values: Iterable[Any] = json.loads(text or "[]")
    return tuple(int(v) for v in values)
