"""Results before progress in one channel (issue 12, item 8): what `ChannelLanes` lets through, on a fake clock."""

from __future__ import annotations

import asyncio

from cogs.ui.lanes import ChannelLanes
from tests.fakes.clock import FakeClock

CHANNEL, OTHER = 1, 2


def lanes(clock: FakeClock) -> ChannelLanes:
    return ChannelLanes(writes=5, window=5.0, clock=clock.monotonic, sleep=clock.sleep)


def test_progress_gets_half_a_window_per_kind_and_channel():
    clock = FakeClock()
    lane = lanes(clock)
    for _ in range(2):
        assert lane.may_progress(CHANNEL, "create")
        lane.wrote(CHANNEL, "create")
    assert not lane.may_progress(CHANNEL, "create")
    assert lane.may_progress(CHANNEL, "edit") and lane.may_progress(OTHER, "create")
    assert lane.wait(CHANNEL, "create") == 5.0
    clock._now += 5.0
    assert lane.may_progress(CHANNEL, "create")


async def test_no_progress_while_a_result_waits_or_is_written():
    clock = FakeClock()
    lane = lanes(clock)
    for _ in range(5):
        lane.wrote(CHANNEL, "create")  # the window is full
    order: list[str] = []

    async def result(name: str) -> None:
        async with lane.result_write(CHANNEL, "create"):
            order.append(name)

    first = asyncio.create_task(result("first"))
    await clock.settle()
    assert order == [] and not lane.may_progress(CHANNEL, "edit")  # held back although edits are free
    assert lane.may_progress(OTHER, "edit")
    second = asyncio.create_task(result("second"))
    await clock.advance(5.2)
    await asyncio.gather(first, second)
    assert order == ["first", "second"]  # results in the order they came
    assert lane.may_progress(CHANNEL, "edit")


async def test_results_are_paced_to_the_window_first_come_first_served():
    clock = FakeClock()
    lane = lanes(clock)
    started: list[tuple[int, float]] = []

    async def result(i: int) -> None:
        async with lane.result_write(CHANNEL, "create"):
            started.append((i, clock.monotonic() - 1000.0))

    tasks = []
    for i in range(12):
        tasks.append(asyncio.create_task(result(i)))
        await clock.settle()
    await clock.advance(20)
    await asyncio.gather(*tasks)
    assert [i for i, _ in started] == list(range(12))
    at = [t for _, t in started]
    # Never more than five in any five seconds (a little margin for the hop to Discord).
    assert all(later - earlier >= 5.0 for earlier, later in zip(at, at[5:], strict=False))
    assert at[:5] == [0.0] * 5 and at[5] == at[9] and at[10] > at[5]
