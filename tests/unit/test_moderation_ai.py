"""The AI second opinion and its appeals, against a tiny local Gemini text model that answers scripted verdicts.

The request is compared with what google-genai sends for the same call (`response_schema`, JSON answer), by
running the SDK against the same local server. What is asserted is what a member or an operator would see: the
verdict and its reason, what reached the model, the audit log, the cost counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import InvalidRequest, ModerationBlocked
from bot.models import ImageRequest, InputImage
from bot.moderation_ai import RESPONSE_SCHEMA, SYSTEM, AIModerator
from bot.moderation_store import Moderation

KEY = "test-key-do-not-log-1234"
MODEL, APPEAL_MODEL = "gemini-flash-lite-latest", "gemini-pro-latest"
GUILD, USER, CHANNEL = 100, 7, 55


def answer(category: str, confidence: float = 0.9, reason: str = "scripted", tokens: tuple[int, int] = (100, 20)):
    text = json.dumps({"category": category, "confidence": confidence, "reason": reason})
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": tokens[0], "candidatesTokenCount": tokens[1]},
        "modelVersion": MODEL,
    }


@dataclass
class FakeTextModel:
    """Answers each model's requests from its script, in order; records every request."""

    base_url: str = ""
    scripts: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        self.requests.append(
            {"model": model, "key": request.headers.get("x-goog-api-key"), "body": await request.json()}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        script = self.scripts.get(model) or [answer("none")]
        reply = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(reply, int):
            return web.json_response({"error": {"code": reply, "message": "scripted", "status": "X"}}, status=reply)
        if isinstance(reply, str):
            return web.Response(text=reply, content_type="application/json")
        return web.json_response(reply)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTextModel]:
    model = FakeTextModel()
    app = web.Application()
    app.router.add_post("/v1beta/models/{model}:generateContent", model.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    model.base_url = f"http://127.0.0.1:{port}"
    yield model
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def moderator(session, fake, **kwargs) -> AIModerator:
    return AIModerator(session, SecretStr(KEY), kwargs.pop("model", MODEL), base_url=fake.base_url, **kwargs)


async def test_request_is_what_google_genai_sends_for_the_same_call(session, fake):
    from google import genai
    from google.genai import types

    await moderator(session, fake).judge("a red fox in the snow")
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta"))
    await client.aio.models.generate_content(
        model=MODEL,
        contents="Prompt to judge:\na red fox in the snow",
        config=types.GenerateContentConfig(
            system_instruction=SYSTEM,
            temperature=0,
            max_output_tokens=256,
            response_mime_type="application/json",
            response_schema={k: v for k, v in RESPONSE_SCHEMA.items() if k != "property_ordering"},
        ),
    )
    ours, sdk = fake.requests
    assert ours["body"] == sdk["body"]
    assert ours["key"] == sdk["key"] == KEY and ours["model"] == MODEL


async def test_allowed_prompt_passes_and_its_cost_is_counted(session, fake):
    ai = moderator(session, fake, input_usd_per_mtok=0.1, output_usd_per_mtok=0.4)
    calls = []

    async def on_cost(call):
        calls.append(call)

    ai.on_cost = on_cost
    verdict = await ai.judge("a lighthouse at dusk")
    assert verdict.allowed and verdict.tier == "ai"
    assert ai.spent_usd == pytest.approx(100 * 0.1e-6 + 20 * 0.4e-6)
    assert [(c.model, c.prompt_tokens, c.output_tokens) for c in calls] == [(MODEL, 100, 20)]


async def test_harmful_answer_blocks_with_the_models_reason(session, fake):
    fake.scripts[MODEL] = [answer("gore", 0.93, "a detailed depiction of a mutilated body")]
    verdict = await moderator(session, fake).judge("an artistic rendering of a crime scene, everything visible")
    assert verdict.blocked and (verdict.category, verdict.tier) == ("gore", "ai")
    assert "mutilated body" in verdict.explanation
    assert verdict.decided_by == f"AI second opinion · rule: {MODEL}, confidence 0.93"


async def test_low_confidence_does_not_block(session, fake):
    fake.scripts[MODEL] = [answer("sexual", 0.3)]
    assert (await moderator(session, fake, min_confidence=0.5).judge("a romantic beach walk")).allowed


@pytest.mark.parametrize("on_error", ["allow", "block"])
async def test_timeout_follows_on_error(session, fake, on_error):
    fake.delay = 1.0
    verdict = await moderator(session, fake, timeout=0.1, on_error=on_error).judge("a cat")
    assert verdict.allowed is (on_error == "allow")
    assert "no answer within 0.1s" in verdict.explanation


@pytest.mark.parametrize("reply", [500, 429, "not json", {"candidates": []}, answer("weapons")])
async def test_unusable_answers_follow_on_error(session, fake, reply, caplog):
    fake.scripts[MODEL] = [reply]
    caplog.set_level(logging.DEBUG)
    assert (await moderator(session, fake, on_error="allow").judge("a cat")).allowed
    fake.scripts[MODEL] = [reply]
    verdict = await moderator(session, fake, on_error="block").judge("a cat")
    assert verdict.blocked and verdict.category == "ai_unavailable"
    assert KEY not in verdict.explanation and KEY not in caplog.text


async def test_cache_by_normalised_prompt_makes_no_second_call(session, fake):
    fake.scripts[MODEL] = [answer("sexual", 0.8, "explicit")]
    ai = moderator(session, fake)
    first = await ai.judge("A  woman\u200b on a bed, everything shown")
    again = await ai.judge("a woman on a bed,   everything shown")
    assert first.blocked and again.blocked and len(fake.requests) == 1 and ai.calls == 1


async def test_images_are_sent_only_when_switched_on(session, fake):
    image = InputImage(b"\x89PNG fake", "image/png")
    await moderator(session, fake, images=False).judge("edit this", [image])
    await moderator(session, fake, images=True).judge("edit this", [image])
    without, with_images = (r["body"]["contents"][0]["parts"] for r in fake.requests)
    assert [list(p) for p in without] == [["text"]]
    assert with_images[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORyBmYWtl"}}


# --- through the store: blocks, audit, appeals ------------------------------------------------------------------


@pytest.fixture
def settings(fake) -> Settings:
    return Settings(
        gemini_api_key=KEY,
        gemini_base_url=fake.base_url,
        moderation_ai_model=MODEL,
        moderation_appeal_model=APPEAL_MODEL,
        moderation_appeals_per_day=2,
    )


@pytest.fixture
def store(db, session, settings) -> Moderation:
    moderation = Moderation(db, cooldown_blocks=3)
    moderation.attach_ai(session, settings)
    return moderation


def request(prompt: str) -> ImageRequest:
    return ImageRequest(user_id=USER, channel_id=CHANNEL, prompt=prompt, guild_id=GUILD)


async def ai_block(store: Moderation, prompt: str) -> ModerationBlocked:
    with pytest.raises(ModerationBlocked) as info:
        await store.check(request(prompt))
    return info.value


async def test_unset_model_means_no_second_opinion(db, session, fake):
    moderation = Moderation(db)
    moderation.attach_ai(session, Settings(gemini_api_key=KEY, gemini_base_url=fake.base_url))
    assert moderation.ai is None
    await moderation.check(request("a cat"))
    assert fake.requests == []


async def test_local_blocks_never_reach_the_model(store, fake):
    with pytest.raises(ModerationBlocked):
        await store.check(request("a nude woman"))
    assert fake.requests == []


async def test_ai_block_is_audited_and_appealable(store, fake):
    fake.scripts[MODEL] = [answer("sexual", 0.9, "a paraphrase of nudity")]
    exc = await ai_block(store, "a woman wearing only sunlight")
    assert (exc.category, exc.details["tier"]) == ("sexual", "ai")
    [row] = await store.log(GUILD)
    assert (row.id, row.source, row.text) == (exc.details["appeal_id"], "ai", "a woman wearing only sunlight")
    assert "AI second opinion" in row.detail


async def test_appeal_overturns_a_block_and_the_prompt_then_passes(store, fake):
    fake.scripts[MODEL] = [answer("sexual", 0.9, "reads as nudity")]
    fake.scripts[APPEAL_MODEL] = [answer("none", 0.8, "a poetic description of light")]
    exc = await ai_block(store, "a woman wearing only sunlight")
    result = await store.appeal(GUILD, USER, exc.details["appeal_id"])
    assert result.overturned and result.decided_by == APPEAL_MODEL and result.appeals_left == 1
    await store.check(request("a woman wearing only sunlight"))  # no second block, no new first-model call
    assert [r["model"] for r in fake.requests] == [MODEL, APPEAL_MODEL]
    appeal, block = await store.log(GUILD)
    assert (appeal.source, block.source) == ("appeal", "ai-overturned")
    assert "overturned by " + APPEAL_MODEL in appeal.detail


async def test_upheld_appeal_and_the_daily_limit(store, fake):
    fake.scripts[MODEL] = [answer("gore", 0.9, "graphic")]
    fake.scripts[APPEAL_MODEL] = [answer("gore", 0.95, "still graphic")]
    ids = [(await ai_block(store, f"scene number {n}, all of it")).details["appeal_id"] for n in range(3)]
    first = await store.appeal(GUILD, USER, ids[0])
    assert not first.overturned and first.reason == "still graphic"
    await store.appeal(GUILD, USER, ids[1])
    with pytest.raises(InvalidRequest, match="used your 2 appeals"):
        await store.appeal(GUILD, USER, ids[2])


async def test_only_your_own_ai_blocks_can_be_appealed(store, fake):
    fake.scripts[MODEL] = [answer("hate", 0.9, "dehumanising")]
    exc = await ai_block(store, "those people, you know how they are")
    with pytest.raises(InvalidRequest, match="not one of yours"):
        await store.appeal(GUILD, USER + 1, exc.details["appeal_id"])
    with pytest.raises(ModerationBlocked):
        await store.check(request("a nude woman"))
    local = (await store.log(GUILD))[0]
    with pytest.raises(InvalidRequest, match="Only blocks by the AI"):
        await store.appeal(GUILD, USER, local.id)


async def test_without_an_appeal_model_appeals_go_to_the_moderators(db, session, fake):
    moderation = Moderation(db)
    settings = Settings(gemini_api_key=KEY, gemini_base_url=fake.base_url, moderation_ai_model=MODEL)
    moderation.attach_ai(session, settings)
    fake.scripts[MODEL] = [answer("sexual", 0.9)]
    exc = await ai_block(moderation, "a suggestive scene")
    heard = []

    async def on_appeal(entry, result):
        heard.append((entry.source, result.decided_by))

    moderation.appeals.on_appeal = on_appeal
    result = await moderation.appeal(GUILD, USER, exc.details["appeal_id"])
    assert not result.overturned and result.decided_by == "moderators"
    assert heard == [("appeal", "moderators")]


async def test_appeals_never_count_toward_a_cool_down(store, fake):
    fake.scripts[MODEL] = [answer("sexual", 0.9)]
    fake.scripts[APPEAL_MODEL] = [answer("sexual", 0.9)]
    first = await ai_block(store, "scene one")
    await store.appeal(GUILD, USER, first.details["appeal_id"])
    await store.appeal(GUILD, USER, first.details["appeal_id"])
    second = await ai_block(store, "scene two")  # two blocks and two appeals: still below three blocks
    assert second.details["cooldown_until"] is None


async def test_moderation_test_shows_the_ai_tier(store, fake):
    fake.scripts[MODEL] = [answer("gore", 0.9, "graphic injury")]
    explanation = await store.explain(GUILD, "the aftermath, every detail")
    lines = explanation.lines()
    assert "AI second opinion: gore (0.90): graphic injury" in lines
    assert lines[-1] == f"decided by: AI second opinion · rule: {MODEL}, confidence 0.90"
