"""The upstream gate against the usual alternatives, on one workload, in one run.

    python bench/scheduler.py [--users 20] [--per-user 15] [--limit 20] [--window 1.0] [--concurrency N] [--seed 1]

Each contender sends the same requests to its own simulated upstream that enforces a strict sliding window
(at most `limit` requests in any `window` seconds, a 429 with the exact wait above it), with latencies of 3-8 s
scaled by window/60 like the window itself. A background load uses the first window's whole allowance at t=0;
then every user submits all their requests at once, at a random moment in the first quarter window, so all of
them are waiting when the allowance comes back. A 429 is retried after the wait it names, as the bot's retry
loop does.

Printed per contender: the most requests the upstream saw in any window (429s included), the share of the
allowance used in the whole windows while requests were waiting, 429s received, p50/p95 wait (submit to accepted
start) and Jain's fairness index of the users' shares of the starts made while every one of them still had
requests waiting (1.0 = equal shares; in brackets how many users were waiting then).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import most_in_any_window  # noqa: E402
from aiolimiter import AsyncLimiter  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.errors import RateLimited  # noqa: E402
from bot.scheduler.gate import Gate  # noqa: E402
from bot.scheduler.scheduler import Scheduler  # noqa: E402


@dataclass
class Upstream:
    """A strict sliding window: an arrival at t is accepted if fewer than `limit` were accepted in (t - w, t]."""

    limit: int
    window: float
    latency: Callable[[], float]
    arrivals: list[float] = field(default_factory=list)
    accepted: deque[float] = field(default_factory=deque)
    accepted_all: list[tuple[float, int]] = field(default_factory=list)  # (time, user)
    rejected: int = 0

    async def call(self, user: int) -> float:
        now = time.monotonic()
        self.arrivals.append(now)
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            self.rejected += 1
            await asyncio.sleep(0.002)  # a 429 comes back fast
            raise RateLimited("429 RESOURCE_EXHAUSTED", retry_after=self.accepted[0] + self.window - now)
        self.accepted.append(now)
        self.accepted_all.append((now, user))
        await asyncio.sleep(self.latency())
        return now


BACKGROUND = -1  # the user of the load that is already running when the measured users arrive
Send = Callable[[int, Callable[[], Awaitable[float]]], Awaitable[float]]


async def with_retries(attempt: Callable[[], Awaitable[float]]) -> float:
    while True:
        try:
            return await attempt()
        except RateLimited as exc:
            await asyncio.sleep(exc.retry_after or 0.0)


def ours(limit: int, window: float, concurrency: int) -> Send:
    # What bot.services.build_scheduler uses, scaled like the window.
    margin = Settings.model_fields["upstream_window_margin_seconds"].default * window / 60
    gate = Gate(rpm=limit, concurrency=concurrency, window=window, margin=margin, expected_duration=0.1)
    scheduler = Scheduler(gate, user_max_pending=10_000)
    keys = iter(range(10**9))

    async def send(user: int, call: Callable[[], Awaitable[float]]) -> float:
        ticket = scheduler.admit(user, str(next(keys)))
        try:
            return await with_retries(lambda: scheduler.run(ticket, call, None))
        finally:
            scheduler.release(ticket)

    return send


def semaphore(limit: int, window: float, concurrency: int) -> Send:
    sem = asyncio.Semaphore(limit)

    async def send(user: int, call: Callable[[], Awaitable[float]]) -> float:
        async def attempt() -> float:
            async with sem:
                return await call()

        return await with_retries(attempt)

    return send


def leaky_bucket(limit: int, window: float, concurrency: int) -> Send:
    limiter = AsyncLimiter(limit, window)

    async def send(user: int, call: Callable[[], Awaitable[float]]) -> float:
        async def attempt() -> float:
            async with limiter:
                return await call()

        return await with_retries(attempt)

    return send


def jain(values: list[float]) -> float:
    total = sum(values)
    squares = sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else float("nan")


async def run(make: Callable[[int, float, int], Send], args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)  # the same workload and latencies for every contender
    scale = args.window / 60
    upstream = Upstream(args.limit, args.window, lambda: rng.uniform(3, 8) * scale)
    send = make(args.limit, args.window, args.concurrency or args.limit)
    # Users arrive while the bot is busy: a background load has just used the whole first window.
    arrive = {user: rng.uniform(0.01, 0.25) * args.window for user in range(args.users)}
    done: list[tuple[int, float, float]] = []  # (user, submitted, started)
    t0 = time.monotonic()

    async def one(user: int) -> None:
        submitted = time.monotonic()
        started = await send(user, lambda: upstream.call(user))
        done.append((user, submitted, started))

    async def user_burst(user: int) -> None:
        await asyncio.sleep(arrive[user])
        await asyncio.gather(*(one(user) for _ in range(args.per_user)))

    background = [asyncio.create_task(one(BACKGROUND)) for _ in range(args.limit)]
    await asyncio.gather(*background, *(user_burst(user) for user in range(args.users)))
    elapsed = time.monotonic() - t0

    accepted = [t for t, _ in upstream.accepted_all]
    first, last = min(accepted), max(accepted)
    full = int((last - first) // args.window)  # whole windows during which requests were waiting
    in_full = sum(1 for t in accepted if t < first + full * args.window)
    done = [d for d in done if d[0] != BACKGROUND]
    all_waits = sorted(started - submitted for _, submitted, started in done)
    # Fairness while it matters: from the moment every user has submitted, until the first of the users that
    # still had requests waiting then runs out of them; each such user's share of the starts in between.
    everyone_in = max(submitted for _, submitted, _ in done)
    last_start = {user: max(s for u, _, s in done if u == user) for user in arrive}
    contending = [user for user in arrive if last_start[user] > everyone_in]
    until = min(last_start[user] for user in contending)
    shares = [sum(1 for u, _, s in done if u == user and everyone_in <= s <= until) for user in contending]
    return {
        "most": most_in_any_window(upstream.arrivals, args.window),
        "allowance": in_full / (full * args.limit) if full else float("nan"),
        "429s": upstream.rejected,
        "p50": statistics.median(all_waits),
        "p95": all_waits[int(0.95 * (len(all_waits) - 1))],
        "jain": jain([float(share) for share in shares]),
        "contending": len(contending),
        "elapsed": elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--per-user", type=int, default=15)
    parser.add_argument("--limit", type=int, default=20, help="requests allowed in any window")
    parser.add_argument("--window", type=float, default=1.0, help="seconds (60 in production)")
    parser.add_argument("--concurrency", type=int, default=0, help="this gate's in-flight cap (default: --limit)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    total = args.users * args.per_user
    scale = args.window / 60
    print(
        f"{args.users} users x {args.per_user} requests = {total}; limit {args.limit} per {args.window:g} s window; "
        f"upstream latency {3 * scale:.3f}-{8 * scale:.3f} s; {args.limit} background requests at t=0, then each "
        f"user's burst in the first {args.window / 4:g} s\n"
    )
    contenders = [
        (f"this gate (concurrency {args.concurrency or args.limit})", ours),
        (f"asyncio.Semaphore({args.limit})", semaphore),
        (f"aiolimiter.AsyncLimiter({args.limit}, {args.window:g})", leaky_bucket),
    ]
    header = f"{'':34} {'most/window':>11} {'allowance':>9} {'429s':>6} {'p50 wait':>9} {'p95 wait':>9}"
    print(header + f" {'Jain (users)':>13} {'run time':>8}")
    for name, make in contenders:
        r = await run(make, args)
        print(
            f"{name:34} {r['most']:>6}/{args.limit:<4} {r['allowance']:>9.1%} {r['429s']:>6} {r['p50']:>8.2f}s "
            f"{r['p95']:>8.2f}s {r['jain']:>7.3f} ({r['contending']:>2}) {r['elapsed']:>7.1f}s"
        )


if __name__ == "__main__":
    asyncio.run(main())
