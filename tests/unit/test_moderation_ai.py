"""The AI second opinion and its appeals against the project's fake Gemini: a text model answering scripted JSON
verdicts, checking each request's `responseSchema` as the real API does.

The request is compared with what google-genai sends for the same call (`response_schema`, JSON answer), by
running the SDK against the same fake. What is asserted is what a member or an operator would see: the verdict
and its reason, what reached the model, the audit log, the spend counted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import InvalidRequest, ModerationBlocked
from bot.models import ImageRequest, InputImage
from bot.moderation.ai import AI_UNAVAILABLE, RESPONSE_SCHEMA, SYSTEM, AIModerator
from bot.moderation.store import Moderation
from bot.quota.ledger import QuotaLedger
from bot.services import build_moderation, build_quota
from tests.fakes.gemini import FakeGemini, GeminiReply, RecordedRequest
from tests.fakes.gemini_images import png_bytes

MODEL, APPEAL_MODEL = "gemini-2.5-flash-lite", "gemini-2.5-flash"
GUILD, USER, CHANNEL = 100, 7, 55


def verdict(category: str, confidence: float = 0.9, reason: str = "scripted") -> dict[str, Any]:
    return {"category": category, "confidence": confidence, "reason": reason}


def script(fake: FakeGemini, **answers: list[Any]) -> None:
    """Each model (by keyword: `ai`, `appeal`) answers its list in order, the last one again and again; a model
    without a script answers the smallest verdict that fits the schema ("none")."""
    queues = {MODEL: list(answers.get("ai", [])), APPEAL_MODEL: list(answers.get("appeal", []))}

    def answer(request: RecordedRequest) -> Any:
        queue = queues.get(request.model or "")
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]

    fake.text_answers = answer


def calls(fake: FakeGemini, model: str = MODEL) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.model == model]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def moderator(session: aiohttp.ClientSession, fake: FakeGemini, **kwargs: Any) -> AIModerator:
    return AIModerator(session, SecretStr(fake.api_key), kwargs.pop("model", MODEL), base_url=fake.base_url, **kwargs)


async def test_the_request_is_what_google_genai_sends_for_the_same_call(session, gemini):
    from google import genai
    from google.genai import types

    await moderator(session, gemini).judge("a red fox in the snow")
    client = genai.Client(
        api_key=gemini.api_key, http_options=types.HttpOptions(base_url=gemini.base_url, api_version="v1beta")
    )
    schema = types.Schema(
        type=types.Type.OBJECT,
        properties={
            "category": types.Schema(type=types.Type.STRING, enum=RESPONSE_SCHEMA["properties"]["category"]["enum"]),
            "confidence": types.Schema(type=types.Type.NUMBER),
            "reason": types.Schema(type=types.Type.STRING),
        },
        required=["category", "confidence", "reason"],
        property_ordering=["category", "confidence", "reason"],
    )
    await client.aio.models.generate_content(
        model=MODEL,
        contents="Prompt to judge:\na red fox in the snow",
        config=types.GenerateContentConfig(
            system_instruction=SYSTEM,
            temperature=0,
            max_output_tokens=256,
            response_mime_type="application/json",
            response_schema=schema,
        ),
    )
    ours, sdk = gemini.requests
    assert (ours.status, sdk.status) == (200, 200)  # both passed the fake's checks of the body and its schema
    assert ours.body == sdk.body
    assert ours.headers["x-goog-api-key"] == sdk.headers["x-goog-api-key"] == gemini.api_key
    assert ours.path == sdk.path == f"/v1beta/models/{MODEL}:generateContent"


async def test_an_allowed_prompt_passes_and_its_cost_is_counted_from_the_usage(session, gemini):
    ai = moderator(session, gemini, input_usd_per_mtok=0.1, output_usd_per_mtok=0.4)
    heard = []

    async def on_cost(call):
        heard.append(call)

    ai.on_cost = on_cost
    script(gemini, ai=[verdict("none", 0.95, "a landscape")])
    result = await ai.judge("a lighthouse at dusk", guild_id=GUILD)
    assert result.allowed and result.tier == "ai"
    usage = gemini.requests[-1].response["usageMetadata"]
    output = usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
    expected = usage["promptTokenCount"] * 0.1e-6 + output * 0.4e-6
    assert ai.spent_usd == pytest.approx(expected) and expected > 0
    assert [(c.model, c.guild_id, c.prompt_tokens, c.output_tokens) for c in heard] == [
        (MODEL, GUILD, usage["promptTokenCount"], output)
    ]


async def test_a_harmful_answer_blocks_with_the_models_reason(session, gemini):
    script(gemini, ai=[verdict("gore", 0.93, "a detailed depiction of a mutilated body")])
    result = await moderator(session, gemini).judge("an artistic rendering of a crime scene, everything visible")
    assert result.blocked and (result.category, result.tier) == ("gore", "ai")
    assert result.explanation == "a detailed depiction of a mutilated body"
    assert result.decided_by == f"AI second opinion · rule: {MODEL}, confidence 0.93"


async def test_low_confidence_does_not_block(session, gemini):
    script(gemini, ai=[verdict("sexual", 0.3)])
    assert (await moderator(session, gemini, min_confidence=0.5).judge("a romantic beach walk")).allowed


@pytest.mark.parametrize("on_error", ["allow", "block"])
async def test_a_timeout_follows_on_error(session, gemini, on_error):
    gemini.text_delay = 2.0
    result = await moderator(session, gemini, timeout=0.1, on_error=on_error).judge("a cat")
    assert result.allowed is (on_error == "allow")
    assert "no answer within 0.1s" in result.explanation
    assert result.category == (AI_UNAVAILABLE if on_error == "block" else None)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(GeminiReply.overloaded(), id="503"),
        pytest.param(GeminiReply.rate_limited(5.0), id="429"),
        pytest.param(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"), id="prompt-blocked"),
        pytest.param(GeminiReply.finish("SAFETY"), id="no-content"),
        pytest.param(GeminiReply.api_key_invalid(), id="bad-key"),
    ],
)
async def test_unusable_answers_follow_on_error_and_never_show_the_key(session, gemini, reply, caplog):
    caplog.set_level(logging.DEBUG)
    script(gemini, ai=[reply])
    assert (await moderator(session, gemini, on_error="allow").judge("a cat")).allowed
    result = await moderator(session, gemini, on_error="block").judge("a cat")
    assert result.blocked and result.category == AI_UNAVAILABLE
    assert gemini.api_key not in result.explanation and gemini.api_key not in caplog.text
    assert gemini.api_key not in repr(moderator(session, gemini))


async def test_the_cache_by_normalised_prompt_makes_no_second_call(session, gemini):
    script(gemini, ai=[verdict("sexual", 0.8, "explicit")])
    ai = moderator(session, gemini)
    first = await ai.judge("A  woman\u200b on a bed, everything shown")
    again = await ai.judge("a woman on a bed,   everything shown")
    assert first.blocked and again.blocked
    assert len(gemini.requests) == 1 and ai.calls == 1


async def test_errors_are_not_cached(session, gemini):
    script(gemini, ai=[GeminiReply.overloaded(), verdict("none")])
    ai = moderator(session, gemini, on_error="block")
    assert (await ai.judge("a cat")).blocked
    assert (await ai.judge("a cat")).allowed
    assert len(gemini.requests) == 2


async def test_input_images_are_sent_only_when_switched_on(session, gemini):
    picture = png_bytes(16, 16)
    image = InputImage(picture, "image/png")
    await moderator(session, gemini, images=False).judge("edit this", [image])
    await moderator(session, gemini, images=True).judge("edit this", [image])
    without, with_images = gemini.requests
    assert without.images == [] and with_images.images == [("image/png", picture)]


# --- through the store: blocks, audit, spend, appeals ---------------------------------------------------------


def settings_for(fake: FakeGemini, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gemini_api_key": fake.api_key,
        "gemini_base_url": fake.base_url,
        "moderation_ai_model": MODEL,
        "moderation_appeal_model": APPEAL_MODEL,
        "moderation_appeals_per_day": 2,
        "moderation_cooldown_blocks": 3,
    }
    return Settings(_env_file=None, **{**values, **overrides})


@pytest.fixture
def build(db, session, gemini) -> Callable[..., tuple[Moderation, QuotaLedger]]:
    """The store and the ledger as the composition root builds them."""

    def make(**overrides: Any) -> tuple[Moderation, QuotaLedger]:
        settings = settings_for(gemini, **overrides)
        quota = build_quota(db, settings)
        return build_moderation(db, settings, http=session, quota=quota), quota

    return make


@pytest.fixture
def store(build) -> Moderation:
    return build()[0]


def request(prompt: str, user: int = USER) -> ImageRequest:
    return ImageRequest(user_id=user, channel_id=CHANNEL, prompt=prompt, guild_id=GUILD)


async def ai_block(store: Moderation, prompt: str) -> ModerationBlocked:
    await store.check(request(prompt))  # the word lists let it through ...
    with pytest.raises(ModerationBlocked) as info:
        await store.second_opinion(request(prompt))  # ... the AI tier does not
    return info.value


async def test_an_unset_model_means_no_second_opinion(build, gemini):
    store, _ = build(moderation_ai_model="", moderation_appeal_model="")
    assert store.ai is None and store.appeals.model is None
    await store.second_opinion(request("a cat"))
    assert gemini.requests == []


async def test_local_blocks_never_reach_the_model(store, gemini):
    with pytest.raises(ModerationBlocked) as info:
        await store.check(request("a nude woman"))
    assert info.value.tier == "local" and info.value.appeal_id is None
    assert gemini.requests == []


async def test_an_ai_block_is_audited_appealable_and_counted_in_spend(build, gemini):
    store, quota = build()
    script(gemini, ai=[verdict("sexual", 0.9, "a paraphrase of nudity")])
    exc = await ai_block(store, "a woman wearing only sunlight")
    assert (exc.category, exc.tier, exc.reason) == ("sexual", "ai", "a paraphrase of nudity")
    (row,) = await store.log(GUILD)
    assert (row.id, row.tier, row.source, row.text) == (exc.appeal_id, "ai", "bot", "a woman wearing only sunlight")
    assert row.detail == f"a paraphrase of nudity [AI second opinion · rule: {MODEL}, confidence 0.90]"
    spend = await quota.spend(GUILD)
    assert spend.cost_usd > 0 and spend.images == 0  # the model's cost, no image
    assert (await quota.spend(None)).cost_usd == spend.cost_usd
    assert (await quota.status(USER, GUILD)).used == 0


async def test_an_appeal_overturns_a_block_and_the_prompt_then_passes(store, gemini):
    script(gemini, ai=[verdict("sexual", 0.9, "reads as nudity")], appeal=[verdict("none", 0.8, "a poetic image")])
    exc = await ai_block(store, "a woman wearing only sunlight")
    assert exc.appeal_id is not None
    result = await store.appeal(GUILD, USER, exc.appeal_id)
    assert result.overturned and (result.decided_by, result.reason, result.appeals_left) == (
        APPEAL_MODEL,
        "a poetic image",
        1,
    )
    await store.second_opinion(request("a woman wearing only sunlight"))  # passes, from the cache
    assert [r.model for r in gemini.requests] == [MODEL, APPEAL_MODEL]
    (block,) = await store.log(GUILD)
    assert block.overturned_at is not None
    with pytest.raises(InvalidRequest, match="already overturned"):
        await store.appeal(GUILD, USER, exc.appeal_id)


async def test_an_upheld_appeal_and_the_daily_limit(store, gemini):
    script(gemini, ai=[verdict("gore", 0.9, "graphic")], appeal=[verdict("gore", 0.95, "still graphic")])
    ids = [(await ai_block(store, f"scene number {n}, all of it")).appeal_id for n in range(3)]
    first = await store.appeal(GUILD, USER, ids[0])
    assert (first.outcome, first.reason, first.appeals_left) == ("upheld", "still graphic", 1)
    with pytest.raises(InvalidRequest, match="already appealed"):
        await store.appeal(GUILD, USER, ids[0])
    assert (await store.appeal(GUILD, USER, ids[1])).appeals_left == 0
    with pytest.raises(InvalidRequest, match="used your 2 appeals"):
        await store.appeal(GUILD, USER, ids[2])
    assert len(calls(gemini, APPEAL_MODEL)) == 2


async def test_only_your_own_ai_blocks_can_be_appealed(store, gemini):
    script(gemini, ai=[verdict("hate", 0.9, "dehumanising")])
    exc = await ai_block(store, "those people, you know how they are")
    assert exc.appeal_id is not None
    with pytest.raises(InvalidRequest, match="not one of yours"):
        await store.appeal(GUILD, USER + 1, exc.appeal_id)
    with pytest.raises(InvalidRequest, match="not one of yours"):
        await store.appeal(GUILD + 1, USER, exc.appeal_id)
    with pytest.raises(ModerationBlocked):
        await store.check(request("a nude woman"))
    local = (await store.log(GUILD))[0]
    with pytest.raises(InvalidRequest, match="Only blocks by the AI"):
        await store.appeal(GUILD, USER, local.id)
    assert calls(gemini, APPEAL_MODEL) == []


async def test_without_an_appeal_model_appeals_go_to_the_moderators(build, gemini):
    store, _ = build(moderation_appeal_model="")
    script(gemini, ai=[verdict("sexual", 0.9)])
    exc = await ai_block(store, "a suggestive scene")
    heard = []

    async def on_appeal(block, result):
        heard.append((block.id, result.outcome, result.decided_by))

    store.appeals.on_appeal = on_appeal
    assert exc.appeal_id is not None
    result = await store.appeal(GUILD, USER, exc.appeal_id)
    assert (result.outcome, result.decided_by) == ("referred", "moderators")
    assert heard == [(exc.appeal_id, "referred", "moderators")]


async def test_an_appeal_model_that_cannot_answer_refers_the_appeal(store, gemini):
    script(gemini, ai=[verdict("gore", 0.9)], appeal=[GeminiReply.overloaded()])
    exc = await ai_block(store, "the aftermath")
    assert exc.appeal_id is not None
    result = await store.appeal(GUILD, USER, exc.appeal_id)
    assert (result.outcome, result.decided_by) == ("referred", APPEAL_MODEL) and "HTTP 503" in result.reason


async def test_overturned_blocks_and_appeals_never_count_toward_a_cool_down(store, gemini):
    script(gemini, ai=[verdict("sexual", 0.9)], appeal=[verdict("none", 0.9, "fine")])
    first = await ai_block(store, "scene one")
    second = await ai_block(store, "scene two")
    assert first.appeal_id is not None and second.cooldown_until is None
    await store.appeal(GUILD, USER, first.appeal_id)
    third = await ai_block(store, "scene three")  # three blocks, one overturned: no cool-down yet
    assert third.cooldown_until is None
    fourth = await ai_block(store, "scene four")
    assert fourth.cooldown_until is not None


async def test_moderation_test_shows_the_ai_tier(store, gemini):
    script(gemini, ai=[verdict("gore", 0.9, "graphic injury")])
    explanation = await store.explain(GUILD, "the aftermath, every detail")
    lines = explanation.lines()
    assert "AI second opinion: gore (0.90): graphic injury" in lines
    assert lines[-1] == f"decided by: AI second opinion · rule: {MODEL}, confidence 0.90"
