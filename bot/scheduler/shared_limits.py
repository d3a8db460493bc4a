"""The upstream gate's limits shared by every process through Redis: the same rules as `bot.gate.Gate`.

A start is allowed only when all agree, judged atomically by one Lua script on the Redis server's clock (`TIME`),
so processes on machines whose clocks differ still share one timeline:

- at most `rpm` starts in any `window` seconds: a strict sliding window; a permit taken at `t` comes back at
  `t + window + margin` and not before, and the moment it does the next start may go;
- at most `concurrency` attempts in flight: each start holds a lease that expires after `lease_seconds` unless
  its process renews it (every third of that, in the background), so a process killed with -9 gives its
  slots back within one lease instead of leaking them;
- an optional `tpm` tokens per window: each start is charged `tokens_per_request` and `release` corrects the
  charge to the real usage while the start is still in the window;
- an optional `rpd` starts per day, the day ending at midnight Pacific (Google's reset): past it, `acquire`
  raises `BudgetExhausted` at once instead of waiting;
- no start at all while a pause is in force: any process that got a 429 calls `pause`, and every process waits.

Why not a library (measured with `bench/scale_gate.py`, 3 processes sharing 30 starts per 1 s window):
`limits` 5.8 (async Redis moving window) holds the limit on its own stamps on one machine, but those are each
client's `time.time()`, so a machine whose clock runs d ahead starts up to d early; its windows are whole seconds,
so it cannot add a margin for the latency between the grant and the request reaching the upstream: a strict
upstream saw 33 starts in a window (10-14 refused per run) where this gate with the settings' margin gave 30 and
none (32 and 3 with no margin), using 98.5-99 % of the allowance to its 99.6 %. It also cannot move a start,
correct a weight, hold a concurrency lease or pause, and waits only by polling. pyrate-limiter 4.6 (`RedisBucket`,
read, not run) stamps with the client clock in milliseconds and counts `[now - window, now]`, so entries stamped
by a client whose clock runs ahead are not counted by the others, and it has the same gaps.

Waiting: a refusal carries the server time the start becomes possible (a permit coming back, the end of a pause)
and `acquire` sleeps until then; a wait for a free slot ends when any process releases one (Redis pub/sub) or,
at the latest, when the oldest lease could expire. Fairness between members is each process's own queue in
front of this gate; between processes the next start goes to whichever asks first once it is allowed.

All keys of one gate share the hash tag `{name}`, so the scripts also run on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.errors import BudgetExhausted
from bot.scheduler.ratelimit import DailyCounter

log = logging.getLogger(__name__)

_US = 1_000_000  # scripts count in integer microseconds: exact in Lua's doubles, no boundary rounding

# Lua 5.1 turns numbers into strings with 14 significant digits, too few for microseconds since 1970: every
# number handed to redis.call goes through I().
_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local function I(n) return string.format('%d', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: starts (zset id->start us), weights (hash id->tokens), total (tokens in starts), leases (zset
# id->expiry us), pause (until us), rpd (today's count). ARGV: id, rpm, span us (window + margin), concurrency,
# tpm, tokens, lease us, rpd, rpd ttl s.  Returns {0, start, now} | {1, a permit is back at, now} | {2, first
# lease expiry, now} (all slots busy) | {3, count, now} (daily budget spent) | {4, pause ends at, now}.
_ACQUIRE = (
    _PRELUDE
    + """
local id, rpm, span, conc = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tpm, tokens, lease, rpd = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local paused = tonumber(redis.call('GET', KEYS[5]) or '0')
if paused > now then return {4, paused, now} end
local today = tonumber(redis.call('GET', KEYS[6]) or '0')
if rpd > 0 and today >= rpd then return {3, today, now} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', I(now))
if redis.call('ZCARD', KEYS[4]) >= conc then
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  return {2, tonumber(first[2]), now}
end
-- A permit taken at a is back once now - span >= a.
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', I(now - span))
if #gone > 0 then
  local freed = 0
  for i = 1, #gone, 1000 do
    local part = {unpack(gone, i, math.min(i + 999, #gone))}
    local ws = redis.call('HMGET', KEYS[2], unpack(part))
    for j = 1, #part do freed = freed + (tonumber(ws[j]) or 0) end
    redis.call('HDEL', KEYS[2], unpack(part))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', I(now - span))
  redis.call('DECRBY', KEYS[3], I(freed))
end
local count = redis.call('ZCARD', KEYS[1])
local at = now
if count >= rpm then
  local e = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  at = math.max(at, tonumber(e[2]) + span)
end
if tpm > 0 and count > 0 then
  local excess = tonumber(redis.call('GET', KEYS[3]) or '0') + tokens - tpm
  if excess > 0 then
    -- Oldest first until enough comes back; more than the whole budget waits for an empty window.
    local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    local freed, back = 0, now
    for i = 1, #all, 2 do
      back = tonumber(all[i + 1]) + span
      freed = freed + (tonumber(redis.call('HGET', KEYS[2], all[i])) or 0)
      if freed >= excess then break end
    end
    at = math.max(at, back)
  end
end
if at > now then return {1, at, now} end
local keep = I(math.ceil(span / 1000) + 1000)
redis.call('ZADD', KEYS[1], I(now), id)
redis.call('HSET', KEYS[2], id, I(tokens))
redis.call('INCRBY', KEYS[3], I(tokens))
redis.call('ZADD', KEYS[4], I(now + lease), id)
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], keep) end
redis.call('PEXPIRE', KEYS[4], I(math.ceil(lease / 1000) + 1000))
redis.call('INCR', KEYS[6])
redis.call('EXPIRE', KEYS[6], ARGV[9])
return {0, now, now}
"""
)

# KEYS: starts, weights, total. ARGV: id, span us. Moves a start later, to now (never earlier).
_RESTAMP = (
    _PRELUDE
    + """
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) < now then
  redis.call('ZADD', KEYS[1], I(now), ARGV[1])
  for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], I(math.ceil(tonumber(ARGV[2]) / 1000) + 1000)) end
end
return now
"""
)

# KEYS: leases, weights, total. ARGV: id, real tokens (0: unknown), channel. Frees the slot, corrects the charge.
_RELEASE = """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
local tokens = tonumber(ARGV[2])
if tokens > 0 then
  local old = redis.call('HGET', KEYS[2], ARGV[1])
  if old then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    redis.call('INCRBY', KEYS[3], string.format('%d', tokens - tonumber(old)))
  end
end
if held > 0 then redis.call('PUBLISH', ARGV[3], ARGV[1]) end
return held
"""

# KEYS: leases. ARGV: lease us, ids... Returns the ids whose lease had already expired.
_RENEW = (
    _PRELUDE
    + """
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], I(now + tonumber(ARGV[1])), ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], I(math.ceil(tonumber(ARGV[1]) / 1000) + 1000))
return lost
"""
)

# KEYS: pause. ARGV: delay us. Returns {until, now}.
_PAUSE = (
    _PRELUDE
    + """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = now + tonumber(ARGV[1])
if want > current then
  redis.call('SET', KEYS[1], I(want), 'PX', I(math.ceil(tonumber(ARGV[1]) / 1000) + 1000))
  return {want, now}
end
return {current, now}
"""
)

# KEYS: starts, weights, leases, pause, rpd. ARGV: span us. Returns {starts, tokens, in flight, today, pause, now}.
_STATS = (
    _PRELUDE
    + """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. I(now - tonumber(ARGV[1])), '+inf')
local tokens = 0
for i = 1, #live do tokens = tokens + (tonumber(redis.call('HGET', KEYS[2], live[i])) or 0) end
return {#live, tokens, redis.call('ZCOUNT', KEYS[3], '(' .. I(now), '+inf'),
        tonumber(redis.call('GET', KEYS[5]) or '0'), tonumber(redis.call('GET', KEYS[4]) or '0'), now}
"""
)


@dataclass(frozen=True, slots=True)
class SharedLimits:
    """The gate's rules; every process sharing a gate should use the same ones (each enforces its own)."""

    rpm: int
    concurrency: int
    tpm: int = 0
    rpd: int = 0
    window: float = 60.0
    margin: float = 0.0
    tokens_per_request: int = 1400
    default_retry_after: float = 10.0
    lease_seconds: float = 30.0
    rpd_timezone: str = "America/Los_Angeles"

    def __post_init__(self) -> None:
        if self.rpm < 1 or self.concurrency < 1 or self.window <= 0 or self.lease_seconds <= 0:
            raise ValueError("rpm and concurrency must be >= 1, window and lease_seconds > 0")


@dataclass(eq=False, slots=True)
class Lease:
    """One granted start: its permit in the window and its concurrency slot (until released)."""

    id: str
    started_at: float  # unix seconds on the Redis server's clock; moved by `restamp`
    tokens: int  # what the start was charged
    used_tokens: int = 0  # the real count, when known: `release` corrects the charge to it
    released: bool = field(default=False, repr=False)


@dataclass(frozen=True, slots=True)
class Wait:
    """A refused start: try again in `seconds` (a permit returns, a pause ends), or when a slot is freed."""

    seconds: float
    reason: str  # "rate" | "pause" | "slot"
    until: float  # unix seconds on the Redis server's clock (for a slot: when the oldest lease could expire)


@dataclass(frozen=True, slots=True)
class SharedStats:
    starts_in_window: int
    tokens_in_window: int
    in_flight: int  # leases held by every process
    requests_today: int
    paused_for: float  # seconds left of a pause, 0 when none


class SharedGate:
    """`async with gate.slot() as lease:` waits for a start and frees the slot after; or `acquire`/`release`."""

    def __init__(self, redis: Redis, limits: SharedLimits, *, name: str = "upstream", poll_seconds: float = 1.0):
        self.redis = redis
        self.limits = limits
        self._poll = poll_seconds
        self._prefix = prefix = f"gib:gate:{{{name}}}:"  # one hash tag: every key of a gate in one cluster slot
        self._keys = {k: prefix + k for k in ("starts", "weights", "total", "leases", "pause", "freed")}
        self._tz = ZoneInfo(limits.rpd_timezone)
        self._day = DailyCounter(0, limits.rpd_timezone)
        self._span = round((limits.window + limits.margin) * _US)
        self._lease = round(limits.lease_seconds * _US)
        self._acquire = redis.register_script(_ACQUIRE)
        self._restamp = redis.register_script(_RESTAMP)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._pause = redis.register_script(_PAUSE)
        self._stats = redis.register_script(_STATS)
        self._held: dict[str, Lease] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._freed = asyncio.Event()  # replaced after each wake-up, so a wait never sees an old release
        self._turn = asyncio.Lock()  # FIFO among this process's callers of `acquire`
        self._orphans: set[asyncio.Future[None]] = set()  # releases of grants whose caller was cancelled

    def _rpd_key(self, wall: float) -> str:
        # The client's clock picks the day: machines seconds apart disagree only in the seconds around midnight.
        return f"{self._prefix}rpd:{datetime.fromtimestamp(wall, self._tz).date().isoformat()}"

    async def try_acquire(self, tokens: int | None = None) -> Lease | Wait:
        """One atomic attempt: a granted start, or how long to wait. Raises BudgetExhausted past `rpd`."""
        k, lim = self._keys, self.limits
        charge = lim.tokens_per_request if tokens is None else tokens
        wall = time.time()
        lease_id = uuid.uuid4().hex
        keys = [k["starts"], k["weights"], k["total"], k["leases"], k["pause"], self._rpd_key(wall)]
        args: list[str | int | float] = [
            lease_id,
            lim.rpm,
            self._span,
            lim.concurrency,
            lim.tpm,
            charge,
            self._lease,
            lim.rpd,
            2 * 86400,
        ]
        code, at, now = (int(v) for v in await self._acquire(keys, args))
        if code == 0:
            lease = Lease(lease_id, at / _US, charge)
            self._held[lease_id] = lease
            if self._heartbeat is None or self._heartbeat.done():
                self._heartbeat = asyncio.create_task(self._keep_alive())
            return lease
        if code == 3:
            raise BudgetExhausted("upstream", self._day.next_reset(wall))
        return Wait(max(0.0, (at - now) / _US), {1: "rate", 2: "slot", 4: "pause"}[code], at / _US)

    async def refusal(self) -> BudgetExhausted | None:
        """Why no request should wait at the gate now (today's requests are spent), as `Gate.refusal` says."""
        wall = time.time()
        if self.limits.rpd and int(await self.redis.get(self._rpd_key(wall)) or 0) >= self.limits.rpd:
            return BudgetExhausted("upstream", self._day.next_reset(wall))
        return None

    async def acquire(self, tokens: int | None = None) -> Lease:
        """Wait until a start is allowed and take it. Callers in one process take turns in order, and only the
        first asks Redis: processes contend, not every waiting coroutine. Cancelling never leaks a slot."""
        async with self._turn:
            while True:
                freed = self._freed
                attempt = asyncio.ensure_future(self.try_acquire(tokens))
                try:
                    verdict = await asyncio.shield(attempt)
                except asyncio.CancelledError:
                    attempt.add_done_callback(self._abandon)
                    raise
                if isinstance(verdict, Lease):
                    return verdict
                if verdict.reason != "slot":
                    await asyncio.sleep(verdict.seconds)
                elif self._listener is None or self._listener.done():
                    await self._listen()  # then ask again at once, so a release in between is not missed
                else:
                    # A dead process never publishes: wait no longer than until its lease could have run out.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(freed.wait(), timeout=min(self._poll, verdict.seconds))

    def _abandon(self, attempt: asyncio.Future[Lease | Wait]) -> None:
        if not attempt.cancelled() and attempt.exception() is None and isinstance(lease := attempt.result(), Lease):
            task = asyncio.ensure_future(self.release(lease))  # its permit stays spent, as the in-process gate's
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)

    async def restamp(self, lease: Lease) -> None:
        """The attempt really starts now: count its window from here (only ever later)."""
        k = self._keys
        now = int(await self._restamp([k["starts"], k["weights"], k["total"]], [lease.id, self._span]))
        lease.started_at = max(lease.started_at, now / _US)

    async def release(self, lease: Lease, *, tokens: int | None = None) -> None:
        """Free the slot; `tokens` (or `lease.used_tokens`) is the real usage that replaces the charge."""
        if lease.released:
            return
        lease.released = True
        self._held.pop(lease.id, None)
        used = lease.used_tokens if tokens is None else tokens
        k = self._keys
        await self._release([k["leases"], k["weights"], k["total"]], [lease.id, max(0, used), k["freed"]])

    @contextlib.asynccontextmanager
    async def slot(self, tokens: int | None = None) -> AsyncIterator[Lease]:
        lease = await self.acquire(tokens)
        try:
            yield lease
        finally:
            await asyncio.shield(self.release(lease))

    async def pause(self, retry_after: float | None) -> float:
        """The upstream answered 429: no process starts anything for `retry_after` seconds (or the default).
        Returns the seconds left of the pause now in force (a longer one already set is kept)."""
        delay = self.limits.default_retry_after if retry_after is None else retry_after
        until, now = (int(v) for v in await self._pause([self._keys["pause"]], [round(delay * _US)]))
        if until == now + round(delay * _US):
            log.warning("upstream rate limit hit: pausing every start in every process for %.1fs", delay)
        return (until - now) / _US

    async def stats(self) -> SharedStats:
        k = self._keys
        keys = [k["starts"], k["weights"], k["leases"], k["pause"], self._rpd_key(time.time())]
        starts, tokens, running, today, paused, now = (int(v) for v in await self._stats(keys, [self._span]))
        return SharedStats(starts, tokens, running, today, max(0.0, (paused - now) / _US))

    async def close(self) -> None:
        """Stop the background tasks; leases still held are released."""
        for lease in list(self._held.values()):
            await self.release(lease)
        for task in (self._heartbeat, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keep_alive(self) -> None:
        while self._held:
            await asyncio.sleep(self.limits.lease_seconds / 3)
            ids = list(self._held)
            if not ids:
                break
            try:
                lost = await self._renew([self._keys["leases"]], [self._lease, *ids])
            except Exception:
                log.exception("could not renew %d upstream slot lease(s)", len(ids))
                continue
            if lost:
                # The process stalled for longer than a lease: another may already have used these slots.
                log.warning("%d upstream slot lease(s) expired before their attempts ended", len(lost))
                for lease_id in lost:
                    self._held.pop(lease_id.decode() if isinstance(lease_id, bytes) else lease_id, None)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._keys["freed"])

        async def run() -> None:
            try:
                async for _ in pubsub.listen():
                    self._freed.set()
                    self._freed = asyncio.Event()
            finally:
                await pubsub.aclose()

        self._listener = asyncio.create_task(run())
