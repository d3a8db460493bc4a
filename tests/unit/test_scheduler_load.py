"""The scheduler under load (issue 12, items 4 and 7): servers take turns as well as members, the whole line is
capped with a clear refusal, and a long line is reported at a bounded cost: one report per interval, a bounded
number of updates per report, and a few dozen updates per request instead of one per start ahead of it."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass

import pytest

from bot.errors import BotBusy, QueueFull
from bot.models import Progress
from bot.scheduler.fairqueue import FairQueue
from bot.scheduler.gate import Gate
from bot.scheduler.scheduler import Scheduler
from tests.fakes.clock import FakeClock
from tests.unit.test_scheduler import Upstream


@dataclass(eq=False)
class Item:
    user_id: int
    group: int | None
    name: str = ""


def test_servers_take_turns_then_members_within_each():
    queue: FairQueue[Item] = FairQueue()
    big = [Item(user, 1, f"big{user}") for user in range(40)]  # forty members of one server, one request each
    for item in big:
        queue.push(item)
    lone = Item(99, 2, "lone")
    queue.push(lone)
    dms = [Item(100 + i, None, f"dm{i}") for i in range(3)]  # three accounts in DMs share one turn
    for item in dms:
        queue.push(item)
    order = queue.order()
    assert [item.name for item in order[:6]] == ["big0", "lone", "dm0", "big1", "dm1", "big2"]
    assert len(queue) == len(order) == 44
    assert [queue.pop() for _ in range(44)] == order


def test_a_members_backlog_is_served_in_turn_with_the_others_of_their_server():
    queue: FairQueue[Item] = FairQueue()
    for i in range(3):
        queue.push(Item(1, 7, f"a{i}"))
    queue.push(Item(2, 7, "b0"))
    queue.push(Item(3, 8, "c0"))
    assert [item.name for item in queue.order()] == ["a0", "c0", "b0", "a1", "a2"]
    assert queue.remove(queue.order()[3]) and not queue.remove(Item(1, 7))
    assert [queue.pop().name for _ in range(len(queue))] == ["a0", "c0", "b0", "a2"]
    assert not queue


def make(clock: FakeClock, **options: float) -> Scheduler:
    gate = Gate(rpm=10_000, concurrency=1, window=60.0)
    settings = {"user_max_pending": 3, "max_queued": 10_000, "report_interval": 0.0, "report_limit": 50}
    return Scheduler(gate, clock=clock, **{**settings, **options})  # type: ignore[arg-type]


async def test_a_lone_member_of_another_server_is_next_however_many_wait_in_one_server():
    clock = FakeClock()
    upstream = Upstream(clock)
    scheduler = make(clock)
    seen: list[Progress] = []

    async def request(user: int, guild: int, progress=None) -> None:
        ticket = scheduler.admit(user, f"k{user}", guild_id=guild)
        try:
            await scheduler.run(ticket, upstream.job(f"u{user}", 1.0), progress)
        finally:
            scheduler.release(ticket)

    async def note(progress: Progress) -> None:
        seen.append(progress)

    tasks = [asyncio.create_task(request(user, 1)) for user in range(41)]  # one runs, forty wait
    await clock.settle()
    tasks.append(asyncio.create_task(request(999, 2, note)))
    await clock.advance(100)
    await asyncio.gather(*tasks)
    # Second in line, not 41st: the server that was just served takes one more turn before it (it was at the
    # back of the ring when the new server joined behind it), then they alternate.
    assert seen[0].position == 2
    assert [name for _, name in upstream.starts][:5] == ["u0", "u1", "u999", "u2", "u3"]


async def test_the_whole_line_is_capped_and_frees_up_as_requests_end():
    clock = FakeClock()
    scheduler = make(clock, max_queued=3)
    tickets = [scheduler.admit(user, str(user), guild_id=user) for user in range(3)]
    with pytest.raises(BotBusy) as refused:
        scheduler.admit(9, "9", guild_id=9)
    assert refused.value.limit == 3
    scheduler.release(tickets[0])
    scheduler.admit(9, "9", guild_id=9)
    # A member who holds their own share hears about their own limit, which they can act on.
    roomy = make(clock, max_queued=10)
    for key in "abc":
        roomy.admit(1, key, guild_id=1)
    with pytest.raises(QueueFull):
        roomy.admit(1, "d", guild_id=1)


async def drain(n: int, *, interval: float, limit: int) -> tuple[dict[int, list[int]], list[int], int]:
    """n members of 20 servers wait; starts are a fake second apart. Returns each one's places as told, the
    number of updates per report, and how many reports there were."""
    clock = FakeClock()
    upstream = Upstream(clock)
    scheduler = make(clock, report_interval=interval, report_limit=limit)
    places: dict[int, list[int]] = defaultdict(list)
    per_report: dict[float, int] = defaultdict(int)

    def note(user: int):
        async def progress(p: Progress) -> None:
            if p.state == "queued":
                places[user].append(p.position)
                per_report[clock.monotonic()] += 1

        return progress

    async def request(user: int) -> None:
        ticket = scheduler.admit(user, str(user), guild_id=user % 20)
        try:
            await scheduler.run(ticket, upstream.job(str(user), 1.0), note(user))
        finally:
            scheduler.release(ticket)

    tasks = [asyncio.create_task(request(user)) for user in range(n)]
    await clock.advance(n + 10)
    await asyncio.gather(*tasks)
    return places, list(per_report.values()), len(per_report)


async def test_a_long_line_costs_each_request_a_few_dozen_updates_not_one_per_start():
    n = 400
    places, per_report, _ = await drain(n, interval=0.0, limit=n)
    total = sum(len(told) for told in places.values())
    # One update per start ahead of each request would be n(n-1)/2 = 79,800.
    bound = n * (10 + math.log(n) / math.log(1 / 0.8) + 2)
    assert total <= bound < n * (n - 1) / 2 / 5
    for told in places.values():
        assert told == sorted(told, reverse=True) and len(set(told)) == len(told)
        assert told[-1] <= 10 or told == [told[0]]  # the last places are shown exactly


async def test_reports_come_at_most_once_per_interval_and_tell_at_most_the_limit():
    n, interval, limit = 300, 5.0, 20
    places, per_report, reports = await drain(n, interval=interval, limit=limit)
    assert max(per_report) <= limit
    assert reports <= (n + 10) / interval + 1  # starts are a second apart: five per report at most
    # Everyone who waited longer than the first interval heard their place (those never told go first).
    assert all(places[user] for user in range(int(interval), n))
