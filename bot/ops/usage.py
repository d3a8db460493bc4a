"""What `/usage` and `python -m bot report` show: one server's (or the whole bot's) images, credits and cost for
today or the last 7 or 30 quota days, as plain values.

Everything is read from the ledger and the audit tables, never from counters kept on the side, so the report is
what the ledger holds: images are ledger entries that were delivered (committed, or forgiven by an admin: those
were paid for), cost is what each entry was committed at (the real cost once providers report it), held entries
are requests still running. Refunds come with the reason the ledger recorded, blocks with the tier and category
the moderation log recorded, failures with the error class the generations table recorded.

Where each number lives is written once in `LedgerColumns`, so when the ledger moves from images to credits
(a `credits` column) or grows a provider column, the change here is one line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

DEFAULT_PROVIDER = "gemini"  # the only provider before per-generation provider names are stored
UNKNOWN_MODEL = "unknown"
PERIODS = (1, 7, 30)  # what /usage offers: today, 7 days, 30 days


class Rows(Protocol):
    """The read side of `bot.db.Database` this module needs."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ...) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class LedgerColumns:
    """Where the report reads each number: SQL expressions over the ledger entry `e` and its generation `g`."""

    credits: str = "1"  # a ledger entry is one image today; with the credits ledger: "e.credits"
    cost_micros: str = "e.cost_micros"
    model: str = f"COALESCE(g.model, '{UNKNOWN_MODEL}')"
    provider: str = f"'{DEFAULT_PROVIDER}'"  # replaced by the generation's column when it has one
    spent_states: str = "('committed', 'forgiven')"  # forgiven entries were paid for; an admin only gave them back


LEDGER = LedgerColumns()


@dataclass(frozen=True, slots=True)
class Period:
    days: int
    first_day: str  # quota days, YYYY-MM-DD in the quota time zone
    last_day: str  # today
    start: float  # unix seconds of the first day's midnight
    end: float  # unix seconds of the next reset

    @property
    def day_keys(self) -> list[str]:
        first = date.fromisoformat(self.first_day)
        return [(first + timedelta(days=n)).isoformat() for n in range(self.days)]

    @property
    def label(self) -> str:
        return "today" if self.days == 1 else f"last {self.days} days"


@dataclass(frozen=True, slots=True)
class ModelSpend:
    """One day's (or the period's) delivered images of one model from one provider."""

    day: str  # "" in period totals
    model: str
    provider: str
    images: int
    credits: float
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Reason:
    """A count by why: a refund's reason, a failure's error class."""

    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class Blocks:
    tier: str  # local | ai | upstream
    category: str
    count: int


@dataclass(frozen=True, slots=True)
class MemberSpend:
    user_id: int
    images: int
    credits: float
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UsageReport:
    guild_id: int | None  # None: the whole bot
    period: Period
    images: int
    credits: float
    cost_usd: float
    held: int  # requests holding a reservation right now (running or queued)
    daily: tuple[ModelSpend, ...]  # per day, model and provider; days without images have no row
    by_model: tuple[ModelSpend, ...]  # the period's totals per model and provider, most expensive first
    refunds: tuple[Reason, ...]
    blocks: tuple[Blocks, ...]
    busiest: tuple[MemberSpend, ...]
    failures: tuple[Reason, ...]

    @property
    def models(self) -> list[str]:
        """The models in the period, in a stable order (the chart's stacking order)."""
        return sorted({row.model for row in self.daily})

    @property
    def refunded(self) -> int:
        return sum(r.count for r in self.refunds)

    @property
    def blocked(self) -> int:
        return sum(b.count for b in self.blocks)

    @property
    def failed(self) -> int:
        return sum(f.count for f in self.failures)


def period(days: int, timezone: str | ZoneInfo, now: float) -> Period:
    """The last `days` quota days up to and including today's."""
    if days < 1:
        raise ValueError("a report covers at least one day")
    tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=tz).timestamp()
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz).timestamp()
    return Period(days, first.isoformat(), today.isoformat(), start, end)


async def usage_report(
    db: Rows,
    *,
    guild_id: int | None,
    days: int,
    timezone: str | ZoneInfo,
    now: float,
    top: int = 5,
    columns: LedgerColumns = LEDGER,
) -> UsageReport:
    """The report for one server (`guild_id`) or the whole bot (None) over the last `days` quota days."""
    span = period(days, timezone, now)
    columns = await _with_existing_columns(db, columns)
    q = _Queries(db, columns, guild_id, span)
    daily = await q.daily()
    totals: dict[tuple[str, str], ModelSpend] = {}
    for row in daily:
        seen = totals.get((row.model, row.provider))
        totals[(row.model, row.provider)] = (
            dataclasses.replace(row, day="")
            if seen is None
            else dataclasses.replace(
                seen,
                images=seen.images + row.images,
                credits=seen.credits + row.credits,
                cost_usd=seen.cost_usd + row.cost_usd,
            )
        )
    by_model = sorted(totals.values(), key=lambda m: (-m.cost_usd, -m.images, m.model, m.provider))
    return UsageReport(
        guild_id=guild_id,
        period=span,
        images=sum(r.images for r in daily),
        credits=sum(r.credits for r in daily),
        cost_usd=sum(r.cost_usd for r in daily),
        held=await q.held(),
        daily=tuple(daily),
        by_model=tuple(by_model),
        refunds=tuple(await q.refunds()),
        blocks=tuple(await q.blocks()),
        busiest=tuple(await q.busiest(top)),
        failures=tuple(await q.failures()),
    )


async def _with_existing_columns(db: Rows, columns: LedgerColumns) -> LedgerColumns:
    """Read a generation's provider from its own column once the table has one."""
    names = {row[1] for row in await db.fetchall("PRAGMA table_info(generations)")}
    if "provider" in names and columns.provider == LEDGER.provider:
        return dataclasses.replace(columns, provider=f"COALESCE(g.provider, '{DEFAULT_PROVIDER}')")
    return columns


_PARAM = re.compile(r":([a-z]+)\b")
OPEN = "('open')"
REFUNDED = "('refunded')"


class _Queries:
    """The report's SQL, scoped to one server (or none) and one period."""

    def __init__(self, db: Rows, columns: LedgerColumns, guild_id: int | None, span: Period) -> None:
        self.db = db
        self.c = columns
        self.span = span
        # The ledger keys DMs as guild 0; the audit tables store NULL. A server report is for a real server.
        self.entry_scope = "" if guild_id is None else " AND e.guild_id = :guild"
        self.audit_scope = "" if guild_id is None else " AND guild_id = :guild"
        self.params: dict[str, object] = {"guild": guild_id, "first": span.first_day, "last": span.last_day}
        self.params.update(start=span.start, end=span.end)

    async def _rows(self, sql: str) -> list[Any]:
        # Written with names for reading; sent positionally, which every driver behind `fetchall` takes.
        values: list[Any] = []

        def take(match: re.Match[str]) -> str:
            values.append(self.params[match.group(1)])
            return "?"

        return await self.db.fetchall(_PARAM.sub(take, sql), values)

    def _entries(self, states: str) -> str:
        return (
            "FROM quota_entries e LEFT JOIN generations g ON g.id = e.generation_id"
            f" WHERE e.state IN {states} AND e.day BETWEEN :first AND :last{self.entry_scope}"
        )

    async def daily(self) -> list[ModelSpend]:
        c = self.c
        rows = await self._rows(
            f"SELECT e.day, {c.model}, {c.provider}, COUNT(*), TOTAL({c.credits}), TOTAL({c.cost_micros})"
            f" {self._entries(c.spent_states)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [ModelSpend(r[0], r[1], r[2], r[3], r[4], r[5] / 1_000_000) for r in rows]

    async def held(self) -> int:
        rows = await self._rows(f"SELECT COUNT(*) {self._entries(OPEN)}")
        return int(rows[0][0])

    async def refunds(self) -> list[Reason]:
        rows = await self._rows(
            f"SELECT COALESCE(e.reason, 'unknown'), COUNT(*) {self._entries(REFUNDED)} GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return [Reason(r[0], r[1]) for r in rows]

    async def busiest(self, top: int) -> list[MemberSpend]:
        c = self.c
        # user 0 is the CLI and forgotten members: nobody to name.
        rows = await self._rows(
            f"SELECT e.user_id, COUNT(*), TOTAL({c.credits}), TOTAL({c.cost_micros})"
            f" {self._entries(c.spent_states)} AND e.user_id != 0"
            f" GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1 LIMIT {int(top)}"
        )
        return [MemberSpend(r[0], r[1], r[2], r[3] / 1_000_000) for r in rows]

    async def blocks(self) -> list[Blocks]:
        rows = await self._rows(
            "SELECT CASE source WHEN 'bot' THEN 'local' WHEN 'google' THEN 'upstream' ELSE source END, category,"
            " COUNT(*) FROM moderation_log WHERE created_at >= :start AND created_at < :end"
            f"{self.audit_scope} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
        )
        return [Blocks(r[0], r[1], r[2]) for r in rows]

    async def failures(self) -> list[Reason]:
        rows = await self._rows(
            "SELECT COALESCE(error_kind, 'unknown'), COUNT(*) FROM generations WHERE status = 'failed'"
            f" AND created_at >= :start AND created_at < :end{self.audit_scope} GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return [Reason(r[0], r[1]) for r in rows]
