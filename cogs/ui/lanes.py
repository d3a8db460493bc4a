"""Results before progress in a busy channel.

Discord limits the messages a bot creates and edits per channel (about 5 of each per 5 seconds, `writes` per
`window`), and discord.py sends the writes of one bucket in order: a waiting reply or a progress edit that takes
a slot makes the next finished picture wait for the following window. `ChannelLanes` remembers what the bot
wrote in each channel lately (when it asked, a moment before Discord counts it) and:
- lets progress (waiting replies, place-in-line edits) use at most half of a window, and nothing while a result
  is waiting or being written in the channel;
- hands results to discord.py no faster than the window allows, first come first served, so none of them sits
  in discord.py's bucket queue, where one write's wait for the next window holds up the writes behind it.
When progress may not write, a request that came by message gets a ⏳ reaction instead of a waiting reply
(reactions have a bucket of their own), and its progress edits wait for room, the newest state replacing older
ones. discord.py still follows Discord's own headers, so a wrong guess of `writes` costs speed, never a 429 storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Literal

from bot.config import DEFAULTS

Write = Literal["create", "edit"]
_MARGIN = 1.02


class ChannelLanes:
    def __init__(
        self,
        *,
        writes: int = DEFAULTS.discord_channel_writes,
        window: float = DEFAULTS.discord_channel_window_seconds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`writes` per `window` seconds: what Discord allows per channel for creates and, separately, edits.
        Progress may use half of it (at least one), results the rest and anything progress left."""
        self.window = window
        self.writes = writes
        self.progress_share = max(1, writes // 2)
        self.clock = clock
        self.sleep = sleep
        self._recent: dict[tuple[int, Write], deque[float]] = {}
        self._results: dict[int, int] = defaultdict(int)
        self.no_reactions: set[int] = set()  # channels where the bot may not add reactions

    def may_progress(self, channel_id: int, kind: Write) -> bool:
        """Whether a progress write of `kind` may go to the channel now without taking a result's slot."""
        return not self._results.get(channel_id) and len(self._window(channel_id, kind)) < self.progress_share

    def wait(self, channel_id: int, kind: Write) -> float:
        """Seconds until progress of `kind` may next be tried in the channel (0: now)."""
        if self.may_progress(channel_id, kind):
            return 0.0
        recent = self._window(channel_id, kind)
        if not recent:  # held back by a result being written: try again a little later
            return self.window / 10
        return max(self.window / 10, recent[-self.progress_share] + self.window - self.clock())

    def wrote(self, channel_id: int, kind: Write) -> None:
        """Count a write the bot is about to make in the channel (progress or result)."""
        self._recent.setdefault((channel_id, kind), deque()).append(self.clock())

    @contextlib.asynccontextmanager
    async def result_write(self, channel_id: int, kind: Write) -> AsyncIterator[None]:
        """Hold back progress in the channel, wait (results first come first) until the window has room for one
        more write of `kind`, count it, and write. Handing discord.py no more than a window takes keeps each
        result out of its bucket queue, where one result's wait for the next window holds up the others."""
        with self.result(channel_id):
            while True:
                recent = self._window(channel_id, kind)
                if len(recent) < self.writes:
                    break
                # A little past the window: Discord counts a write when it arrives, a moment after it was sent.
                await self.sleep(max(0.0, recent[-self.writes] + self.window * _MARGIN - self.clock()))
            self.wrote(channel_id, kind)
            yield

    @contextlib.contextmanager
    def result(self, channel_id: int) -> Iterator[None]:
        """While a result (or a request's ending) is being written in the channel, progress there waits."""
        self._results[channel_id] += 1
        try:
            yield
        finally:
            self._results[channel_id] -= 1
            if not self._results[channel_id]:
                del self._results[channel_id]

    def _window(self, channel_id: int, kind: Write) -> deque[float]:
        key = (channel_id, kind)
        recent = self._recent.get(key)
        if recent is None:
            return deque()
        horizon = self.clock() - self.window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:  # only channels written to recently are remembered
            del self._recent[key]
        return recent
