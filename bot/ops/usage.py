"""What `/usage` and `python -m bot report` show: one server's (or the whole bot's) images, credits and cost for
today or the last 7 or 30 quota days, as plain values.

Everything is read from the ledger and the audit tables through their owners, never from counters kept on the
side, so the report is what the ledger holds: images and credits are ledger entries that were delivered
(committed, or forgiven by an admin: those were paid for); cost is what the upstream may bill, the real cost of
each delivered image plus the calls that brought no picture but may have been billed (their members were
refunded); held entries are requests still running. Refunds come with the reason the ledger recorded, blocks
with the tier and category the moderation log recorded, failures with the error class the generations table
recorded. Each entry's model and provider come from its generation (one range read), and the sums by day, model
and member are made here.
"""

from __future__ import annotations

from collections import defaultdict
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
    cost_usd: float  # delivered images and failed calls that may have been billed
    billed_failures: int = 0  # calls that brought no picture but may have been billed


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
    cost_usd: float  # what the upstream may bill for the period: delivered images and failed calls
    billed_failures: int  # requests refunded to their member although the provider may have billed them
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


@dataclass(slots=True)
class _Sums:
    images: int = 0
    credits: float = 0.0
    micros: int = 0
    billed_failures: int = 0

    def add(self, entry: ledger.CostEntry) -> None:
        self.images += entry.delivered
        self.credits += entry.credits
        self.micros += entry.cost_micros
        self.billed_failures += not entry.delivered


async def usage_report(
    db: Database, *, guild_id: int | None, days: int, timezone: str | ZoneInfo, now: float, top: int = 5
) -> UsageReport:
    """The report for one server (`guild_id`) or the whole bot (None) over the last `days` quota days."""
    span = period(days, timezone, now)
    entries = await ledger.cost_entries(db, guild_id, span.first_day, span.last_day)
    ids = [e.generation_id for e in entries if e.generation_id is not None]
    names = await generations.labels(db, min(ids), max(ids)) if ids else {}
    unknown = (generations.UNKNOWN_MODEL, generations.DEFAULT_PROVIDER)
    daily: dict[tuple[str, str, str], _Sums] = defaultdict(_Sums)
    by_model: dict[tuple[str, str], _Sums] = defaultdict(_Sums)
    members: dict[int, _Sums] = defaultdict(_Sums)
    everything = _Sums()
    for entry in entries:
        model, provider = names.get(entry.generation_id or -1, unknown)
        for sums in (daily[(entry.day, model, provider)], by_model[(model, provider)], members[entry.user_id]):
            sums.add(entry)
        everything.add(entry)

    def spend(day: str, model: str, provider: str, sums: _Sums) -> ModelSpend:
        return ModelSpend(day, model, provider, sums.images, sums.credits, sums.micros / 1e6, sums.billed_failures)

    totals = [spend("", model, provider, sums) for (model, provider), sums in by_model.items()]
    # user 0 is the CLI and forgotten members: nobody to name.
    busiest = sorted(
        (
            MemberSpend(user, s.images, s.credits, s.micros / 1e6)
            for user, s in members.items()
            if user != ledger.ANONYMOUS
        ),
        key=lambda m: (-m.credits, -m.images, m.user_id),
    )
    return UsageReport(
        guild_id=guild_id,
        period=span,
        images=everything.images,
        credits=everything.credits,
        cost_usd=everything.micros / 1e6,
        billed_failures=everything.billed_failures,
        held=await ledger.held_count(db, guild_id, span.first_day, span.last_day),
        daily=tuple(spend(*key, sums) for key, sums in sorted(daily.items())),
        by_model=tuple(sorted(totals, key=lambda m: (-m.cost_usd, -m.images, m.model, m.provider))),
        refunds=tuple(Reason(*r) for r in await ledger.refund_counts(db, guild_id, span.first_day, span.last_day)),
        blocks=tuple(Blocks(*b) for b in await moderation.block_counts(db, guild_id, span.start, span.end)),
        busiest=tuple(busiest[:top]),
        failures=tuple(Reason(*f) for f in await generations.failure_counts(db, guild_id, span.start, span.end)),
    )
