"""The operations endpoint: `/metrics`, `/healthz` and `/readyz` on `METRICS_PORT` (off when unset).

- `/healthz` answers 200 while the event loop runs: the handler running at all is the proof. It also reports the
  loop's lag, measured by a periodic timer (how late it fired), which a blocked loop drives up.
- `/readyz` answers 200 only when every readiness check passes (gateway connected, database answers a trivial
  query, not shutting down), else 503 with a JSON body naming each check and what it said. The checks are plain
  callables passed in, so this module never imports discord; a check that raises or hangs fails, with the
  exception's class name only (its message might carry anything).
- `/metrics` is `Metrics.render()`, the Prometheus text format.

Bind to 127.0.0.1 by default (`METRICS_HOST`): the endpoint has no authentication, and in Docker the compose
file sets 0.0.0.0 and publishes the port deliberately.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.ops.metrics import Metrics

log = logging.getLogger(__name__)

# A check answers True (ready) or False; it may be a coroutine function. Raising or timing out counts as False.
Check = Callable[[], bool | Awaitable[bool]]

LAG_INTERVAL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0


def database_check(db: Any) -> Check:
    """A readiness check: the database answers `SELECT 1` (`db` has the `fetchone` of `bot.storage.db.Database`)."""

    async def answers() -> bool:
        row = await db.fetchone("SELECT 1")
        return row is not None and row[0] == 1

    return answers


def readiness_checks(
    *, gateway_connected: Check, database: Check, shutting_down: Callable[[], bool]
) -> dict[str, Check]:
    """The three checks `/readyz` runs for the bot, under the names its 503 body reports."""
    return {
        "gateway": gateway_connected,
        "database": database,
        "accepting": lambda: not shutting_down(),
    }


def rate_limit_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """An aiohttp trace for the Discord client's HTTP session (discord.py's `http_trace`): each 429 it receives is
    counted by the scope Discord's `X-RateLimit-Scope` header names. discord.py retries 429s by itself and has no
    event for them; the trace sees every one, retried or not."""

    async def on_request_end(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            metrics.discord_rate_limited(scope=params.response.headers.get("X-RateLimit-Scope", "unknown"))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


class LoopLag:
    """Measures how late a periodic timer fires: near 0 on a healthy loop, large when something blocks it."""

    def __init__(self, interval: float = LAG_INTERVAL_SECONDS, metrics: Metrics | None = None) -> None:
        self.interval = interval
        self.metrics = metrics
        self.last = 0.0
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(max(0.0, loop.time() - expected))

    def record(self, lag: float) -> None:
        self.last = lag
        self.worst = max(self.worst, lag)
        if self.metrics is not None:
            self.metrics.loop_lag(lag)


class HealthServer:
    """`async with HealthServer(metrics, checks, port=...) as server:` serves until the block ends. Port 0 picks a
    free port (tests); `server.port` is the one bound."""

    def __init__(
        self,
        metrics: Metrics,
        checks: Mapping[str, Check],
        *,
        port: int,
        host: str = "127.0.0.1",
        lag: LoopLag | None = None,
        check_timeout: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.checks = dict(checks)
        self.host = host
        self.port = port
        self.lag = lag or LoopLag(metrics=metrics)
        self.check_timeout = check_timeout
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None)  # scrapes every 15 s would drown the log
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]  # the real one when port 0 asked for any free port
        self.lag.start()
        log.info("metrics and health endpoints on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        await self.lag.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def readiness(self) -> dict[str, str]:
        """Each check's answer: "ok", "failed", "timeout" or "error: ClassName". Run together, so one slow check
        costs its timeout once, not once per check."""
        names = list(self.checks)
        answers = await asyncio.gather(*(self._run_check(self.checks[name]) for name in names))
        return dict(zip(names, answers, strict=True))

    async def _run_check(self, check: Check) -> str:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.check_timeout)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok" if result else "failed"

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        lag = {"loop_lag_seconds": round(self.lag.last, 6), "worst_lag_seconds": round(self.lag.worst, 6)}
        return _json(200, {"status": "ok", **lag})

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self.readiness()
        failed = [name for name, answer in checks.items() if answer != "ok"]
        return _json(503 if failed else 200, {"ready": not failed, "failed": failed, "checks": checks})


def _json(status: int, body: dict[str, object]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
