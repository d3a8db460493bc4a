"""A task that runs a function every `interval` seconds until stopped: the bot's housekeeping (retention, the
gateway latency gauge). A failing run is logged and the next one still comes; the first run is right away
unless `delay_first`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self, name: str, interval: float, run: Callable[[], Awaitable[object] | object], *, delay_first: bool = False
    ) -> None:
        self.name = name
        self.interval = interval
        self._run = run
        self.delay_first = delay_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        if self.delay_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                result = self._run()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("the periodic task %s failed; it runs again in %.0f s", self.name, self.interval)
            await asyncio.sleep(self.interval)
