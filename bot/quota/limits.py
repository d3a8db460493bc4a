"""The pure side of quotas: which limit applies to a member, what a quota day is, and how it reads.

Limits, grants and usage are in credits (a request costs the credits of its model, size and tier; see
`bot.providers.registry`). How the limits combine (one rule, first match wins; a limit of -1 means unlimited):

1. a **user override** set for this member on this server;
2. else the **most generous limit among the member's roles** that have one (unlimited beats any number);
3. else the **server default**;
4. else the **global default** (`DAILY_QUOTA`).

An override or a role limit may be lower than the server default: that is how a server restricts someone.
**Grants** add to whatever limit was chosen, for the current quota day only; they do nothing when the limit is
unlimited. Usage is counted per server (and separately for DMs and the CLI), because every limit except the
global default is set by a server for its own members.

Above every server's choice sit the operator's: a server may not set a limit above `MAX_ADMIN_LIMIT` (a limit
stored before that was lowered is read as the cap) nor grant one member more than `MAX_ADMIN_GRANT` in a day;
a member may use at most `USER_GLOBAL_DAILY_CREDITS` across every server and DMs together, and cause at most
`USER_DAILY_UPSTREAM_ATTEMPTS` calls to the image model, whatever those calls returned.

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
AuditAction = Literal[
    "set_user_limit",
    "grant",
    "reset_user",
    "set_server_default",
    "set_role_limit",
    "set_model_default",
    "set_model_access",
]


# Far above any sensible daily number; keeps a typo from being stored as "practically unlimited".
MAX_LIMIT = 100_000


def check_limit(limit: int | None, max_admin_limit: int = UNLIMITED) -> None:
    """Refuse a limit an admin may not set (None: remove the setting, always allowed). `max_admin_limit` is the
    operator's cap on what server admins may set (-1: none, unlimited allowed)."""
    if limit is None:
        return
    if max_admin_limit >= 0:
        if not 0 <= limit <= max_admin_limit:
            raise InvalidRequest(
                f"A daily limit here must be between 0 and {max_admin_limit} credits: the bot's operator caps "
                "what servers may set (unlimited is not available)."
            )
    elif not UNLIMITED <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"A daily limit must be between 0 and {MAX_LIMIT}, or -1 for unlimited (in credits).")


def capped(limit: int | None, source: LimitSource, max_admin_limit: int) -> int | None:
    """A limit a server set, read under the operator's cap (the global default is the operator's own)."""
    if source == GLOBAL_DEFAULT or max_admin_limit < 0:
        return limit
    return max_admin_limit if limit is None else min(limit, max_admin_limit)


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
    granted: int  # one-off grants for today, in credits
    used: int  # credits spent here today (minus what an admin reset forgave)
    reserved: int  # credits held by requests running right now
    refunded: int  # credits given back today
    resets_at: float  # unix seconds of the next reset
    # The operator's caps across every server and DMs (None: no cap), and where the member stands on them.
    everywhere_used: int = 0
    everywhere_cap: int | None = None
    attempts: int = 0
    attempts_cap: int | None = None

    @property
    def allowance(self) -> int | None:
        """Today's total here: the limit plus grants; None when unlimited."""
        return None if self.limit is None else self.limit + self.granted

    @property
    def left(self) -> int | None:
        """Credits left here today (None: unlimited)."""
        allowance = self.allowance
        # An admin may lower a limit below what was already used; nobody is shown a negative balance.
        return None if allowance is None else max(0, allowance - self.used - self.reserved)

    @property
    def left_everywhere(self) -> int | None:
        """Credits left across every server and DMs (None: no such cap)."""
        cap = self.everywhere_cap
        return None if cap is None else max(0, cap - self.everywhere_used)

    @property
    def spendable(self) -> int | None:
        """What the next request may cost: the smaller of the two (None: neither limits it)."""
        left = [n for n in (self.left, self.left_everywhere) if n is not None]
        return min(left) if left else None

    @property
    def attempts_left(self) -> int | None:
        return None if self.attempts_cap is None else max(0, self.attempts_cap - self.attempts)


@dataclass(frozen=True, slots=True)
class Spend:
    """Today's requests that hold or may have cost money (running, delivered, or failed after the upstream may
    have billed them) and their dollars (estimates while running, real cost once answered), for one server
    (guild_id) or the whole bot."""

    guild_id: int | None  # None: the whole bot
    day: str
    images: int
    cost_usd: float
    image_cap: int | None  # None: no cap
    cost_cap_usd: float | None
    resets_at: float


@dataclass(frozen=True, slots=True)
class SpendLine:
    """One provider's part of a day's spend for one model (an image model, or the moderation model)."""

    provider: str  # the configured name; "" for calls no provider can be named for (cut off by a shutdown)
    model: str  # our model id
    pictures: int  # pictures it made
    failed: int  # attempts without a picture that it may bill
    cost_usd: float
    checks: int = 0  # calls of the moderation model


@dataclass(frozen=True, slots=True)
class ProviderSpend:
    """A day's spend (of a server or the whole bot) by provider and model, plus what is not yet anyone's: the
    estimates running requests hold, and ended ones with no provider on record (refunded at a restart after a
    crash, or from before providers were recorded). The parts add up to `Spend.cost_usd`."""

    lines: tuple[SpendLine, ...]  # most expensive first
    open_requests: int
    open_usd: float
    other_usd: float


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
    value: int | None  # the new limit (-1 unlimited, None cleared), the credits granted, or credits forgiven
    detail: str | None = None  # model changes: what was set ("gemini-3-pro-image 2K", "everyone: ... up to 2K")
