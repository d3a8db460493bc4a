"""The pure side of quotas: which limit applies to a member, what a quota day is, and how it reads.

How the limits combine (one rule, first match wins; a limit of -1 means unlimited):

1. a **user override** set for this member on this server;
2. else the **most generous limit among the member's roles** that have one (unlimited beats any number);
3. else the **server default**;
4. else the **global default** (`DAILY_QUOTA`).

An override or a role limit may be lower than the server default: that is how a server restricts someone.
**Grants** add to whatever limit was chosen, for the current quota day only; they do nothing when the limit is
unlimited. Usage is counted per server (and separately for DMs and the CLI), because every limit except the
global default is set by a server for its own members.

A quota day runs from midnight to midnight in `QUOTA_TIMEZONE`, so it may last 23 or 25 hours across a DST
change. A reservation counts against the day it was made on, even if it is committed after midnight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from bot.errors import InvalidRequest

UNLIMITED = -1

LimitSource = Literal["user override", "role", "server default", "global default"]
USER_OVERRIDE: LimitSource = "user override"
ROLE: LimitSource = "role"
SERVER_DEFAULT: LimitSource = "server default"
GLOBAL_DEFAULT: LimitSource = "global default"
AuditAction = Literal["set_user_limit", "grant", "reset_user", "set_server_default", "set_role_limit"]


# Far above any sensible daily number; keeps a typo from being stored as "practically unlimited".
MAX_LIMIT = 100_000


def check_limit(limit: int | None) -> None:
    """Refuse a limit an admin may not set (None: remove the setting, always allowed)."""
    if limit is not None and not UNLIMITED <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"A daily limit must be between 0 and {MAX_LIMIT}, or -1 for unlimited.")


def to_limit(value: int) -> int | None:
    """Stored form (-1 = unlimited) to the public form (None = unlimited)."""
    return None if value < 0 else value


def resolve_limit(
    *,
    global_default: int,
    server_default: int | None,
    role_limits: Iterable[tuple[int, int]],
    user_override: int | None,
) -> tuple[int | None, LimitSource, int | None]:
    """(limit or None when unlimited, source, role id when a role decided). Inputs use -1 for unlimited;
    `role_limits` holds (role id, limit) for the member's roles that have one."""
    if user_override is not None:
        return to_limit(user_override), USER_OVERRIDE, None
    # Unlimited ranks above any number; ties go to the lower role id so the answer is stable.
    best = max(role_limits, key=lambda role: (role[1] < 0, role[1], -role[0]), default=None)
    if best is not None:
        return to_limit(best[1]), ROLE, best[0]
    if server_default is not None:
        return to_limit(server_default), SERVER_DEFAULT, None
    return to_limit(global_default), GLOBAL_DEFAULT, None


class QuotaDays:
    """Quota days in one time zone: the key a timestamp's day is stored under, and when that day ends."""

    def __init__(self, timezone: str | ZoneInfo) -> None:
        self.tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)

    def local_date(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.tz).date()

    def day_key(self, ts: float) -> str:
        return self.local_date(ts).isoformat()

    def next_reset(self, ts: float) -> float:
        """The first instant after `ts` at which the local date changes: the next local midnight.

        A midnight skipped by a DST jump maps (fold=0) to the instant of the jump, which is where the new day
        starts. Where clocks once fell back across midnight (Goose Bay until 2010: 00:01 back to 23:01), the old
        date came back for an hour after the first midnight; during that hour its day ends at the second one."""
        following = datetime.combine(self.local_date(ts) + timedelta(days=1), time(0), tzinfo=self.tz)
        first = following.timestamp()
        return first if first > ts else following.replace(fold=1).timestamp()


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """Where a member stands today on one server (guild_id 0 outside servers)."""

    user_id: int
    guild_id: int
    day: str  # the quota day, YYYY-MM-DD in the quota time zone
    limit: int | None  # the chosen limit before grants; None = unlimited
    source: LimitSource
    role_id: int | None  # the role whose limit applies, when source is ROLE
    granted: int  # one-off grants for today
    used: int  # delivered today (minus what an admin reset forgave)
    reserved: int  # requests holding a unit right now
    refunded: int  # requests refunded today
    resets_at: float  # unix seconds of the next reset

    @property
    def allowance(self) -> int | None:
        """Today's total: the limit plus grants; None when unlimited."""
        return None if self.limit is None else self.limit + self.granted

    @property
    def left(self) -> int | None:
        allowance = self.allowance
        # An admin may lower a limit below what was already used; nobody is shown a negative balance.
        return None if allowance is None else max(0, allowance - self.used - self.reserved)


@dataclass(frozen=True, slots=True)
class Spend:
    """Images held or delivered today and their estimated cost, for one server (guild_id) or the whole bot."""

    guild_id: int | None  # None: the whole bot
    day: str
    images: int
    cost_usd: float
    image_cap: int | None  # None: no cap
    cost_cap_usd: float | None
    resets_at: float


@dataclass(frozen=True, slots=True)
class ServerQuota:
    """A server's quota settings as an admin sees them after a change."""

    guild_id: int
    default_limit: int | None  # None = unlimited
    default_source: LimitSource  # SERVER_DEFAULT or GLOBAL_DEFAULT
    role_limits: dict[int, int | None]  # role id -> limit (None = unlimited)
    spend: Spend


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    guild_id: int
    actor_id: int
    action: AuditAction
    user_id: int | None
    role_id: int | None
    value: int | None  # the new limit (-1 unlimited, None cleared), the amount granted, or units forgiven
