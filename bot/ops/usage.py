"""What `/usage` and `python -m bot report` show: one server's (or the whole bot's) images, credits and cost for
today or the last 7 or 30 quota days, as plain values.

Everything is read from the ledger and the audit tables through their owners, never from counters kept on the
side, so the report is what the ledger holds: images and credits are ledger entries that were delivered
(committed, or forgiven by an admin: those were paid for); cost is what the upstream may bill, split per provider
and model as the ledger recorded it (`quota_costs`): the real cost of each delivered image, the calls that brought
no picture but may be billed (their members were refunded) and the moderation model's checks; held entries are
requests still running. Refunds come with the reason the ledger recorded, blocks with the tier and category the
moderation log recorded, failures with the error class the generations table recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.editing import generations
from bot.moderation import records as moderation
from bot.quota import records as ledger
from bot.storage.db import Database

PERIODS = (1, 7, 30)  # what /usage offers: today, 7 days, 30 days


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
    """One day's (or the period's) images and cost of one model from one provider."""

    day: str  # "" in period totals
    model: str
    provider: str
    images: int
    credits: float
    cost_usd: float  # delivered images, failed calls that may be billed, moderation checks
    billed_failures: int = 0  # calls that brought no picture but may be billed
    checks: int = 0  # calls of the moderation model

    def __add__(self, other: ModelSpend) -> ModelSpend:
        return dataclasses.replace(
            self,
            images=self.images + other.images,
            credits=self.credits + other.credits,
            cost_usd=self.cost_usd + other.cost_usd,
            billed_failures=self.billed_failures + other.billed_failures,
            checks=self.checks + other.checks,
        )


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
    cost_usd: float  # what the upstream may bill for the period: delivered images, failed calls, checks
    billed_failures: int  # calls that brought no picture (their members were refunded) but may be billed
    checks: int  # calls of the moderation model (its AI second opinion)
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


UNATTRIBUTED = "unattributed"  # the model of spend no provider row names (a request refunded at its estimate)


async def usage_report(
    db: Database, *, guild_id: int | None, days: int, timezone: str | ZoneInfo, now: float, top: int = 5
) -> UsageReport:
    """The report for one server (`guild_id`) or the whole bot (None) over the last `days` quota days."""
    span = period(days, timezone, now)
    scope = (guild_id, span.first_day, span.last_day)
    lines = await ledger.cost_lines(db, *scope)
    days_ = await ledger.day_totals(db, *scope)
    daily = [
        ModelSpend(
            line.day,
            line.model,
            line.provider,
            line.pictures,
            line.credits,
            line.cost_micros / 1e6,
            line.failed,
            line.checks,
        )
        for line in lines
    ]
    # What the ledger's entries may be billed but no provider row names: its own line, so the parts add up.
    daily += [
        ModelSpend(d.day, UNATTRIBUTED, "", 0, 0.0, (d.cost_micros - d.named_micros) / 1e6)
        for d in days_
        if d.cost_micros > d.named_micros
    ]
    daily.sort(key=lambda m: (m.day, m.model, m.provider))
    totals: dict[tuple[str, str], ModelSpend] = {}
    for row in daily:
        seen = totals.get((row.model, row.provider))
        totals[(row.model, row.provider)] = dataclasses.replace(row, day="") if seen is None else seen + row
    members = sorted(
        (
            MemberSpend(m.user_id, m.images, m.credits, m.cost_micros / 1e6)
            for m in await ledger.member_totals(db, *scope)
        ),
        key=lambda m: (-m.credits, -m.images, m.user_id),
    )
    return UsageReport(
        guild_id=guild_id,
        period=span,
        images=sum(d.images for d in days_),
        credits=sum(d.credits for d in days_),
        cost_usd=sum(m.cost_usd for m in daily),
        billed_failures=sum(line.failed for line in lines),
        checks=sum(line.checks for line in lines),
        held=sum(d.held for d in days_),
        daily=tuple(daily),
        by_model=tuple(sorted(totals.values(), key=lambda m: (-m.cost_usd, -m.images, m.model, m.provider))),
        refunds=tuple(Reason(*r) for r in await ledger.refund_counts(db, *scope)),
        blocks=tuple(Blocks(*b) for b in await moderation.block_counts(db, guild_id, span.start, span.end)),
        busiest=tuple(members[:top]),
        failures=tuple(Reason(*f) for f in await generations.failure_counts(db, guild_id, span.start, span.end)),
    )
