"""Providers as users and admins see them (issue 13): the real bot between the fake Discord, the strict fake
Gemini and the strict fake gateway.

What an admin reads in `/quota-admin spend` (each provider and model at its real cost, failed calls it may bill),
what members read when a gateway fails or refuses (its display name, never "Google"), what `/queue` shows of each
provider's gate, and an edit of a Gemini 3 picture made by a gateway while Google is overloaded (a stateless edit:
the picture as an input, no model turn; the quota exact).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest

from tests.e2e.edit_helpers import footer, generations, imagine, result_reply
from tests.fakes.gemini import GeminiReply
from tests.fakes.openai_gateway import FakeGateway, GatewayReply

PRO, DEFAULT = "gemini-3-pro-image", "gemini-nano-banana-2.1"
FLAG_EPHEMERAL = 64
OVERLOADED = "image model is overloaded right now"


@pytest.fixture
async def gateway(monkeypatch) -> AsyncIterator[FakeGateway]:
    """An OpenRouter-style chat gateway named `openrouter`, shown to members as OpenRouter."""
    async with FakeGateway(kinds=("chat",)) as server:
        for name, value in {
            "PROVIDER_OPENROUTER_KIND": "openai-chat",
            "PROVIDER_OPENROUTER_BASE_URL": server.base_url,
            "PROVIDER_OPENROUTER_ALLOW_HTTP": "true",
            "PROVIDER_OPENROUTER_API_KEY": server.api_key,
            "PROVIDER_OPENROUTER_MODELS": f"{DEFAULT}=google/{DEFAULT},{PRO}=google/{PRO}",
            "PROVIDER_OPENROUTER_RPM": "5",
            "PROVIDER_OPENROUTER_CONCURRENCY": "2",
            "PROVIDER_OPENROUTER_DISPLAY_NAME": "OpenRouter",
        }.items():
            monkeypatch.setenv(name, value)
        yield server


def fields(embed: dict) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed.get("fields", [])}


async def spend(fake, *, by=None) -> dict[str, list[str]]:
    """`/quota-admin spend` (as the bot's owner: both scopes), each field's lines."""
    ix = await fake.slash("quota-admin spend", {}, user=by or fake.owner)
    callback = await ix.wait_for_callback()
    assert callback.data["flags"] & FLAG_EPHEMERAL
    (embed,) = callback.data["embeds"]
    return {name: value.splitlines() for name, value in fields(embed).items()}


async def costs(bot) -> list[tuple[str, str, int, int, int]]:
    await bot.services.quota.drain()
    rows = await bot.services.db.fetchall(
        "SELECT provider, model, pictures, failed, cost_micros FROM quota_costs ORDER BY entry_id, provider"
    )
    return [tuple(row) for row in rows]


async def told(fake, prompt: str = "a red fox") -> str:
    ix = await fake.slash("imagine", {"prompt": prompt}, user=fake.member)
    message = await ix.wait_for_followup(lambda m: "quota was not charged" in m.content)
    return message.content


async def test_spend_shows_each_provider_and_model_at_real_cost_with_the_calls_it_may_bill(
    run_bot, fake_discord, gemini, gateway, caplog
):
    fake = fake_discord
    caplog.set_level(logging.INFO)
    gemini.enqueue(GeminiReply.stall())  # sent and never answered: Google may bill it; the gateway draws instead
    settings = {"providers": "gemini,openrouter", "gemini_attempt_timeout_seconds": 0.3}
    async with run_bot(**settings) as bot:
        first = await imagine(fake, bot, "a red fox")
        second = await imagine(fake, bot, "a grey wolf")  # Google answers this one
        rows = await generations(bot)
        shown = await spend(fake)
        recorded = await costs(bot)
    (served,) = gateway.served
    assert first.attachments[0].data == served.outputs[0]
    assert footer(first).endswith("· via OpenRouter") and "via" not in footer(second)
    assert [row["provider"] for row in rows] == ["openrouter", "gemini"]
    google_real = rows[1]["cost_micros"] / 1e6  # Google's token counts at the price table
    estimate = 0.0336  # the stalled call, at the price table's estimate
    assert recorded == [
        ("gemini", DEFAULT, 0, 1, round(estimate * 1e6)),
        ("openrouter", DEFAULT, 1, 0, round(served.cost * 1e6)),
        ("gemini", DEFAULT, 1, 0, rows[1]["cost_micros"]),
    ]
    total = estimate + served.cost + google_real
    for scope, cap in (("This server", "of 200 · $"), ("The whole bot", "of 500 · $")):
        head, *lines = shown[scope]
        assert head.startswith(f"2 images {cap}{total:.3f}")
        assert lines == [
            f"• Google · Nano Banana 2.1: 1 picture, 1 failed call it may bill · ${estimate + google_real:.4f}",
            f"• OpenRouter · Nano Banana 2.1: 1 picture · ${served.cost:.4f}",
        ]
    # The log names who made each picture and what every provider may bill for it.
    assert re.search(r"generation 1 delivered by openrouter: .* \$\d+\.\d{4} real cost", caplog.text)
    assert f"gemini ${estimate:.4f} (1 failed), openrouter ${served.cost:.4f}" in caplog.text
    assert gateway.api_key not in caplog.text


async def test_a_request_that_fails_after_google_may_have_billed_it_shows_in_spend_by_provider(
    run_bot, fake_discord, gemini, gateway, caplog
):
    fake = fake_discord
    caplog.set_level(logging.INFO)
    gemini.enqueue(GeminiReply.stall())  # Google may bill it
    gateway.enqueue(GatewayReply.overloaded())  # a 503 bills nothing
    settings = {"providers": "gemini,openrouter", "gemini_attempt_timeout_seconds": 0.3, "gemini_max_attempts": 1}
    async with run_bot(**settings) as bot:
        text = await told(fake)
        assert await bot.services.pipeline.drain(within=5)
        status = await bot.services.quota.status(fake.member.id, fake.guild.id, ())
        shown = await spend(fake, by=fake.admin)
        (row,) = await generations(bot)
    assert status.used == 0
    assert text.startswith("The image model took too long")  # neither provider could draw: neither is named
    assert shown["This server"] == [
        "1 image of 200 · $0.034 of $5.00",
        "• Google · Nano Banana 2.1: 1 failed call it may bill · $0.0336",
    ]
    assert "The whole bot" not in shown  # only the owner sees it
    assert row["status"] == "failed" and row["provider"] is None
    assert "failed (UpstreamTimeout from no single provider) after 1 call(s) that may cost $0.0336" in caplog.text


@pytest.mark.parametrize(
    ("reply", "words", "billed"),
    [
        pytest.param(GatewayReply.overloaded(), f"OpenRouter's {OVERLOADED}", False, id="overloaded"),
        pytest.param(GatewayReply.rate_limited(1), f"OpenRouter's {OVERLOADED}", False, id="rate-limited"),
        pytest.param(
            GatewayReply.refusal("I can't draw that."),
            "🛡️ OpenRouter's safety filter stopped the image it was making (IMAGE_SAFETY). This is OpenRouter's "
            "rule, not this server's",
            True,  # an answer: the gateway bills its tokens, and so does spend
            id="refused",
        ),
    ],
)
async def test_a_gateways_failure_is_told_with_its_name_never_googles(
    run_bot, fake_discord, gemini, gateway, reply, words, billed
):
    gateway.enqueue(reply)
    async with run_bot(providers="openrouter", gemini_max_attempts=1) as bot:
        text = await told(fake_discord)
        assert await bot.services.pipeline.drain(within=5)
        shown = (await spend(fake_discord, by=fake_discord.admin))["This server"]
    assert words in text and "Google" not in text
    assert gemini.requests == []
    (request,) = gateway.requests
    assert request.billed is billed
    if billed:
        assert shown == [
            f"1 image of 200 · ${request.cost:.3f} of $5.00",
            f"• OpenRouter · Nano Banana 2.1: 1 failed call it may bill · ${request.cost:.4f}",
        ]
    else:
        assert shown == ["0 images of 200 · $0.000 of $5.00"]


async def test_a_gateways_refusal_is_audited_as_the_gateways(run_bot, fake_discord, gemini, gateway):
    gateway.enqueue(GatewayReply.refusal())
    async with run_bot(providers="gemini,openrouter") as bot:
        gemini.enqueue(GeminiReply.overloaded())  # Google overloaded: the gateway gets it, and refuses
        text = await told(fake_discord)
        assert await bot.services.pipeline.drain(within=5)
        ix = await fake_discord.slash("moderation log", {}, user=fake_discord.admin)
        (embed,) = (await ix.wait_for_callback()).data["embeds"]
    assert text.startswith("🛡️ OpenRouter's safety filter stopped the image")
    (line, _quote) = embed["description"].split("\n")[-2:]
    assert "· OpenRouter's safety filter" in line and "Google" not in embed["description"]


async def test_queue_shows_each_providers_gate(run_bot, fake_discord, gemini, gateway):
    fake = fake_discord
    gemini.enqueue(GeminiReply.overloaded())
    settings = {"providers": "gemini,openrouter", "circuit_failure_threshold": 1}
    async with run_bot(**settings) as bot:
        shown = await imagine(fake, bot, "a red fox")  # Google fails once: its circuit opens, the gateway draws
        ix = await fake.slash("queue", user=fake.member)
        await ix.wait_for_callback()
        text = ix.callback.data["content"]
    assert footer(shown).endswith("· via OpenRouter") and ix.ephemeral
    lines = text.splitlines()
    at = lines.index("**Providers, in the order they are tried**")
    google, openrouter = lines[at + 1 : at + 3]
    assert re.fullmatch(
        r"• Google: 1 started in the last 60 s · 0 generating · 🔌 kept failing: skipped until <t:\d+:R>", google
    )
    assert openrouter == "• OpenRouter: 1 started in the last 60 s (of 5) · 0 generating (at most 2) · ✅ working"
    assert "Google's model kept failing" not in text  # the bot-wide gate is fine: the chain served the request


async def test_queue_with_one_provider_shows_no_provider_list(run_bot, fake_discord, gemini):
    async with run_bot():
        ix = await fake_discord.slash("queue", user=fake_discord.member)
        await ix.wait_for_callback()
    assert "Providers" not in ix.callback.data["content"]


async def test_a_reply_edit_of_a_gemini_3_picture_goes_to_the_gateway_as_a_stateless_edit_when_google_is_overloaded(
    run_bot, fake_discord, gemini, gateway
):
    fake = fake_discord
    async with run_bot(providers="gemini,openrouter", gemini_models=PRO) as bot:
        shown = await imagine(fake, bot, "a lighthouse", model=PRO, size="2K")
        assert gemini.served[0].model == PRO  # Google made it, and signed its answer
        gemini.enqueue(GeminiReply.overloaded())
        ask = await fake.send_message(content="make it night", reply_to=shown)
        result = await result_reply(fake, bot, ask)
        rows = await generations(bot)
        await bot.services.quota.drain()
        entries = await bot.services.db.fetchall("SELECT credits, state FROM quota_entries ORDER BY id")
        status = await bot.services.quota.status(fake.member.id, fake.guild.id, ())
        recorded = await costs(bot)

    overloaded = gemini.requests[1]
    assert overloaded.model_turns  # Google was asked with its own signed turn first ...
    (edit,) = gateway.served  # ... the gateway got a stateless edit: no model turn, the picture as an input
    messages = edit.body["messages"]
    assert [m["role"] for m in messages] == ["user"]
    assert edit.image_bytes == [shown.attachments[0].data]
    assert "a lighthouse" in edit.prompt and "make it night" in edit.prompt
    assert edit.model == f"google/{PRO}" and edit.body["image_config"]["image_size"] == "2K"
    assert result.attachments[0].data == edit.outputs[0]
    # No "🧠 edited with the model's memory": the gateway never had it.
    assert footer(result) == f"Nano Banana Pro · 2K · google/{PRO} · via OpenRouter · edit 1 of a chain"
    # The quota is exact: Pro at 2K is 4 credits, charged once for each picture and nothing for Google's 503.
    assert [tuple(e) for e in entries] == [(4, "committed"), (4, "committed")]
    assert (status.used, status.reserved, status.refunded) == (8, 0, 0)
    assert [row["provider"] for row in rows] == ["gemini", "openrouter"]
    assert [(r[0], r[1], r[2], r[3]) for r in recorded] == [("gemini", PRO, 1, 0), ("openrouter", PRO, 1, 0)]
    assert recorded[1][4] == round(edit.cost * 1e6)
