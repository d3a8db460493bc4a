"""One upstream allowance shared by several bot processes: the Redis gate against each process gating alone.

    python bench/scale_gate.py [--processes 3] [--members 150] [--per-member 2] [--limit 30] [--window 1]
                               [--concurrency N] [--margin S] [--redis-url URL] [--seed 1]

Each contender runs the same workload in `--processes` OS processes: the members are split unevenly between them
(as shards are: 50 %, 30 %, 20 % for three), every member submits `--per-member` requests at the same moment, and
each request holds the upstream for 3-8 s scaled by window/60. The upstream allows `--limit` starts in any
`--window` seconds across all processes together. Contenders:

- redis gate: `bot.scheduler.shared_limits.SharedGate`, one gate for all processes;
- own gate, N each: each process runs the project's in-memory `Scheduler`/`Gate` at the full limit, which is
  what a second process does today;
- own gate, N/P each: the same with the limit split evenly between the processes (the static way out);
- limits moving window: the `limits` library's async Redis moving window, shared, polled until its reset time
  (it has no margin: its windows are whole seconds).

The first three use `--margin`, by default the settings' default scaled like the window. Printed per contender:
the most starts in any window as the upstream sees them (CLOCK_MONOTONIC, one clock for all processes on a
machine), how many starts a strict upstream would have refused (429s), the share of the allowance used from the
first start to the last (the whole `--limit` at once, then `--limit` per window: over 100 % means the limit was
broken), throughput, and the most starts in any window on the gate's own clock (the Redis server's; for limits,
the client stamps it stores). Without `--redis-url` a throwaway redis-server is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis  # noqa: E402
from _common import in_processes, most_in_any_window  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.scheduler import Scheduler  # noqa: E402
from bot.scheduler.gate import Gate  # noqa: E402
from bot.scheduler.shared_limits import SharedGate, SharedLimits  # noqa: E402

CONTENDERS = ("redis gate", "own gate, N each", "own gate, N/P each", "limits moving window")


def default_margin(window: float) -> float:
    return Settings.model_fields["upstream_window_margin_seconds"].default * window / 60


async def serve(contender: str, jobs: list[tuple[int, float]], cfg: dict[str, Any]) -> list[tuple[float, float]]:
    """Run one process's jobs (member, latency); returns (monotonic start, gate's own start or nan) per job."""
    limit, window, concurrency, processes = cfg["limit"], cfg["window"], cfg["concurrency"], cfg["processes"]
    starts: list[tuple[float, float]] = []

    async def work(latency: float, recorded: float = float("nan")) -> None:
        starts.append((time.monotonic(), recorded))
        await asyncio.sleep(latency)

    client = aioredis.Redis.from_url(cfg["redis_url"])
    if contender == "redis gate":
        limits = SharedLimits(rpm=limit, concurrency=concurrency, window=window, margin=cfg["margin"])
        gate = SharedGate(client, limits, name="bench")

        async def one(member: int, latency: float) -> None:
            async with gate.slot() as lease:
                await work(latency, lease.started_at)

    elif contender.startswith("own gate"):
        share = limit if contender.endswith("N each") else max(1, limit // processes)
        slots = concurrency if contender.endswith("N each") else max(1, concurrency // processes)
        own = Gate(rpm=share, concurrency=slots, window=window, margin=cfg["margin"], expected_duration=0.1)
        scheduler = Scheduler(own, user_max_pending=10_000)
        keys = iter(range(10**9))

        async def one(member: int, latency: float) -> None:
            ticket = scheduler.admit(member, str(next(keys)))
            try:
                await scheduler.run(ticket, lambda: work(latency), None)
            finally:
                scheduler.release(ticket)

    else:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.storage.redis import redispy
        from limits.aio.strategies import MovingWindowRateLimiter

        item = RateLimitItemPerSecond(limit, max(1, round(window)))
        limiter = MovingWindowRateLimiter(RedisStorage("async+" + cfg["redis_url"], implementation="redispy"))
        turn = asyncio.Lock()  # as the Redis gate: one asker per process
        stamps = StampingClock()
        redispy.time = stamps  # type: ignore[assignment]  # to read the stamp it stores with each entry

        async def one(member: int, latency: float) -> None:
            async with turn:
                while not await limiter.hit(item, "bench"):
                    reset, _ = await limiter.get_window_stats(item, "bench")
                    await asyncio.sleep(max(0.001, reset - time.time()))
                recorded = stamps.last  # the only call since: the successful hit's (one asker per process)
            await work(latency, recorded)

    await asyncio.gather(*(one(member, latency) for member, latency in jobs))
    await client.aclose()
    return starts


class StampingClock:
    """Stands in for the `time` module inside limits' Redis storage and remembers the last time it read."""

    last = float("nan")

    def time(self) -> float:
        self.last = time.time()
        return self.last


def refused_by_strict_upstream(times: list[float], limit: int, window: float) -> int:
    accepted: list[float] = []
    refused = 0
    for t in sorted(times):
        if sum(1 for a in accepted[-limit:] if a > t - window) >= limit:
            refused += 1
        else:
            accepted.append(t)
    return refused


def plan(args: argparse.Namespace) -> list[list[tuple[int, float]]]:
    """The same jobs for every contender: members split unevenly, each request with its latency."""
    rng = random.Random(args.seed)
    weights = list(range(args.processes + 2, 2, -1))  # 5:4:3 for three, leaning on the first like real shards
    if args.processes == 3:
        weights = [5, 3, 2]
    cuts = [round(args.members * sum(weights[: i + 1]) / sum(weights)) for i in range(args.processes)]
    scale = args.window / 60
    per_process: list[list[tuple[int, float]]] = []
    first = 0
    for cut in cuts:
        members = range(first, cut)
        first = cut
        # Round-robin order: each member's first request, then each one's second, ...
        per_process.append([(m, rng.uniform(3, 8) * scale) for _ in range(args.per_member) for m in members])
    return per_process


def run(contender: str, args: argparse.Namespace, redis_url: str) -> dict[str, float]:
    cfg = {
        "limit": args.limit,
        "window": args.window,
        "concurrency": args.concurrency or args.limit,
        "processes": args.processes,
        "margin": args.margin,
        "redis_url": redis_url,
    }
    asyncio.run(flush(redis_url))
    results = in_processes(contender, serve, [(contender, jobs, cfg) for jobs in plan(args)])
    starts = [s for r in results for s, _ in r]
    recorded = [g for r in results for _, g in r if g == g]
    first, last = min(starts), max(starts)
    # Offered from the first start to the last: a full window at once, then `limit` per window.
    offered = args.limit * (1 + (last - first) / args.window)
    return {
        "most": most_in_any_window(starts, args.window),
        "most_recorded": most_in_any_window(recorded, args.window) if recorded else float("nan"),
        "429s": refused_by_strict_upstream(starts, args.limit, args.window),
        "allowance": len(starts) / offered,
        "throughput": len(starts) / (last - first),
        "elapsed": last - first,
    }


async def flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--members", type=int, default=150)
    parser.add_argument("--per-member", type=int, default=2)
    parser.add_argument("--limit", type=int, default=30, help="starts allowed in any window, all processes together")
    parser.add_argument("--window", type=float, default=1.0, help="seconds (60 in production; whole for limits)")
    parser.add_argument("--concurrency", type=int, default=0, help="in-flight cap for all processes (default: --limit)")
    parser.add_argument("--margin", type=float, default=None, help="seconds (default: the settings' default, scaled)")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.margin is None:
        args.margin = default_margin(args.window)

    server = None
    redis_url = args.redis_url
    if not redis_url:
        from tests.servers import RedisServer, find_redis_server

        binary = find_redis_server()
        if binary is None:
            sys.exit("redis-server not found: install it or pass --redis-url")
        server = RedisServer.start(binary)
        redis_url = server.url
    total = args.members * args.per_member
    print(
        f"{args.processes} processes, {args.members} members x {args.per_member} = {total} requests, "
        f"limit {args.limit} per {args.window:g} s window shared by all, margin {args.margin * 1000:.1f} ms, "
        f"latency {3 * args.window / 60:.3f}-{8 * args.window / 60:.3f} s"
    )
    print(
        f"{'contender':<22} {'most/window':>11} {'(gate clock)':>12} {'429s':>5} {'allowance':>9} {'starts/s':>9} "
        f"{'time s':>7}"
    )
    try:
        for contender in CONTENDERS:
            r = run(contender, args, redis_url)
            recorded = "" if r["most_recorded"] != r["most_recorded"] else f"{int(r['most_recorded'])}"
            print(
                f"{contender:<22} {int(r['most']):>11} {recorded:>12} {int(r['429s']):>5} {r['allowance']:>9.1%} "
                f"{r['throughput']:>9.1f} {r['elapsed']:>7.2f}"
            )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
