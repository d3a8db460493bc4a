"""Fair queue + upstream gate: the one place that talks to the upstream's limits.

Requests wait in a `FairQueue` (round-robin across servers, and across members within each server) in front of
the `Gate` (rate window, concurrency, token and daily budgets, 429 pause, circuit breaker). Nothing polls: the
queue is served whenever something changes (a request arrives or is cancelled, an attempt ends) and by one timer
set for the moment the gate will next allow a start. The line as a whole is capped (`max_queued`), so a flood is
refused at once with a clear answer instead of waiting for hours.

While a request waits, its position and estimated start are reported through its progress callback, which runs
in a task of its own so a slow or failing callback never holds up the gate. Reporting costs O(n) in the length
of the line, so it is not done per dispatch: one report at most every `report_interval` seconds for the whole
line, telling only requests whose place or estimate moved noticeably, and at most `report_limit` of them per
report, those nearest the front first. A request's first place and its "generating" are never held back by
more than one interval.

Several processes (REDIS_URL): a request the local gate lets through also waits for a start at the `SharedGate`
all processes share (its window, concurrency, tokens, daily budget and pause are the whole bot's), before it is
told "generating". This process's requests reach the shared gate one at a time, in the fair queue's order, so
fairness holds within each process; between processes, the next start goes to whichever asks first once one is
allowed. A 429 pauses every process. The circuit breaker, the ETAs and the line's cap stay each process's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from bot.config import DEFAULTS
from bot.errors import (
    BotBusy,
    BotError,
    Cancelled,
    QueueFull,
    RateLimited,
    ShuttingDown,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import GeneratedImage, Progress
from bot.ops.metrics import Metrics
from bot.scheduler.fairqueue import FairQueue
from bot.scheduler.gate import (
    Gate,
    Outcome,
    SchedulerStats,
    Slot,
)
from bot.scheduler.ratelimit import Clock, SystemClock, TimerHandle
from bot.scheduler.reports import Throttle, noticeable
from bot.scheduler.shared_limits import Lease, SharedGate

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[Progress], Awaitable[None]]

_KILL_WAIT_SECONDS = 5.0  # how long cancelled attempts get to unwind at shutdown


class _State(Enum):
    IDLE = "idle"  # admitted, not in `run`: before the first attempt or between retries
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"  # an attempt succeeded; only the release is left
    RELEASED = "released"


class Ticket:
    """A user's admitted place; the fields after `guild_id` belong to the scheduler."""

    def __init__(self, user_id: int, key: str, guild_id: int | None = None) -> None:
        self.user_id = user_id
        self.key = key
        self.guild_id = guild_id  # None: a direct message
        self._state = _State.IDLE
        self._cancelled = False
        self._killed = False
        self._future: asyncio.Future[None] | None = None  # resolved when the gate lets this request start
        self._slot: Slot | None = None
        self._task: asyncio.Future[Any] | None = None  # the running attempt
        self._progress: ProgressCallback | None = None
        self._pending: Progress | None = None  # newest update not yet handed to the callback
        self._sender: asyncio.Task[None] | None = None
        self._shown: tuple[int, float] | None = None  # (position, estimated start) last reported

    def __repr__(self) -> str:
        return f"Ticket(user_id={self.user_id}, key={self.key!r}, state={self._state.value})"

    @property
    def group(self) -> int | None:
        """Whose turn this is in the fair queue: the server (None: every DM together)."""
        return self.guild_id

    @property
    def cancellable(self) -> bool:
        """Not started yet (waiting in line, or before its first attempt or between retries)."""
        return self._state in (_State.IDLE, _State.WAITING)


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    refused: int  # waiting requests that got ShuttingDown without starting
    finished: int  # attempts that ended within the grace period
    interrupted: int  # attempts cancelled when the grace period ran out


class Scheduler:
    def __init__(
        self,
        gate: Gate,
        *,
        user_max_pending: int,
        max_queued: int = DEFAULTS.queue_max_length,
        report_interval: float = 0.0,
        report_limit: int = DEFAULTS.queue_updates_per_report,
        eta_tolerance: float = 1.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        upstream: str | None = "gemini",
        shared: SharedGate | None = None,
    ) -> None:
        """`max_queued`: admitted requests (waiting or running) for the whole bot. `report_interval`: least time
        between two reports of the line; `report_limit`: most requests told of a new place per report.
        `eta_tolerance`: seconds an estimated start must move before a waiting request hears of it. `shared`: the
        gate every process shares, when there are several (see the module's docstring). `upstream` names the
        provider behind the gate in the metrics (None: the providers report their own)."""
        if user_max_pending < 1 or max_queued < 1 or report_limit < 1:
            raise ValueError("user_max_pending, max_queued and report_limit must be >= 1")
        self.gate = gate
        self.shared = shared
        self._releases: set[asyncio.Future[None]] = set()
        self._clock: Clock = clock or SystemClock()
        self._user_max = user_max_pending
        self._max_queued = max_queued
        self._report_limit = report_limit
        self._eta_tolerance = eta_tolerance
        self._tickets: dict[str, Ticket] = {}
        self._held: dict[int, int] = {}  # user -> admitted, unreleased tickets
        self._queue: FairQueue[Ticket] = FairQueue()
        self._running: set[Ticket] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._senders: set[asyncio.Task[None]] = set()
        self._reports = Throttle(report_interval, self._clock, self._report)
        self.metrics = metrics or Metrics.disabled()
        self.upstream = upstream

    # --- the Scheduler protocol ------------------------------------------------------------------------------

    def admit(self, user_id: int, key: str, *, guild_id: int | None = None, force: bool = False) -> Ticket:
        """`force`: past the user's limit of pending requests and the line's cap (a job a restart resumes was
        admitted before)."""
        self._raise_if_refused()
        if not force and self._held.get(user_id, 0) >= self._user_max:
            raise QueueFull(self._user_max)
        if not force and len(self._tickets) >= self._max_queued:
            raise BotBusy(self._max_queued)
        if key in self._tickets:
            raise ValueError(f"a request with key {key!r} is already admitted")
        ticket = Ticket(user_id, key, guild_id)
        self._tickets[key] = ticket
        self._held[user_id] = self._held.get(user_id, 0) + 1
        return ticket

    async def run(self, ticket: Ticket, job: Callable[[], Awaitable[T]], progress: ProgressCallback | None) -> T:
        if ticket._state is not _State.IDLE:
            raise RuntimeError(f"run() on a ticket that is {ticket._state.value}")
        if ticket._cancelled:
            raise Cancelled()
        self._raise_if_refused()
        ticket._progress, ticket._shown = progress, None
        ticket._future = asyncio.get_running_loop().create_future()
        ticket._state = _State.WAITING
        self._queue.push(ticket)
        self._dispatch()
        try:
            await ticket._future
        except BaseException:
            ticket._pending = None  # a stale "queued" must not overwrite what the caller shows next
            if ticket._state is _State.WAITING:  # the caller itself was cancelled while waiting
                self._queue.remove(ticket)
                ticket._state = _State.IDLE
                self._dispatch()
            elif ticket._state is _State.RUNNING:  # granted in the same turn the caller was cancelled
                self._end(ticket, Outcome.NEUTRAL, measured=False)
            raise
        return await self._attempt(ticket, job)

    def find(self, key: str) -> Ticket | None:
        """The admitted request with this key (waiting, running or between attempts), if any."""
        return self._tickets.get(key)

    def cancel(self, key: str) -> bool:
        ticket = self._tickets.get(key)
        if ticket is None or not ticket.cancellable:
            return False
        ticket._cancelled = True  # an idle ticket (between retries) fails at its next run()
        if ticket._state is _State.WAITING:
            self._queue.remove(ticket)
            self._reject(ticket, Cancelled())
            self._dispatch()
        return True

    def release(self, ticket: Ticket) -> None:
        if ticket._state is _State.RELEASED:
            return
        if ticket._state is _State.WAITING and self._queue.remove(ticket):
            self._reject(ticket, Cancelled())
        ticket._state = _State.RELEASED
        ticket._progress = ticket._pending = None
        if self._tickets.get(ticket.key) is ticket:
            del self._tickets[ticket.key]
        left = self._held.get(ticket.user_id, 0) - 1
        if left > 0:
            self._held[ticket.user_id] = left
        else:
            self._held.pop(ticket.user_id, None)

    # --- stopping and status ---------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> ShutdownReport:
        """Refuse new requests, fail the waiting ones with ShuttingDown, give running attempts `grace` seconds,
        then cancel what is left (their callers get ShuttingDown too)."""
        self._closing = True
        refused = self._reject_all(ShuttingDown)
        running = len(self._running)
        interrupted = 0
        if not await self._wait_idle(grace):
            interrupted = len(self._running)
            for ticket in self._running:
                ticket._killed = True
                if ticket._task is not None:
                    ticket._task.cancel()
            if not await self._wait_idle(_KILL_WAIT_SECONDS):
                log.warning("%d upstream attempt(s) ignored cancellation at shutdown", len(self._running))
        if self._timer is not None:
            self._timer.cancel()
        self._reports.cancel()
        for sender in list(self._senders):
            sender.cancel()
        log.info("scheduler stopped: %d waiting refused, %d running, %d interrupted", refused, running, interrupted)
        return ShutdownReport(refused, running - interrupted, interrupted)

    @property
    def closing(self) -> bool:
        """`shutdown` was called: no request is admitted any more."""
        return self._closing

    def stats(self) -> SchedulerStats:
        return self.gate.stats(self._clock.monotonic(), self._clock.time(), queued=len(self._queue))

    async def current_stats(self) -> SchedulerStats:
        """`stats`, with the whole bot's starts, tokens, daily count, slots in use and pause when the gate is
        shared between processes (the line and the circuit stay this process's)."""
        local = self.stats()
        if self.shared is None:
            return local
        shared = await self.shared.stats()
        paused = self._clock.time() + shared.paused_for if shared.paused_for > 0 else local.paused_until
        return dataclasses.replace(
            local,
            in_flight=shared.in_flight,
            starts_in_window=shared.starts_in_window,
            tokens_in_window=shared.tokens_in_window,
            requests_today=shared.requests_today,
            paused_until=paused,
        )

    # --- serving the queue -----------------------------------------------------------------------------------

    def _refusal(self) -> BotError | None:
        if self._closing:
            return ShuttingDown()
        return self.gate.refusal(self._clock.monotonic(), self._clock.time())

    def _raise_if_refused(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            raise refusal

    def _dispatch(self) -> None:
        """Start as many waiting requests as the gate allows now; otherwise wake up when it could."""
        now = self._clock.monotonic()
        while self._queue:
            if self._refusal() is not None:  # e.g. the circuit just opened: nobody waits for nothing
                self._reject_all(lambda: self._refusal() or ShuttingDown())
                break
            ready = self.gate.ready_at(now)
            if ready is None:
                break  # the next attempt to end dispatches again
            if ready > now:
                self._arm(ready)
                break
            ticket = self._queue.pop()
            assert ticket._future is not None
            if ticket._future.done():  # its caller was cancelled and has not run its cleanup yet
                ticket._state = _State.IDLE
                continue
            ticket._state = _State.RUNNING
            ticket._slot = self.gate.start(now, self._clock.time())
            self._running.add(ticket)
            self._idle.clear()
            ticket._future.set_result(None)
        self.metrics.queue_depth(len(self._queue))
        self._reports.request(now)

    def _arm(self, at: float) -> None:
        if self._timer is not None and self._timer_at == at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._clock.call_at(at, self._on_timer), at

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._dispatch()

    async def _attempt(self, ticket: Ticket, job: Callable[[], Awaitable[T]]) -> T:
        if ticket._killed:  # granted, but the grace period ran out before it could start
            self._end(ticket, Outcome.NEUTRAL, measured=False)
            raise ShuttingDown()
        shared, lease = self.shared, None

        async def started() -> T:
            nonlocal lease
            if shared is not None:
                lease = await shared.acquire()  # cancelled (shutdown), it leaks no slot
                await shared.restamp(lease)  # as the local gate's restamp below: count from the real start
            self._notify(ticket, Progress("generating"))
            if ticket._slot is not None:
                self.gate.restamp(ticket._slot, self._clock.monotonic())
            return await job()

        # A task of its own, so shutdown can cancel the attempt without cancelling the caller.
        ticket._task = task = asyncio.ensure_future(started())
        outcome, measured, tokens = Outcome.NEUTRAL, False, 0
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if ticket._killed and not (current and current.cancelling()):
                raise ShuttingDown() from None
            raise
        except RateLimited as exc:
            if self.upstream is not None:
                self.metrics.upstream_rate_limited(provider=self.upstream)
            self.gate.pause(exc.retry_after, self._clock.monotonic())
            if shared is not None:
                await self._pause_everyone(shared, exc.retry_after)
            raise
        except (UpstreamUnavailable, UpstreamTimeout):
            outcome, measured = Outcome.FAILURE, True
            raise
        except UpstreamError:
            outcome, measured = Outcome.SUCCESS, True  # it answered, so it is reachable
            raise
        else:
            outcome, measured = Outcome.SUCCESS, True
            if isinstance(result, GeneratedImage):
                tokens = result.usage.total_tokens
            ticket._state = _State.DONE
            return result
        finally:
            self._end(ticket, outcome, measured=measured, tokens=tokens)
            if lease is not None and shared is not None:
                self._release_shared(shared, lease, tokens)

    async def _pause_everyone(self, shared: SharedGate, retry_after: float | None) -> None:
        try:
            await shared.pause(retry_after)
        except Exception:  # this process pauses anyway; the others hear of it from their own 429, if any
            log.exception("could not pause the gate shared with the other processes")

    def _release_shared(self, shared: SharedGate, lease: Lease, tokens: int) -> None:
        """Give the shared slot back (correcting the token charge) without holding up this request's caller; if
        Redis cannot be reached, the slot's lease runs out instead."""
        task = asyncio.ensure_future(shared.release(lease, tokens=tokens or None))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def aclose(self) -> None:
        """After `shutdown`: free the shared gate's slots still held and close its connection."""
        if self.shared is not None:
            await asyncio.gather(*self._releases, return_exceptions=True)
            await self.shared.close()
            await self.shared.redis.aclose()

    def _end(self, ticket: Ticket, outcome: Outcome, *, measured: bool, tokens: int = 0) -> None:
        self._running.discard(ticket)
        ticket._task = None
        if ticket._state is _State.RUNNING:
            ticket._state = _State.IDLE
        if ticket._slot is not None:
            now = self._clock.monotonic()
            self.gate.end(ticket._slot, outcome, now, tokens=tokens, measured=measured)
            if self.upstream is not None:
                self.metrics.circuit_state(provider=self.upstream, state=self.gate.circuit.state(now))
            ticket._slot = None
        if not self._running:
            self._idle.set()
        self._dispatch()

    def _reject(self, ticket: Ticket, exc: BaseException) -> None:
        ticket._state = _State.IDLE
        ticket._pending = None
        if ticket._future is not None and not ticket._future.done():
            ticket._future.set_exception(exc)

    def _reject_all(self, make: Callable[[], BaseException]) -> int:
        waiting = self._queue.clear()
        for ticket in waiting:
            self._reject(ticket, make())
        return len(waiting)

    async def _wait_idle(self, within: float) -> bool:
        if self._idle.is_set():
            return True
        idle = asyncio.ensure_future(self._idle.wait())
        timer = asyncio.ensure_future(self._clock.sleep(within))
        try:
            await asyncio.wait({idle, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            timer.cancel()
        return self._idle.is_set()

    # --- progress --------------------------------------------------------------------------------------------

    def _report(self, now: float) -> None:
        """Tell waiting requests their position and estimated start where either moved noticeably
        (`bot.scheduler.reports`): requests never told first, then the others, front of the line first, at most
        `report_limit` in all. Runs at most once per report interval."""
        order = self._queue.order()
        watched = [i for i, ticket in enumerate(order) if ticket._progress is not None]
        if not watched:
            return
        estimates = self.gate.estimate(watched[-1] + 1, now)
        tolerance = self._eta_tolerance
        news = [i for i in watched if order[i]._shown is None]
        moved = [
            i
            for i in watched
            if order[i]._shown is not None and noticeable(order[i]._shown, i + 1, estimates[i], now, tolerance)
        ]
        told = (news + moved)[: self._report_limit]
        for i in told:
            ticket, at = order[i], estimates[i]
            ticket._shown = (i + 1, at)
            self._notify(ticket, Progress("queued", i + 1, round(at - now, 1)))
        if len(told) < len(news) + len(moved):  # the rest hear at the next report
            self._reports.again(now)

    def _notify(self, ticket: Ticket, progress: Progress) -> None:
        """Hand the newest update to the request's own sender task: a slow callback delays (and coalesces) only
        that request's updates."""
        if ticket._progress is None:
            return
        ticket._pending = progress
        if ticket._sender is None or ticket._sender.done():
            ticket._sender = sender = asyncio.get_running_loop().create_task(self._send(ticket))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)

    async def _send(self, ticket: Ticket) -> None:
        while ticket._pending is not None and ticket._progress is not None:
            progress, ticket._pending = ticket._pending, None
            try:
                await ticket._progress(progress)
            except Exception:
                log.exception("progress callback of request %s failed", ticket.key)
