"""The quota ledger: a request reserves its credits when it is accepted, commits them when the image was
delivered, and is refunded on every other ending. Each entry says why it ended.

Money is counted apart from the member's credits: an entry holds the estimated dollars while it runs; when it
ends it holds what the upstream may bill for it (the real cost of its answers, the estimate for a call that
timed out or failed after it was sent, nothing for a call that was refused or never made), refunded or not. The
spending caps read those dollars, so a member who is refunded for an answer without a picture still uses up the
server's and the bot's budget, and each member has a daily number of upstream calls
(`user_daily_upstream_attempts`) so such answers cannot repeat without end. An ending may say what each provider
may bill (`bot.models.Cost`); those rows (`quota_costs`) are written with the ending and add up to the entry's
dollars, so spend can be shown per provider and model (`spend_by_provider`).

Every decision (the member's limit, their usage today, the server's and the bot's spend) is read inside the same
transaction as the row it leads to, under the ledger's lock (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory
lock `LEDGER_LOCK`), so concurrent requests, even from other processes on the same database, can never overshoot a
limit or a cap. A refused request writes nothing. Open reservations count against the member's quota and against
the spending caps, so a burst of queued jobs cannot slip past either.

Reserve, commit and refund are operations of a transaction (`async def op(tx, ...)`), and those that arrive
together share one transaction (`bot.quota.batch`): nothing can interleave between a read and its write, and a
burst costs one round trip to SQLite's database thread, or one lock and one commit on PostgreSQL, instead of one
per request (see bench/quota.py and bench/scale.py). Each reservation records the process that holds it, and
recovery refunds only what no live process answers for (`bot.storage.leases`).

How limits combine and what a quota day is: see `bot.quota.limits`. Admins' changes: `bot.quota.admin`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import DEFAULTS
from bot.errors import AttemptsExhausted, BudgetExhausted, QuotaExceeded
from bot.models import Cost, ImageRequest, Price, Reservation
from bot.quota.admin import LEDGER_LOCK, QuotaAdmin
from bot.quota.batch import GroupCommit
from bot.quota.facts import Facts, read_facts, to_micros
from bot.quota.limits import ProviderSpend, QuotaDays, QuotaStatus, Spend, SpendLine, capped, resolve_limit
from bot.storage.db import Database, Tx
from bot.storage.leases import Owner

log = logging.getLogger(__name__)

GLOBAL_SCOPE = -1  # quota_spend.scope of the whole bot's totals
NO_GUILD = 0  # guild key of DMs and the CLI
ONE_CREDIT = Price(1, 0.0)
# Why recovery refunds an entry: no owner recorded, an earlier run of this instance, a lease that ran out.
RECOVERY_REASONS = ("crash-recovery", "restarted", "lease-expired")

# Refund every open entry no live process answers for, in one statement (a process that registers meanwhile can
# not lose its entries): its owner's lease ran out or is unknown, or its owner is an earlier run of this instance.
# Entries from before owners were recorded have none and are refunded, as recovery always did. One whose upstream
# call had started may have been billed: its estimate stays in the spend.
# Parameters: now, instance, process, now, instance, process.
_RECOVER = """
UPDATE quota_entries SET state = 'refunded', ended_at = ?, reason = CASE
    WHEN owner IS NULL THEN 'crash-recovery'
    WHEN owner IN (SELECT process_id FROM process_leases WHERE instance_id = ? AND process_id != ?) THEN 'restarted'
    ELSE 'lease-expired' END,
    cost_micros = CASE WHEN attempts > 0 THEN cost_micros ELSE 0 END
WHERE state = 'open' AND (owner IS NULL OR NOT EXISTS (
    SELECT 1 FROM process_leases p WHERE p.process_id = quota_entries.owner AND p.lease_until >= ?
    AND (p.instance_id != ? OR p.process_id = ?)))
"""


async def _rowcount(tx: Tx, sql: str, params: tuple[Any, ...]) -> int:
    return await tx.execute(sql, params)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("an upstream attempt could not be counted: %s", future.exception())


def _cap(value: float) -> int | None:
    return None if value < 0 else int(value)


class QuotaLedger(QuotaAdmin):
    """Implements `bot.pipeline.Quota`. Caps and limits use -1 for "none"/"unlimited"."""

    def __init__(
        self,
        db: Database,
        *,
        daily_quota: int,
        timezone: str | ZoneInfo = DEFAULTS.quota_timezone,
        # Unless given, no caps (the bot's come from the settings, bot.services), and a request that names no
        # price costs one credit and nothing in dollars (tools and tests).
        default_price: Price = ONE_CREDIT,
        server_daily_image_cap: int = -1,
        global_daily_image_cap: int = -1,
        server_daily_cost_cap_usd: float = -1.0,
        global_daily_cost_cap_usd: float = -1.0,
        user_global_daily_credits: int = -1,
        user_daily_upstream_attempts: int = -1,
        max_admin_limit: int = -1,
        max_admin_grant: int = 100_000,
        clock: Callable[[], float] = time.time,
        # The process holding the reservations (its lease protects them from other processes' recovery); None
        # for a ledger outside any process lease (tests): its entries are anyone's to recover.
        owner: Owner | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.daily_quota = daily_quota
        self.days = QuotaDays(timezone)
        self.default_price = default_price
        self.server_image_cap = _cap(server_daily_image_cap)
        self.global_image_cap = _cap(global_daily_image_cap)
        self.server_cost_cap = None if server_daily_cost_cap_usd < 0 else to_micros(server_daily_cost_cap_usd)
        self.global_cost_cap = None if global_daily_cost_cap_usd < 0 else to_micros(global_daily_cost_cap_usd)
        self.everywhere_cap = _cap(user_global_daily_credits)
        self.attempts_cap = _cap(user_daily_upstream_attempts)
        self.max_admin_limit = max_admin_limit
        self.max_admin_grant = max_admin_grant
        self.clock = clock
        self._batch = GroupCommit(db, lock=LEDGER_LOCK)
        self._orphans: set[asyncio.Future[bool]] = set()
        # Commits that found their entry refunded by recovery (the owner's lease had run out): the member got the
        # image free. Logged as warnings; an operator sees them here and as "(delivered)" in the entry's reason.
        self.late_commits = 0

    # --- the pipeline's side ----------------------------------------------------------------------------------

    async def reserve(self, request: ImageRequest, price: Price | None = None) -> Reservation:
        """Hold `price` (credits, estimated dollars) for `request`, or raise `QuotaExceeded` (the member's credits
        here or everywhere), `AttemptsExhausted` (their upstream calls today) or `BudgetExhausted` (a server or
        global cap). The member's own limits come first: they are the answer the member can act on."""
        price = price or self.default_price
        return await self._batch.run(self._reserve, request, price, self.clock(), orphan=self._refund_orphan)

    async def _reserve(self, tx: Tx, request: ImageRequest, price: Price, now: float) -> Reservation:
        guild = request.guild_id or NO_GUILD
        day, resets_at = self.days.day_key(now), self.days.next_reset(now)
        facts = await read_facts(tx, guild, request.user_id, request.role_ids, day)
        status = self._status(request.user_id, guild, day, resets_at, facts)
        if status.left is not None and status.left < price.credits:
            raise QuotaExceeded(status.allowance or 0, resets_at, needed=price.credits, left=status.left)
        everywhere = status.left_everywhere
        if everywhere is not None and everywhere < price.credits:
            cap = status.everywhere_cap or 0
            raise QuotaExceeded(cap, resets_at, needed=price.credits, left=everywhere, scope="everywhere")
        if status.attempts_left is not None and status.attempts_left < 1:
            raise AttemptsExhausted(status.attempts_cap or 0, resets_at)
        estimate = to_micros(price.estimate_usd)
        if guild != NO_GUILD and self._over(facts.server_spend, self.server_image_cap, self.server_cost_cap, estimate):
            raise BudgetExhausted("server", resets_at)
        if self._over(facts.global_spend, self.global_image_cap, self.global_cost_cap, estimate):
            raise BudgetExhausted("global", resets_at)
        # The only write, after every check: a refusal leaves nothing to undo.
        entry_id = await tx.insert(
            "INSERT INTO quota_entries (day, guild_id, user_id, credits, cost_micros, created_at, owner)"
            " VALUES (?,?,?,?,?,?,?)",
            (day, guild, request.user_id, price.credits, estimate, now, self.owner and self.owner.process_id),
        )
        spendable = status.spendable
        remaining = None if spendable is None else spendable - price.credits
        return Reservation(
            entry_id, request.user_id, request.guild_id, status.allowance, remaining, resets_at, price.credits
        )

    def budget_reached(self, spend: Spend, estimate_usd: float = 0.0) -> bool:
        """Whether a cap refuses the next request (of `estimate_usd`), judged as `reserve` judges it."""
        cost_cap = None if spend.cost_cap_usd is None else to_micros(spend.cost_cap_usd)
        spent = (spend.images, to_micros(spend.cost_usd))
        return self._over(spent, spend.image_cap, cost_cap, to_micros(estimate_usd))

    async def current(self, reservation: Reservation, request: ImageRequest) -> Reservation:
        """The same held unit with the numbers as they stand now (what `/quota` says at this moment): the ones taken
        at reservation miss everything since (other requests ending in either order, grants, new limits)."""
        status = await self.status(request.user_id, request.guild_id, request.role_ids)
        return dataclasses.replace(reservation, limit=status.allowance, remaining=status.spendable)

    @staticmethod
    def _over(spend: tuple[int, int], image_cap: int | None, cost_cap: int | None, estimate: int) -> bool:
        """Whether one more request (at its estimated price, in micro-dollars) would pass a cap. A cap already
        reached refuses even a request estimated at nothing."""
        images, cost = spend
        return (image_cap is not None and images + 1 > image_cap) or (
            cost_cap is not None and (cost + estimate > cost_cap or cost >= cost_cap)
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

    def attempt(self, reservation: Reservation) -> None:
        """One more call to the image model is being made for this request: it counts against the member's daily
        attempts, and tells crash recovery the request may have been billed. Queued, not awaited, so the call is
        not held up by a disk write; the request's commit or refund, submitted later, runs after it."""
        future = self._batch.submit(
            _rowcount,
            "UPDATE quota_entries SET attempts = attempts + 1 WHERE id = ? AND state = 'open'",
            (reservation.id,),
        )
        future.add_done_callback(_log_failure)

    async def commit(
        self, reservation: Reservation, generation_id: int, cost_usd: float, costs: Sequence[Cost] = ()
    ) -> bool:
        """The image was delivered; `cost_usd` is what the request's upstream calls cost (real, where the answer
        said), `costs` the same per provider (when given, the entry holds their sum). False (and nothing changes)
        if the reservation had already ended; when it had been refunded by recovery, the image went out free:
        that is logged as a warning, counted in `late_commits` and noted in the entry's reason."""
        micros, rows = _costs(cost_usd, costs)
        if await self._end(
            reservation, "committed", "delivered", ", generation_id = ?", (generation_id,), micros, rows
        ):
            return True
        late = await self._batch.run(self._mark_late, reservation.id, generation_id)
        if late is not None:
            self.late_commits += 1
            log.warning(
                "quota entry %s was delivered after it had been refunded (%s): its owner's lease had run out or "
                "another process reclaimed it, so the image was free",
                reservation.id,
                late,
            )
        return False

    @staticmethod
    async def _mark_late(tx: Tx, entry_id: int, generation_id: int) -> str | None:
        """The reason an entry refunded by recovery had, now marked delivered; None when recovery did not end it
        (an ordinary refund, or a commit that came twice: the first ending wins and nothing changes)."""
        row = await tx.fetchone(
            "SELECT reason FROM quota_entries WHERE id = ? AND state = 'refunded' AND reason IN (?,?,?)",
            (entry_id, *RECOVERY_REASONS),
        )
        if row is None:
            return None
        await tx.execute(
            "UPDATE quota_entries SET reason = reason || ' (delivered)', generation_id = ? WHERE id = ?",
            (generation_id, entry_id),
        )
        return str(row[0])

    async def refund(
        self, reservation: Reservation, reason: str, billed_usd: float = 0.0, costs: Sequence[Cost] = ()
    ) -> bool:
        """Give the credits back; `reason` is why the request ended (the pipeline passes the exception's class
        name), `billed_usd` what its upstream calls may cost anyway (it stays in the server's and the bot's
        spend), `costs` the same per provider. False (and nothing changes) if the reservation had already ended."""
        micros, rows = _costs(billed_usd, costs)
        return await self._end(reservation, "refunded", reason, "", (), micros, rows)

    async def add_spend(self, guild_id: int | None, cost_usd: float, *, provider: str, model: str) -> None:
        """Spend that holds no image (a call of the moderation model `model` at `provider`): it counts toward the
        server's and the bot's spend and cost caps today, like a generation's cost, but not toward any credits or
        image count; spend per provider shows it as a check."""
        micros = to_micros(cost_usd)
        if micros > 0:
            day = self.days.day_key(self.clock())
            await self._batch.run(_add_spend, day, guild_id or NO_GUILD, micros, provider, model)

    async def _end(
        self,
        reservation: Reservation,
        state: str,
        reason: str,
        extra_sql: str,
        extra: tuple[object, ...],
        micros: int,
        costs: Sequence[tuple[str, str, int, int, int]],
    ) -> bool:
        # Only an open entry can end, so a second commit or refund (or one after the other) changes nothing.
        sql = (
            f"UPDATE quota_entries SET state = ?, reason = ?, ended_at = ?, cost_micros = ?{extra_sql}"
            " WHERE id = ? AND state = 'open'"
        )
        params = (state, reason, self.clock(), micros, *extra, reservation.id)

        async def end(tx: Tx) -> bool:
            if await tx.execute(sql, params) != 1:
                return False
            # Each row takes the entry's day and server.
            await tx.executemany(
                "INSERT INTO quota_costs (entry_id, day, guild_id, provider, model, pictures, failed, cost_micros)"
                " SELECT id, day, guild_id, ?, ?, ?, ?, ? FROM quota_entries WHERE id = ?",
                [(*row, reservation.id) for row in costs],
            )
            return True

        changed = await self._batch.run(end)
        if not changed:
            log.debug("quota entry %s already ended; %s ignored", reservation.id, state)
        return changed

    async def recover(self) -> int:
        """Refund the reservations no live process answers for (see `bot.storage.leases`): those of processes whose
        lease ran out, and those of earlier runs of this ledger's instance. Called at start, before any request is
        accepted, and by every live process's periodic sweep. Returns how many were refunded."""
        now = self.clock()
        me = self.owner or Owner("", "")
        params = (now, me.instance_id, me.process_id, now, me.instance_id, me.process_id)
        return await self._batch.run(_rowcount, _RECOVER, params)

    # --- what users and admins see ----------------------------------------------------------------------------

    async def status(self, user_id: int, guild_id: int | None, role_ids: Iterable[int] = ()) -> QuotaStatus:
        guild = guild_id or NO_GUILD
        now = self.clock()
        day = self.days.day_key(now)
        # A plain read, outside the write lock: a display may be a moment behind, a decision never is.
        facts = await read_facts(self.db, guild, user_id, role_ids, day)
        return self._status(user_id, guild, day, self.days.next_reset(now), facts)

    async def spend(self, guild_id: int | None) -> Spend:
        """Today's requests that hold or may have cost money, and their dollars, of one server, or of the whole
        bot (None)."""
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

    async def spend_by_provider(self, guild_id: int | None) -> ProviderSpend:
        """Today's spend of one server (or the whole bot: None) per provider and model, what running requests hold,
        and what no provider can be named for. One statement, so the parts add up to the total."""
        day = self.days.day_key(self.clock())
        scope = GLOBAL_SCOPE if guild_id is None else guild_id
        where = "day = ?" + ("" if guild_id is None else " AND guild_id = ?")
        params = (day,) if guild_id is None else (day, guild_id)
        rows = await self.db.fetchall(
            "SELECT 0, provider, model, CAST(SUM(pictures) AS BIGINT), CAST(SUM(failed) AS BIGINT),"
            " CAST(SUM(checks) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT) FROM quota_costs"
            f" WHERE {where} GROUP BY provider, model"
            " UNION ALL SELECT 1, '', '', COUNT(*), 0, 0, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT)"
            f" FROM quota_entries WHERE {where} AND state = 'open'"
            " UNION ALL SELECT 2, '', '', images, 0, 0, cost_micros FROM quota_spend WHERE day = ? AND scope = ?",
            (*params, *params, day, scope),
        )
        lines = sorted(
            (SpendLine(r[1], r[2], r[3], r[4], r[6] / 1_000_000, checks=r[5]) for r in rows if r[0] == 0),
            key=lambda line: (-line.cost_usd, line.provider, line.model),
        )
        open_requests, open_micros = next(((r[3], r[6]) for r in rows if r[0] == 1), (0, 0))
        total_micros = next((r[6] for r in rows if r[0] == 2), 0)
        attributed = sum(r[6] for r in rows if r[0] == 0)
        other = max(0, total_micros - open_micros - attributed)
        return ProviderSpend(tuple(lines), open_requests, open_micros / 1_000_000, other / 1_000_000)

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
            limit=capped(limit, source, self.max_admin_limit),
            source=source,
            role_id=role_id,
            granted=facts.granted,
            used=facts.states.get("committed", 0),
            reserved=facts.states.get("open", 0),
            refunded=facts.states.get("refunded", 0),
            resets_at=resets_at,
            everywhere_used=facts.everywhere,
            everywhere_cap=self.everywhere_cap,
            attempts=facts.attempts,
            attempts_cap=self.attempts_cap,
        )


def _costs(total_usd: float, costs: Sequence[Cost]) -> tuple[int, list[tuple[str, str, int, int, int]]]:
    """The entry's micro-dollars and its rows per provider: with a breakdown, its rounded parts and their sum (so
    spend per provider always adds up to the entry's); without, the total."""
    merged: dict[tuple[str, str], list[int]] = {}
    for c in costs:  # one row per provider and model, however the parts were given
        part = merged.setdefault((c.provider, c.model), [0, 0, 0])
        part[0] += c.pictures
        part[1] += c.failed
        part[2] += to_micros(c.usd)
    rows = [
        (provider, model, pictures, failed, micros) for (provider, model), (pictures, failed, micros) in merged.items()
    ]
    return (sum(row[4] for row in rows) if rows else to_micros(total_usd)), rows


async def _add_spend(tx: Tx, day: str, guild: int, micros: int, provider: str, model: str) -> None:
    """Cost without an image: the server's (guild 0 outside servers) and the bot's spend of `day`, and its row
    per provider."""
    await tx.execute(
        "INSERT INTO quota_spend (day, scope, images, cost_micros) VALUES (?, ?, 0, ?), (?, ?, 0, ?)"
        " ON CONFLICT (day, scope) DO UPDATE SET cost_micros = quota_spend.cost_micros + excluded.cost_micros",
        (day, guild, micros, day, GLOBAL_SCOPE, micros),
    )
    await tx.execute(
        "INSERT INTO quota_costs (day, guild_id, provider, model, checks, cost_micros) VALUES (?, ?, ?, ?, 1, ?)",
        (day, guild, provider, model, micros),
    )
