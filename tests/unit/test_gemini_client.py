"""GeminiProvider against the strict fake: what reaches Google, and what each of Google's answers becomes."""

from __future__ import annotations

import base64
import logging

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import (
    GenerationFailed,
    ImageBlocked,
    OperatorError,
    PromptBlocked,
    RateLimited,
    TextOnlyAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import ImageOptions, InputImage
from bot.providers.gemini import GeminiProvider
from bot.providers.registry import ModelRegistry
from bot.services import build_provider
from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import image_size, jpeg_bytes, png_bytes, png_of_size

KEY = "AIzaSy-test-key-that-must-never-leak"


@pytest.fixture
async def fake():
    async with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def provider(fake, session):
    return GeminiProvider(session, SecretStr(KEY), base_url=fake.base_url, attempt_timeout=5)


def fake_picture(sent) -> bytes:
    """The picture the fake answered (the last part that is not a thought)."""
    parts = sent.response["candidates"][0]["content"]["parts"]
    return base64.b64decode([p for p in parts if "inlineData" in p and not p.get("thought")][-1]["inlineData"]["data"])


# --- what we send -------------------------------------------------------------------------------------------


async def test_text_to_image_request_is_the_reference_shape_with_the_key_in_a_header(fake, provider):
    image = await provider.generate("a red fox in the snow")

    (sent,) = fake.requests
    assert sent.status == 200
    assert sent.path == "/v1beta/models/gemini-nano-banana-2.1:generateContent"  # the default model
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.query == {} and KEY not in sent.path
    assert sent.headers["content-type"].startswith("application/json")
    # One user turn, text only; no imageConfig without a ratio; no imageSize or candidateCount ever.
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "a red fox in the snow"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }
    # Gemini 3 models answer JPEG; a size left out is 1K.
    assert image.data == fake_picture(sent) and image.mime_type == "image/jpeg"
    assert image_size(image.data) == (1024, 1024)


async def test_edit_request_sends_text_then_images_in_standard_base64_and_the_ratio(fake, provider):
    # These bytes encode to '+' and '/' in standard base64 ('-' and '_' in the URL-safe alphabet).
    first = InputImage(b"\xfb\xff\xbf" + png_bytes(8, 8), "image/png")
    second = InputImage(jpeg_bytes(), "image/jpeg")

    image = await provider.generate("make the sky stormy", (first, second), ImageOptions(aspect_ratio="16:9"))

    (sent,) = fake.requests
    parts = sent.body["contents"][0]["parts"]
    assert parts[0] == {"text": "make the sky stormy"}
    assert [p["inlineData"]["mimeType"] for p in parts[1:]] == ["image/png", "image/jpeg"]
    assert parts[1]["inlineData"]["data"] == base64.b64encode(first.data).decode()
    assert "+" in parts[1]["inlineData"]["data"] and "/" in parts[1]["inlineData"]["data"]
    assert sent.images == [("image/png", first.data), ("image/jpeg", second.data)]
    assert sent.body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
    }
    assert image_size(image.data) == (1376, 768)  # Gemini 3 at 1K, 16:9


async def test_configured_model_is_in_the_path(fake, session):
    registry = ModelRegistry.build("gemini-3-pro-image")
    provider = GeminiProvider(session, SecretStr(KEY), base_url=fake.base_url, registry=registry)
    image = await provider.generate("a lighthouse")
    assert fake.requests[0].model == "gemini-3-pro-image"
    usage = fake.requests[0].response["usageMetadata"]  # Pro: 1120 image tokens at 1K, plus its thinking
    assert usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 1120}]
    assert image.model == "gemini-3-pro-image"
    assert image.usage.output_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]


async def test_from_settings_uses_key_url_model_and_attempt_timeout(fake, session):
    settings = Settings(
        _env_file=None,
        discord_token="discord-token",
        gemini_api_key=KEY,
        gemini_base_url=fake.base_url + "/",
        gemini_attempt_timeout_seconds=12.5,
    )
    provider = build_provider(session, settings, settings.registry())  # the default PROVIDERS: Google's alone
    (gemini,) = provider.members
    assert isinstance(gemini.provider, GeminiProvider) and gemini.lane is None
    assert gemini.provider.attempt_timeout == 12.5 and provider.model == settings.gemini_model
    image = await provider.generate("a cat")
    assert image.provider == "gemini"
    assert fake.requests[0].headers["x-goog-api-key"] == KEY and fake.requests[0].status == 200


# --- what we read from a 200 --------------------------------------------------------------------------------


async def test_large_png_comes_back_byte_for_byte_with_usage(fake, provider):
    png = png_of_size(1_500_000, seed=7)
    usage = {"promptTokenCount": 17, "candidatesTokenCount": 1306, "totalTokenCount": 1323}
    fake.enqueue(GeminiReply.image(png, usage=usage))
    image = await provider.generate("a detailed city at night")
    assert len(png) >= 1_500_000
    assert image.data == png and image.mime_type == "image/png" and image.text is None
    assert (image.usage.prompt_tokens, image.usage.output_tokens, image.usage.total_tokens) == (17, 1306, 1323)


async def test_text_beside_the_image_is_kept(fake, provider):
    fake.enqueue(GeminiReply.image(text="Here is your stormy sky."))
    image = await provider.generate("make the sky stormy")
    assert image.text == "Here is your stormy sky." and image.data == fake_picture(fake.requests[0])


async def test_jpeg_output_keeps_its_real_mime_type(fake, provider):
    jpeg = jpeg_bytes(96, 64)
    fake.enqueue(GeminiReply.jpeg(jpeg))
    image = await provider.generate("a photo of a bike")
    assert image.data == jpeg and image.mime_type == "image/jpeg" and image.extension == "jpg"


async def test_thought_drafts_are_skipped_for_the_last_real_image(fake, provider):
    final = png_bytes(32, 16, color=(1, 2, 3))
    fake.enqueue(GeminiReply.image(final, thoughts=2, text="Done."))
    image = await provider.generate("a fox")
    assert image.data == final and image.text == "Done."  # the thought summary is not part of the answer


async def test_the_last_of_several_images_is_the_answer(fake, provider):
    first, last = png_bytes(8, 8, color=(1, 1, 1)), png_bytes(8, 8, color=(2, 2, 2))
    parts = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(d).decode()}} for d in (first, last)]
    fake.enqueue(GeminiReply(body={"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]}))
    image = await provider.generate("a fox")
    assert image.data == last


async def test_thinking_tokens_count_as_output(fake, provider):
    body = {
        "candidates": [
            {
                "content": {
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"x").decode()}}]
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 1120,
            "thoughtsTokenCount": 200,
            "totalTokenCount": 1325,
        },
    }
    fake.enqueue(GeminiReply(body=body))
    image = await provider.generate("a fox")
    assert image.usage.output_tokens == 1320 and image.usage.total_tokens == 1325


# --- refusals and failures inside a 200 ---------------------------------------------------------------------


async def test_prompt_block_without_candidates(fake, provider):
    fake.enqueue(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"))
    with pytest.raises(PromptBlocked) as info:
        await provider.generate("something forbidden")
    assert info.value.reason == "PROHIBITED_CONTENT"


async def test_image_safety_carries_googles_message(fake, provider):
    fake.enqueue(GeminiReply.image_safety("Unable to show the generated image."))
    with pytest.raises(ImageBlocked) as info:
        await provider.generate("a portrait")
    assert info.value.reason == "IMAGE_SAFETY" and info.value.message == "Unable to show the generated image."


@pytest.mark.parametrize(
    "reason",
    ["IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"],
)
async def test_every_safety_finish_reason_is_a_block(fake, provider, reason):
    fake.enqueue(GeminiReply.finish(reason))
    with pytest.raises(ImageBlocked) as info:
        await provider.generate("x")
    assert info.value.reason == reason


@pytest.mark.parametrize("content", ["none", "empty"])
async def test_candidate_without_content_or_parts_is_understood(fake, provider, content):
    fake.enqueue(GeminiReply.finish("PROHIBITED_CONTENT", content=content))
    with pytest.raises(ImageBlocked):
        await provider.generate("x")


@pytest.mark.parametrize("reason", ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "MAX_TOKENS", "IMAGE_SOMETHING_NEW"])
async def test_non_safety_endings_and_unknown_values_are_failures(fake, provider, reason):
    fake.enqueue(GeminiReply.finish(reason, "details from Google"))
    with pytest.raises(GenerationFailed) as info:
        await provider.generate("x")
    assert info.value.reason == reason and info.value.message == "details from Google"


async def test_text_only_answer_carries_the_text(fake, provider):
    fake.enqueue(GeminiReply.text_only("Which breed of dog would you like?"))
    with pytest.raises(TextOnlyAnswer) as info:
        await provider.generate("a dog")
    assert info.value.text == "Which breed of dog would you like?"


async def test_text_cut_off_by_max_tokens_is_a_failure_not_an_answer(fake, provider):
    fake.enqueue(GeminiReply.finish("MAX_TOKENS", content="text", text="Here is a long descr"))
    with pytest.raises(GenerationFailed) as info:
        await provider.generate("x")
    assert info.value.reason == "MAX_TOKENS"


@pytest.mark.parametrize(
    "reply",
    [
        GeminiReply.malformed(),
        GeminiReply.malformed("{not json", content_type="application/json"),
        GeminiReply.not_a_response(),
        GeminiReply(body={"candidates": {"0": "not a list"}}),
        GeminiReply(body={"candidates": [{"content": {"parts": [{"inlineData": {"data": "@@not base64@@"}}]}}]}),
    ],
    ids=["html", "truncated-json", "wrong-json", "candidates-not-list", "bad-base64"],
)
async def test_malformed_answers_are_upstream_unavailable(fake, provider, reply):
    fake.enqueue(reply)
    with pytest.raises(UpstreamUnavailable):
        await provider.generate("x")


# --- HTTP errors --------------------------------------------------------------------------------------------


async def test_429_waits_what_retry_info_asks_not_the_rounded_text(fake, provider):
    fake.enqueue(GeminiReply.rate_limited(45.837906927))  # the text says "Please retry in 45.84s."
    with pytest.raises(RateLimited) as info:
        await provider.generate("x")
    assert info.value.retry_after == 45.837906927


async def test_429_without_retry_info_reads_the_message(fake, provider):
    fake.enqueue(GeminiReply.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.\nPlease retry in 7.96s."))
    with pytest.raises(RateLimited) as info:
        await provider.generate("x")
    assert info.value.retry_after == 7.96


async def test_429_without_any_wait_leaves_it_to_backoff(fake, provider):
    fake.enqueue(GeminiReply.rate_limited(None))
    with pytest.raises(RateLimited) as info:
        await provider.generate("x")
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [(GeminiReply.rate_limited_per_day(), "PerDay"), (GeminiReply.no_quota(), "limit: 0")],
    ids=["per-day", "limit-0"],
)
async def test_quota_429s_that_waiting_cannot_fix_are_operator_errors(fake, provider, reply, reason):
    fake.enqueue(reply)
    with pytest.raises(OperatorError) as info:
        await provider.generate("x")
    assert info.value.status == 429 and info.value.reason == reason


@pytest.mark.parametrize(
    "reply",
    [
        GeminiReply.overloaded(),
        GeminiReply.internal(),
        GeminiReply.deadline_exceeded(),
        GeminiReply.malformed(status=502),
    ],
    ids=["503", "500", "504", "502-html"],
)
async def test_server_errors_are_upstream_unavailable(fake, provider, reply):
    fake.enqueue(reply)
    with pytest.raises(UpstreamUnavailable):
        await provider.generate("x")


async def test_list_wrapped_envelopes_are_read(fake, provider):
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]
    fake.enqueue(
        GeminiReply.error(429, "RESOURCE_EXHAUSTED", "Resource exhausted.", details, wrapped=True),
        GeminiReply.error(503, "UNAVAILABLE", "The model is overloaded.", wrapped=True),
    )
    with pytest.raises(RateLimited) as info:
        await provider.generate("x")
    assert info.value.retry_after == 17.0
    with pytest.raises(UpstreamUnavailable):
        await provider.generate("x")


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (GeminiReply.api_key_invalid(), 400, "API_KEY_INVALID"),
        (
            GeminiReply.error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
            400,
            "FAILED_PRECONDITION",
        ),
        (GeminiReply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), 400, "INVALID_ARGUMENT"),
        (
            GeminiReply.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            401,
            "UNAUTHENTICATED",
        ),
        (
            GeminiReply.error(402, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted."),
            402,
            "RESOURCE_EXHAUSTED",
        ),
        (GeminiReply.error(403, "PERMISSION_DENIED", "The caller does not have permission"), 403, "PERMISSION_DENIED"),
        (GeminiReply.error(404, "NOT_FOUND", "models/x is not found for API version v1beta"), 404, "NOT_FOUND"),
    ],
    ids=["key", "precondition", "bad-argument", "401", "402", "403", "404"],
)
async def test_setup_problems_are_operator_errors(fake, provider, reply, status, reason):
    fake.enqueue(reply)
    with pytest.raises(OperatorError) as info:
        await provider.generate("x")
    assert (info.value.status, info.value.reason) == (status, reason)


async def test_the_fakes_own_checks_reject_a_wrong_key_and_a_retired_model(fake, session):
    wrong_key = GeminiProvider(session, SecretStr("AIzaSy-wrong"), base_url=fake.base_url)
    with pytest.raises(OperatorError) as info:
        await wrong_key.generate("x")
    assert info.value.reason == "API_KEY_INVALID"
    with pytest.raises(OperatorError) as info:
        await GeminiProvider(session, SecretStr(KEY), base_url=fake.base_url).generate(
            "x", options=ImageOptions(model="gemini-2.5-flash-image-preview")
        )
    assert (info.value.status, info.value.reason) == (404, "NOT_FOUND")


async def test_a_stalled_attempt_times_out(fake, session):
    provider = GeminiProvider(session, SecretStr(KEY), base_url=fake.base_url, attempt_timeout=0.2)
    fake.enqueue(GeminiReply.stall())
    with pytest.raises(UpstreamTimeout):
        await provider.generate("x")


async def test_connection_refused_is_upstream_unavailable(session):
    closed = FakeGemini(api_key=KEY)
    await closed.start()
    url = closed.base_url
    await closed.stop()
    with pytest.raises(UpstreamUnavailable):
        await GeminiProvider(session, SecretStr(KEY), base_url=url).generate("x")


# --- the key never leaks ------------------------------------------------------------------------------------


async def test_key_never_appears_in_errors_reprs_or_logs(fake, session, provider, caplog):
    caplog.set_level(logging.DEBUG)
    suspended = f"Permission denied: Consumer 'api_key:{KEY}' has been suspended."
    fake.enqueue(
        GeminiReply.error(403, "PERMISSION_DENIED", suspended),
        GeminiReply.api_key_invalid(),
        GeminiReply.rate_limited(),
        GeminiReply.overloaded(),
        GeminiReply.malformed(f"<html>{KEY}</html>", status=502),
    )
    seen = []
    for _ in range(5):
        with pytest.raises(Exception) as info:  # noqa: B017 - each case asserts its class elsewhere
            await provider.generate("x")
        seen.append(info.value)
    stalled = GeminiProvider(session, SecretStr(KEY), base_url=fake.base_url, attempt_timeout=0.1)
    fake.enqueue(GeminiReply.stall())
    with pytest.raises(UpstreamTimeout) as info:
        await stalled.generate("x")
    seen.append(info.value)

    assert "redacted" in str(seen[0])  # the 403 quoted the key; we kept the message, not the key
    for exc in seen:
        assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in repr(vars(exc))
    assert KEY not in repr(provider) and KEY not in str(provider)
    assert KEY not in caplog.text
