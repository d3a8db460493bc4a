"""The Redis upstream gate against a real redis-server: the limits hold across clients and OS processes.

Start times are the gate's own, on the Redis server's clock, in integer microseconds, so "most starts in any
window" is judged exactly (a window is (t - window, t], as the upstream counts it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.errors import BudgetExhausted
from bot.scheduler.ratelimit import DailyCounter
from bot.scheduler.shared_limits import Lease, SharedGate, SharedLimits, Wait
from tests.servers import redis_server, redis_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
US = 1_000_000


def us(seconds: float) -> int:
    return round(seconds * US)


def most_in_any_window(starts_us: list[int], window_us: int) -> int:
    ordered = sorted(starts_us)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window_us:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.fixture
async def gates(redis_url):  # noqa: F811
    """`make(**limits)`: a gate on a connection of its own, as each process would have; all closed after."""
    made: list[tuple[SharedGate, aioredis.Redis]] = []

    def make(poll_seconds: float = 1.0, **limits: object) -> SharedGate:
        client = aioredis.Redis.from_url(redis_url)
        gate = SharedGate(client, SharedLimits(**limits), poll_seconds=poll_seconds)  # type: ignore[arg-type]
        made.append((gate, client))
        return gate

    yield make
    for gate, client in made:
        await gate.close()
        await client.aclose()


async def test_clients_never_exceed_the_limit_in_any_window(gates):
    limit, window = 5, 0.3
    clients = [gates(rpm=limit, concurrency=100, window=window) for _ in range(6)]
    starts: list[int] = []

    async def client(gate: SharedGate) -> None:
        for _ in range(5):
            lease = await gate.acquire()
            starts.append(us(lease.started_at))
            await gate.release(lease)

    await asyncio.gather(*(client(gate) for gate in clients))
    assert len(starts) == 30
    assert most_in_any_window(starts, us(window)) == limit  # never more, and the allowance is used


async def test_a_permit_comes_back_exactly_window_plus_margin_after_its_start(gates):
    gate = gates(rpm=2, concurrency=10, window=5.0, margin=0.25)
    first = await gate.try_acquire()
    second = await gate.try_acquire()
    assert isinstance(first, Lease) and isinstance(second, Lease)
    refused = await gate.try_acquire()
    assert isinstance(refused, Wait) and refused.reason == "rate"
    assert us(refused.until) == us(first.started_at) + us(5.25)
    assert 0 < refused.seconds <= 5.25


async def test_restamp_moves_the_window_to_the_real_start(gates):
    gate = gates(rpm=1, concurrency=10, window=5.0)
    lease = await gate.try_acquire()
    assert isinstance(lease, Lease)
    granted = lease.started_at
    await asyncio.sleep(0.05)
    await gate.restamp(lease)
    assert lease.started_at > granted
    refused = await gate.try_acquire()
    assert isinstance(refused, Wait) and us(refused.until) == us(lease.started_at) + us(5.0)


async def test_concurrency_cap_holds_across_clients(gates):
    clients = [gates(rpm=1000, concurrency=2, window=1.0) for _ in range(5)]
    running, most, done = 0, 0, 0

    async def client(gate: SharedGate) -> None:
        nonlocal running, most, done
        for _ in range(4):
            async with gate.slot():
                running += 1
                most = max(most, running)
                await asyncio.sleep(0.02)
                running -= 1
                done += 1

    await asyncio.gather(*(client(gate) for gate in clients))
    assert (done, most) == (20, 2)
    assert (await clients[0].stats()).in_flight == 0


async def test_a_freed_slot_wakes_a_waiter_in_another_client_at_once(gates):
    # Neither the poll nor the lease would end the wait within the test's timeout: only the release can.
    holder = gates(rpm=100, concurrency=1, lease_seconds=60, poll_seconds=60)
    waiter = gates(rpm=100, concurrency=1, lease_seconds=60, poll_seconds=60)
    held = await holder.acquire()
    task = asyncio.create_task(waiter.acquire())
    await asyncio.sleep(0.1)
    assert not task.done()
    await holder.release(held)
    async with asyncio.timeout(10):
        lease = await task
    assert lease.started_at > held.started_at


async def test_cancelling_a_waiting_acquire_leaks_nothing(gates):
    holder = gates(rpm=100, concurrency=1)
    other = gates(rpm=100, concurrency=1)
    held = await holder.acquire()
    task = asyncio.create_task(other.acquire())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await holder.release(held)
    assert isinstance(await other.try_acquire(), Lease)


async def test_a_pause_is_honoured_by_every_client(gates):
    pauser, *others = [gates(rpm=100, concurrency=10, window=1.0) for _ in range(3)]
    left = await pauser.pause(1.0)
    assert 0 < left <= 1.0
    until = int(await pauser.redis.get("gib:gate:{upstream}:pause"))
    for gate in (pauser, *others):
        refused = await gate.try_acquire()
        assert isinstance(refused, Wait) and refused.reason == "pause" and us(refused.until) == until
    leases = await asyncio.gather(*(gate.acquire() for gate in others))
    assert all(us(lease.started_at) >= until for lease in leases)


async def test_a_shorter_pause_never_cuts_a_longer_one(gates):
    gate = gates(rpm=10, concurrency=1)
    await gate.pause(30)
    assert await gate.pause(0.1) > 29
    assert (await gate.stats()).paused_for > 29


async def test_tokens_are_charged_at_start_and_corrected_by_real_usage(gates):
    gate = gates(rpm=100, concurrency=10, tpm=3000, tokens_per_request=1400, window=60)
    first, second = await gate.try_acquire(), await gate.try_acquire()
    assert isinstance(first, Lease) and isinstance(second, Lease)
    refused = await gate.try_acquire()  # 2800 + 1400 > 3000
    assert isinstance(refused, Wait) and refused.reason == "rate"
    assert us(refused.until) == us(first.started_at) + us(60)  # the first permit's tokens would make room
    await gate.release(first, tokens=200)  # the real usage: 200 + 1400 + 1400 fits
    third = await gate.try_acquire()
    assert isinstance(third, Lease)
    stats = await gate.stats()
    assert (stats.starts_in_window, stats.tokens_in_window, stats.in_flight) == (3, 3000, 2)


async def test_a_request_above_the_token_budget_waits_for_an_empty_window(gates):
    gate = gates(rpm=100, concurrency=10, tpm=1000, window=60)
    small = await gate.try_acquire(tokens=10)
    assert isinstance(small, Lease)
    refused = await gate.try_acquire(tokens=5000)
    assert isinstance(refused, Wait) and us(refused.until) == us(small.started_at) + us(60)
    await gate.redis.delete("gib:gate:{upstream}:starts")  # the window is empty again
    assert isinstance(await gate.try_acquire(tokens=5000), Lease)


async def test_requests_per_day_run_out_until_midnight_pacific(gates):
    first, second = gates(rpm=100, concurrency=10, rpd=2), gates(rpm=100, concurrency=10, rpd=2)
    assert isinstance(await first.try_acquire(), Lease)
    assert await second.refusal() is None
    assert isinstance(await second.try_acquire(), Lease)
    assert isinstance(await first.refusal(), BudgetExhausted)
    for gate in (first, second):
        with pytest.raises(BudgetExhausted) as refused:
            await gate.acquire()
        assert refused.value.scope == "upstream"
        assert abs(refused.value.resets_at_ts - DailyCounter(0).next_reset(refused.value.resets_at_ts - 1)) < 1
    assert (await first.stats()).requests_today == 2


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from bot.scheduler.shared_limits import SharedGate, SharedLimits

    async def main(url, processes, clients, starts, limit, window, concurrency):
        redis = aioredis.Redis.from_url(url)
        await redis.incr("barrier")
        while int(await redis.get("barrier")) < processes:  # everyone contends from the first start
            await asyncio.sleep(0.01)
        gates = [SharedGate(aioredis.Redis.from_url(url), SharedLimits(rpm=limit, concurrency=concurrency,
                 window=window)) for _ in range(clients)]
        seen, most = [], 0

        async def client(gate):
            nonlocal most
            for _ in range(starts):
                async with gate.slot() as lease:
                    seen.append(round(lease.started_at * 1_000_000))
                    most = max(most, await redis.incr("running"))
                    await asyncio.sleep(0.01)
                    await redis.decr("running")

        await asyncio.gather(*(client(g) for g in gates))
        print(json.dumps({"starts": seen, "most_running": most}))

    asyncio.run(main(sys.argv[1], *map(int, sys.argv[2:5]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])))
    """
)


async def test_processes_never_exceed_the_limit_in_any_window_nor_the_concurrency(redis_url):  # noqa: F811
    limit, window, concurrency = 6, 0.4, 3
    args = [redis_url, "3", "2", "5", str(limit), str(window), str(concurrency)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, *args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode() for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    starts = [t for r in results for t in r["starts"]]
    assert len(starts) == 30
    assert most_in_any_window(starts, us(window)) == limit
    assert max(r["most_running"] for r in results) <= concurrency


HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aioredis
    from bot.scheduler.shared_limits import SharedGate, SharedLimits

    async def main(url):
        gate = SharedGate(aioredis.Redis.from_url(url), SharedLimits(rpm=100, concurrency=1, lease_seconds=2.0))
        await gate.acquire()
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_killed_process_gives_its_slot_back_when_its_lease_expires(gates, redis_url):  # noqa: F811
    gate = gates(rpm=100, concurrency=1, lease_seconds=2.0)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, redis_url, cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        await asyncio.sleep(2.5)  # longer than a lease: only the holder's renewals keep the slot
        refused = await gate.try_acquire()
        assert isinstance(refused, Wait) and refused.reason == "slot"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        await holder.wait()
    refused = await gate.try_acquire()
    assert isinstance(refused, Wait) and refused.reason == "slot"  # not before its lease runs out
    async with asyncio.timeout(10):
        lease = await gate.acquire()
    assert us(lease.started_at) >= us(refused.until)
