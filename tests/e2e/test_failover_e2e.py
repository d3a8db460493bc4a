"""Failover end to end: the real bot between the fake Discord, the fake Gemini and a fake gateway.

Google failing moves `/imagine` to the gateway (the picture that reaches Discord is the gateway's, spend records
the gateway's own cost); Google refusing the prompt never does; a gateway's url result is downloaded and delivered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from tests.fakes.gemini import GeminiReply
from tests.fakes.openai_gateway import FakeGateway, GatewayReply


@pytest.fixture
async def gateway(monkeypatch) -> AsyncIterator[FakeGateway]:
    async with FakeGateway(default_response_format="url") as server:
        # Per-provider variables come from the environment, as in production (Services reads them at start).
        for name, value in {
            "PROVIDER_GW_KIND": "openai-chat",
            "PROVIDER_GW_BASE_URL": server.base_url,
            "PROVIDER_GW_ALLOW_HTTP": "true",
            "PROVIDER_GW_API_KEY": server.api_key,
            "PROVIDER_GW_MODELS": "gemini-nano-banana-2.1=google/gemini-nano-banana-2.1",
            "PROVIDER_IMG_KIND": "openai-images",
            "PROVIDER_IMG_BASE_URL": server.base_url,
            "PROVIDER_IMG_ALLOW_HTTP": "true",
            "PROVIDER_IMG_API_KEY": server.api_key,
            "PROVIDER_IMG_MODELS": "gemini-nano-banana-2.1=nano-banana",
            "PROVIDER_IMG_PRICES": "0.05",
        }.items():
            monkeypatch.setenv(name, value)
        yield server


async def picture(fake, prompt: str = "a red fox"):
    ix = await fake.slash("imagine", {"prompt": prompt}, user=fake.member)
    return await ix.wait_for_original(lambda m: m.attachments)


async def test_google_overloaded_the_gateway_draws_and_spend_has_its_cost(
    run_bot, fake_discord, gemini, gateway, caplog
):
    gemini.enqueue(GeminiReply.overloaded(), GeminiReply.overloaded(), GeminiReply.overloaded())
    caplog.set_level(logging.DEBUG)
    async with run_bot(providers="gemini,gw") as bot:
        result = await picture(fake_discord)
        assert await bot.services.pipeline.drain(within=5)
        spend = await bot.services.quota.spend(None)
    (served,) = gateway.served
    assert result.attachments[0].data == served.outputs[0]
    footer = result.embeds[0]["footer"]["text"]  # the model asked, the one that answered, and who made it
    assert footer == "Nano Banana 2.1 · 1K · google/gemini-nano-banana-2.1 · via gw"
    assert len(gemini.requests) == 1  # the chain moved on at once; no retry against Google first
    assert spend.images == 1 and spend.cost_usd == pytest.approx(served.cost, abs=1e-6)  # usage.cost, in micros
    assert "provider gemini failed" in caplog.text and gateway.api_key not in caplog.text


async def test_google_refusing_the_prompt_never_reaches_the_gateway(run_bot, fake_discord, gemini, gateway):
    gemini.enqueue(GeminiReply.prompt_blocked())
    async with run_bot(providers="gemini,gw") as bot:
        ix = await fake_discord.slash("imagine", {"prompt": "a red fox"}, user=fake_discord.member)
        told = await ix.wait_for_followup(lambda m: "safety filter refused" in m.content)
        assert await bot.services.pipeline.drain(within=5)
        spend = await bot.services.quota.spend(None)
    assert told.ephemeral and "quota was not charged" in told.content
    assert gateway.requests == [] and spend.images == 0


async def test_a_gateway_url_result_is_delivered_at_its_configured_price(run_bot, fake_discord, gemini, gateway):
    gateway.enqueue(GatewayReply.jpeg())
    async with run_bot(providers="img") as bot:
        result = await picture(fake_discord)
        assert await bot.services.pipeline.drain(within=5)
        spend = await bot.services.quota.spend(None)
    (download,) = gateway.downloads
    assert not download.authorization_sent and gemini.requests == []
    assert result.attachments[0].data == gateway.served[0].outputs[0] and result.attachments[0].filename.endswith(
        ".jpg"
    )
    assert spend.cost_usd == pytest.approx(0.05)
    assert result.embeds[0]["footer"]["text"] == "Nano Banana 2.1 · 1K · nano-banana"  # the only provider: not named


async def test_a_failed_request_that_may_have_been_billed_counts_in_spend_but_not_in_the_quota(
    run_bot, fake_discord, gemini, gateway
):
    gemini.enqueue(GeminiReply.stall())  # sent, and never answered: Google may bill it
    gateway.enqueue(GatewayReply.overloaded())  # a 503 is not billed
    settings = {"providers": "gemini,gw", "gemini_attempt_timeout_seconds": 0.3, "gemini_max_attempts": 1}
    async with run_bot(**settings) as bot:
        ix = await fake_discord.slash("imagine", {"prompt": "a red fox"}, user=fake_discord.member)
        told = await ix.wait_for_followup(lambda m: "quota was not charged" in m.content)
        assert await bot.services.pipeline.drain(within=5)
        spend = await bot.services.quota.spend(fake_discord.guild.id)
        status = await bot.services.quota.status(fake_discord.member.id, fake_discord.guild.id, ())
    assert "took too long" in told.content and status.used == 0
    # Google's attempt, at the price table's estimate; it counts against the image cap too (it may be billed).
    assert spend.images == 1 and spend.cost_usd == pytest.approx(0.0336)
