"""The operations endpoint over real HTTP: /metrics parsed with prometheus-client's parser, /healthz, and /readyz
following its inputs (gateway, database, shutdown) from 503 to 200 and back."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.health import HealthServer, database_check, readiness_checks
from bot.ops.metrics import Metrics
from bot.storage.db import Database


class World:
    """What the readiness checks look at, changed by the tests the way the bot's state changes."""

    def __init__(self) -> None:
        self.connected = False
        self.shutting_down = False


@pytest.fixture
async def database(tmp_path):
    db = await Database.open(tmp_path / "bot.sqlite3")
    yield db
    await db.close()


@pytest.fixture
async def served(database):
    world = World()
    metrics = Metrics(models=["gemini-2.5-flash-image"], providers=["gemini"])
    checks = readiness_checks(
        gateway_connected=lambda: world.connected,
        database=database_check(database),
        shutting_down=lambda: world.shutting_down,
    )
    async with (
        HealthServer(metrics, checks, port=0) as server,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        yield world, metrics, server, http


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, str, str]:
    async with http.get(path) as response:
        return response.status, response.headers["Content-Type"], await response.text()


def requests_total(text: str) -> dict[tuple[str, ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "imagebot_requests_total":
                labels = sample.labels
                found[(labels["door"], labels["model"], labels["provider"], labels["outcome"])] = sample.value
    return found


async def test_metrics_scrape_parses_and_counters_move(served):
    world, metrics, server, http = served
    status, content_type, text = await get(http, "/metrics")
    assert status == 200 and content_type.startswith("text/plain") and "version=" in content_type
    assert requests_total(text) == {}
    metrics.request_finished(door="imagine", model="gemini-2.5-flash-image", provider="gemini", outcome="delivered")
    metrics.request_finished(door="reply", model="gemini-2.5-flash-image", provider="gemini", outcome="timeout")
    metrics.request_finished(door="imagine", model="gemini-2.5-flash-image", provider="gemini", outcome="delivered")
    _, _, text = await get(http, "/metrics")
    assert requests_total(text) == {
        ("imagine", "gemini-2.5-flash-image", "gemini", "delivered"): 2.0,
        ("reply", "gemini-2.5-flash-image", "gemini", "timeout"): 1.0,
    }


async def test_healthz_answers_with_the_loop_lag(served):
    _, _, server, http = served
    status, content_type, text = await get(http, "/healthz")
    body = json.loads(text)
    assert status == 200 and content_type.startswith("application/json")
    assert body["status"] == "ok" and body["loop_lag_seconds"] >= 0
    server.lag.record(0.25)  # what the periodic timer reports after the loop was blocked for a quarter second
    server.lag.record(0.01)
    body = json.loads((await get(http, "/healthz"))[2])
    assert (body["loop_lag_seconds"], body["worst_lag_seconds"]) == (0.01, 0.25)
    families = {f.name: f for f in text_string_to_metric_families((await get(http, "/metrics"))[2])}
    assert families["imagebot_event_loop_lag_seconds"].samples[0].value == 0.01


async def test_readyz_follows_gateway_shutdown_and_database(served, database):
    world, _, _, http = served
    status, _, text = await get(http, "/readyz")
    assert status == 503
    assert json.loads(text) == {
        "ready": False,
        "failed": ["gateway"],
        "checks": {"gateway": "failed", "database": "ok", "accepting": "ok"},
    }

    world.connected = True  # the gateway connected (READY)
    status, _, text = await get(http, "/readyz")
    assert (status, json.loads(text)["ready"]) == (200, True)

    world.connected = False  # the gateway dropped ...
    assert (await get(http, "/readyz"))[0] == 503
    world.connected = True  # ... and resumed
    assert (await get(http, "/readyz"))[0] == 200

    world.shutting_down = True
    status, _, text = await get(http, "/readyz")
    assert status == 503 and json.loads(text)["failed"] == ["accepting"]
    world.shutting_down = False

    await database.close()  # the database stops answering
    status, _, text = await get(http, "/readyz")
    body = json.loads(text)
    assert status == 503 and body["failed"] == ["database"]
    assert body["checks"]["database"].startswith("error: ")


async def test_a_hanging_check_fails_as_timeout_and_says_nothing_else():
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return True

    def raises() -> bool:
        raise RuntimeError("password=hunter2 in a message")

    checks = {"slow": hangs, "broken": raises, "fine": lambda: True}
    server = HealthServer(Metrics(), checks, port=0, check_timeout=0.05)
    async with server, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.port}/readyz") as response:
            status, text = response.status, await response.text()
    assert status == 503
    assert json.loads(text)["checks"] == {"slow": "timeout", "broken": "error: RuntimeError", "fine": "ok"}
    assert "hunter2" not in text


async def test_binds_loopback_by_default_and_stops_cleanly():
    server = HealthServer(Metrics(), {}, port=0)
    async with server:
        port = server.port
        assert server.host == "127.0.0.1"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/healthz")
