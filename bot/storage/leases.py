"""Owner leases: which processes are alive, so that recovery refunds only what a dead process left open.

Each process that can hold quota reservations registers under a random process id and the operator's instance
name (`INSTANCE_ID`, by default the host name plus the process's shard ids), and renews its lease every third of
`PROCESS_LEASE_SECONDS`. The ledger records the process id on every reservation and refunds an open entry only
when no live lease answers for it: its owner's lease ran out (the process died or stalled for a whole lease), its
owner is unknown, or its owner is an earlier run of this very instance (a restart reclaims its own entries at
once, as a single process always did). Each renewal is followed by a sweep, so a dead process's entries come back
within about one lease even if it never restarts, whichever live process sees it first.

Times are each process's wall clock: processes on several machines need clocks that agree to well within a lease
(NTP gives milliseconds; the default lease is a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.storage.db import Database

log = logging.getLogger(__name__)

# Lease rows this long past their expiry are deleted by the sweep: their entries were refunded long before.
_FORGET_AFTER_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a reservation: one run of one process (`process_id`) of one deployment slot (`instance_id`)."""

    process_id: str
    instance_id: str


def default_instance_id(shard_ids: Sequence[int] | None = None) -> str:
    """The host name, plus the shard ids a process runs (two shard groups on one host are two instances)."""
    host = socket.gethostname() or "bot"
    return f"{host}-shards-{'-'.join(str(s) for s in shard_ids)}" if shard_ids else host


class ProcessLease:
    """Register with `register()`, then `start(sweep)` renews the lease and runs `sweep` (the ledger's recovery)
    in the background until `close()`. `tick()` is one renewal and sweep, for tests with a fake clock."""

    def __init__(
        self,
        db: Database,
        *,
        instance_id: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
        process_id: str | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        self.db = db
        self.owner = Owner(process_id or uuid.uuid4().hex, instance_id)
        self.lease_seconds = lease_seconds
        self.clock = clock
        # Renewals that found the lease already expired: the process stalled for a whole lease, and other
        # processes may have refunded its requests in flight (their commits then log a warning).
        self.lapses = 0
        self._sweep: Callable[[], Awaitable[int]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def interval(self) -> float:
        return self.lease_seconds / 3

    async def register(self) -> int:
        """Take the lease (before any reservation is made). Returns how many earlier runs of this instance still
        held a live lease: their entries are reclaimed by this process's first recovery, and a live one means two
        processes share one INSTANCE_ID, which the log says."""
        now = self.clock()
        earlier = await self.db.fetchall(
            "SELECT process_id, host, pid FROM process_leases"
            " WHERE instance_id = ? AND process_id != ? AND lease_until >= ?",
            (self.owner.instance_id, self.owner.process_id, now),
        )
        for row in earlier:
            log.warning(
                "an earlier run of instance %r (pid %s on %s) still held a live lease: its open reservations are "
                "refunded now; if that process is still running, give each process its own INSTANCE_ID",
                self.owner.instance_id,
                row[2],
                row[1],
            )
        await self.db.execute(
            "INSERT INTO process_leases (process_id, instance_id, host, pid, started_at, lease_until)"
            " VALUES (?,?,?,?,?,?)",
            (self.owner.process_id, self.owner.instance_id, socket.gethostname(), os.getpid(), now, self._until(now)),
        )
        log.info(
            "process %s of instance %r holds a %.0fs lease",
            self.owner.process_id,
            self.owner.instance_id,
            self.lease_seconds,
        )
        return len(earlier)

    def _until(self, now: float) -> float:
        return now + self.lease_seconds

    async def renew(self) -> bool:
        """Extend the lease; False (and a warning) when it had run out before this renewal."""
        now = self.clock()
        renewed = await self.db.execute(
            "UPDATE process_leases SET lease_until = ? WHERE process_id = ? AND lease_until >= ?",
            (self._until(now), self.owner.process_id, now),
        )
        if renewed:
            return True
        self.lapses += 1
        log.warning(
            "this process's lease had run out (stalled for over %.0fs?): other processes may have refunded its "
            "requests in flight; renewing it",
            self.lease_seconds,
        )
        await self.db.execute(
            "INSERT INTO process_leases (process_id, instance_id, host, pid, started_at, lease_until)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (process_id) DO UPDATE SET lease_until = excluded.lease_until",
            (self.owner.process_id, self.owner.instance_id, socket.gethostname(), os.getpid(), now, self._until(now)),
        )
        return False

    async def tick(self) -> int:
        """Renew, then sweep (refund what dead processes left open); returns how many the sweep refunded."""
        await self.renew()
        refunded = await self._sweep() if self._sweep is not None else 0
        if refunded:
            log.warning("refunded %d reservation(s) of processes whose lease ran out", refunded)
        await self.db.execute(
            "DELETE FROM process_leases WHERE lease_until < ?", (self.clock() - _FORGET_AFTER_SECONDS,)
        )
        return refunded

    def start(self, sweep: Callable[[], Awaitable[int]] | None) -> None:
        """Renew and sweep every third of a lease in the background."""
        self._sweep = sweep
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="process-lease")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if self._stopping.is_set():
                return
            try:
                await self.tick()
            except Exception:  # a database hiccup must not end the heartbeat; the next tick tries again
                log.exception("could not renew the process lease or sweep")

    async def close(self) -> None:
        """Stop renewing and give the lease up: whatever this process still holds is anyone's to refund."""
        if self._task is not None:
            # Not cancelled: a tick stopped half-way could leave its transaction open on the connection.
            self._stopping.set()
            await self._task
            self._task = None
        await self.db.execute("DELETE FROM process_leases WHERE process_id = ?", (self.owner.process_id,))
