"""Metrics and health with the real bot between the fakes: `/metrics` parsed by prometheus-client's own parser
moves as requests run, and `/readyz` follows the gateway (503 while it is down, 200 once the session resumed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.logs import current_request_id
from tests.fakes.gemini import GeminiReply

EDIT_ORIGINAL = "PATCH /webhooks/{application_id}/{token}/messages/{message_id}"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def monitored(run_bot, **settings) -> AsyncIterator[tuple]:
    """The bot with its health server on a free port, and an HTTP client for it."""
    async with (
        run_bot(metrics_port=9108, **settings) as bot,
        bot.health_server(port=0) as server,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        yield bot, http


async def scrape(http: aiohttp.ClientSession) -> dict:
    async with http.get("/metrics") as response:
        assert response.status == 200
        return samples(await response.text())


async def ready(http: aiohttp.ClientSession) -> tuple[int, dict]:
    async with http.get("/readyz") as response:
        return response.status, await response.json()


async def test_counters_move_as_requests_run(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.enqueue(GeminiReply.image(), GeminiReply.rate_limited(retry_delay=0.05), GeminiReply.image())
    async with monitored(run_bot, daily_quota=2) as (bot, http):
        model = bot.settings.gemini_model  # the default model: every request here uses it
        before = await scrape(http)
        assert value(before, "imagebot_requests_total", door="imagine", model=model, provider="gemini",
                     outcome="delivered") == 0  # fmt: skip

        first = await fake.slash("imagine", {"prompt": "a red fox"})
        await first.wait_for_original(lambda m: m.attachments)
        # The second answer is a 429 from Google first; and Discord asks the bot to slow down once.
        fake.inject_error(EDIT_ORIGINAL, 429, retry_after=0.01)
        second = await fake.slash("imagine", {"prompt": "a blue fox"})
        await second.wait_for_original(lambda m: m.attachments)
        refused = await fake.slash("imagine", {"prompt": "a green fox"})  # over the daily quota of 2
        await refused.wait_for_callback()
        blocked = await fake.slash("imagine", {"prompt": "a gory photo of a decapitated man"})
        await blocked.wait_for_callback()
        assert await bot.services.pipeline.drain(within=5)

        after = await scrape(http)
        requests = {
            dict(labels)["outcome"]: count
            for (name, labels), count in after.items()
            if name == "imagebot_requests_total" and count
        }
        assert requests == {"delivered": 2, "quota": 1, "blocked": 1}
        assert value(after, "imagebot_upstream_rate_limited_total", provider="gemini") == 1
        assert value(after, "imagebot_upstream_latency_seconds_count", provider="gemini", model=model) == 3
        assert value(after, "imagebot_queue_wait_seconds_count") == 2  # once per request that started
        # What was spent is what the ledger committed.
        credits, micros = await bot.services.db.fetchone(
            "SELECT SUM(credits), SUM(cost_micros) FROM quota_entries WHERE state = 'committed'"
        )
        assert credits == 2 and micros > 0
        assert value(after, "imagebot_credits_spent_total", model=model, provider="gemini") == credits
        assert value(after, "imagebot_cost_usd_total", model=model, provider="gemini") == pytest.approx(micros / 1e6)
        assert value(after, "imagebot_moderation_blocks_total", tier="local", category="gore") == 1
        assert value(after, "imagebot_discord_rate_limited_total", scope="user") == 1
        assert value(after, "imagebot_queue_depth") == 0
        assert value(after, "imagebot_upstream_circuit_state", provider="gemini") == 0
        # No member or server id is a label value anywhere.
        ids = {str(fake.member.id), str(fake.guild.id), str(fake.channel.id)}
        assert not [labels for _, labels in after if {v for _, v in labels} & ids]


async def test_readyz_follows_the_gateway(run_bot, fake_discord):
    fake = fake_discord
    async with monitored(run_bot) as (bot, http):
        async with http.get("/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"
        assert await ready(http) == (200, {"ready": True, "failed": [], "checks": dict.fromkeys(
            ("gateway", "database", "accepting"), "ok")})  # fmt: skip

        await fake.gateway.drop()
        await fake.wait_for(lambda: not bot.gateway_up, what="the bot to see the gateway drop")
        status, body = await ready(http)
        assert (status, body["failed"]) == (503, ["gateway"])
        async with http.get("/healthz") as response:
            assert response.status == 200  # alive all the same: only readiness depends on Discord

        fake.gateway.restore()
        await fake.wait_for(lambda: bot.gateway_up, what="the session to resume")
        assert fake.gateway.resumed == 1  # resumed, not identified anew
        assert (await ready(http))[0] == 200
        ix = await fake.slash("quota")  # events flow again
        await ix.wait_for_callback()


async def test_readyz_says_when_the_bot_stops(run_bot, fake_discord):
    async with monitored(run_bot) as (bot, http):
        await bot.services.scheduler.shutdown(0)
        status, body = await ready(http)
        assert (status, body["failed"]) == (503, ["accepting"])


async def test_budget_alerts_reach_the_configured_channels_once(run_bot, fake_discord, gemini):
    fake = fake_discord
    admins, ops = fake.add_channel("admins"), fake.add_channel("ops")
    caps = {"server_daily_image_cap": 5, "global_daily_image_cap": 5, "usage_alert_channel": ops.id}
    async with run_bot(daily_quota=10, **caps) as bot:
        await bot.services.server_settings.update(fake.guild.id, by=fake.admin.id, alert_channel_id=admins.id)
        for n in range(5):
            ix = await fake.slash("imagine", {"prompt": f"fox {n}"})
            await ix.wait_for_original(lambda m: m.attachments)
            assert await bot.services.pipeline.drain(within=5)
        over = await fake.slash("imagine", {"prompt": "one fox too many"})
        assert "budget is used up" in (await over.wait_for_callback()).data["content"]
        await fake.wait_for(lambda: len(fake.messages(ops, author=fake.bot_user)) == 2, what="two global alerts")

    day = bot.services.quota.days.day_key(bot.clock())
    assert [m.content for m in fake.messages(admins, author=fake.bot_user)] == [
        f"💸 This server's daily image cap is 80 % used (4 of 5 images, {day}).",
        f"💸 This server's daily image cap is used up (5 of 5 images, {day}).",
    ]
    assert [m.content for m in fake.messages(ops, author=fake.bot_user)] == [
        f"💸 The bot's daily image cap is 80 % used (4 of 5 images, {day}).",
        f"💸 The bot's daily image cap is used up (5 of 5 images, {day}).",
    ]


async def test_each_request_logs_under_its_own_request_id(run_bot, fake_discord, caplog):
    fake = fake_discord
    seen: list[tuple[str, str | None]] = []

    class Ids(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_request_id()))

    handler = Ids(logging.INFO)
    logging.getLogger("bot.moderation.store").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="bot.moderation.store"):
            async with run_bot():
                for prompt in ("a decapitated fox", "a decapitated cat"):
                    ix = await fake.slash("imagine", {"prompt": prompt})
                    await ix.wait_for_callback()
    finally:
        logging.getLogger("bot.moderation.store").removeHandler(handler)
    blocks = [rid for message, rid in seen if message.startswith("moderation (local) blocked")]
    assert len(blocks) == 2 and None not in blocks and blocks[0] != blocks[1]


async def test_retention_runs_when_the_bot_starts(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot() as bot:
        ix = await fake.slash("imagine", {"prompt": "an old fox"})
        await ix.wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        path = bot.services.db.path
    with sqlite3.connect(path) as conn:  # the picture was made three days ago
        conn.execute("UPDATE generations SET created_at = created_at - 3 * 86400")
    async with run_bot(prompt_retention_days=2) as bot:

        async def prompts() -> list[str]:
            return [row[0] for row in await bot.services.db.fetchall("SELECT prompt FROM generations")]

        for _ in range(200):
            if await prompts() == [""]:
                break
            await asyncio.sleep(0.01)
        assert await prompts() == [""]


def test_the_gateway_latency_gauge_reads_the_heartbeat(tmp_path, monkeypatch):
    from bot.app import ImageBot
    from bot.config import Settings

    bot = ImageBot(Settings(_env_file=None, metrics_port=9108, database_path=tmp_path / "db.sqlite3"))
    monkeypatch.setattr(ImageBot, "latency", property(lambda bot: float("inf")))  # no heartbeat acknowledged yet
    bot._record_latency()
    assert value(samples(bot.metrics.render().decode()), "imagebot_gateway_latency_seconds") == 0
    monkeypatch.setattr(ImageBot, "latency", property(lambda bot: 0.25))  # the shards' average heartbeat
    bot._record_latency()
    assert value(samples(bot.metrics.render().decode()), "imagebot_gateway_latency_seconds") == 0.25


def healthcheck_command() -> str:
    """The shell command of the Dockerfile's HEALTHCHECK."""
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    found = re.search(r"^\s*CMD (python -c .+)$", dockerfile.split("HEALTHCHECK", 1)[1], re.M)
    assert found is not None
    return found.group(1)


async def test_the_docker_healthcheck_command_asks_healthz(run_bot, fake_discord):
    command = healthcheck_command()

    async def healthcheck(port: int) -> int:
        env = {**os.environ, "METRICS_PORT": str(port)}
        proc = await asyncio.create_subprocess_shell(command, env=env, stderr=asyncio.subprocess.DEVNULL)
        return await asyncio.wait_for(proc.wait(), 30)

    async with run_bot() as bot, bot.health_server(port=0) as server:
        assert await healthcheck(server.port) == 0
        port = server.port
    assert await healthcheck(port) != 0  # nothing answers any more
