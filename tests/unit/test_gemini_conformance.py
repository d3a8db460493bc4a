"""Google's own SDK (google-genai) as a conformance peer for the fake and for our client.

- Every success-shaped answer the fake scripts parses in the SDK into the typed values we expect, and every
  error answer raises the SDK's error with the right code: the fake speaks the real format.
- The SDK's requests pass the fake's strict validation, and the fake refuses what Google refuses.
- For the same call, our GeminiProvider sends the same JSON as the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from pydantic import SecretStr

from bot.errors import OperatorError, RateLimited
from bot.models import ImageOptions, InputImage
from bot.providers.gemini import GeminiProvider
from bot.providers.registry import ModelRegistry
from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import default_png, jpeg_bytes, png_bytes
from tests.fakes.gemini_schema import decode_bytes

MODEL = "gemini-2.5-flash-image"
SAME_MODEL = ModelRegistry.build(MODEL)  # our client asking the model the SDK asks
# google-genai 3.4.0 subclasses aiohttp.ClientSession, which aiohttp deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


@pytest.fixture
async def fake():
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def sdk(fake):
    client = genai.Client(
        api_key=fake.api_key, http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta")
    )
    yield client.aio
    await client.aio.aclose()


def config(aspect_ratio: str | None = None, **extra) -> types.GenerateContentConfig:
    image_config = types.ImageConfig(aspect_ratio=aspect_ratio) if aspect_ratio else None
    return types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], image_config=image_config, **extra)


async def sdk_generate(sdk, contents="a red fox", **kwargs) -> types.GenerateContentResponse:
    model = kwargs.pop("model", MODEL)
    return await sdk.models.generate_content(model=model, contents=contents, config=config(**kwargs))


# --- the fake's answers, read by the SDK --------------------------------------------------------------------

PNG = png_bytes(48, 32, color=(9, 8, 7))
JPEG = jpeg_bytes(40, 30)


async def test_sdk_reads_an_image_with_usage(fake, sdk):
    fake.enqueue(GeminiReply.image(PNG))
    response = await sdk_generate(sdk)
    (candidate,) = response.candidates
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.parts[-1].inline_data.data == PNG
    assert candidate.content.parts[-1].inline_data.mime_type == "image/png"
    usage = response.usage_metadata
    assert usage.candidates_token_count == 1290
    assert usage.total_token_count == usage.prompt_token_count + 1290
    assert usage.candidates_tokens_details[0].modality == types.MediaModality.IMAGE


async def test_sdk_reads_the_default_image_at_the_requested_ratio(fake, sdk):
    response = await sdk_generate(sdk, aspect_ratio="21:9")
    assert response.candidates[0].content.parts[-1].inline_data.data == default_png("21:9")


async def test_sdk_reads_text_jpeg_and_thought_drafts(fake, sdk):
    fake.enqueue(GeminiReply.jpeg(JPEG, text="Here you go.", thoughts=2))
    response = await sdk_generate(sdk)
    parts = response.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, True, True, False, False]
    assert response.text == "Here you go."  # the SDK, too, skips thought parts for text
    assert parts[-1].inline_data.mime_type == "image/jpeg" and parts[-1].inline_data.data == JPEG


async def test_sdk_reads_a_prompt_block(fake, sdk):
    fake.enqueue(GeminiReply.prompt_blocked("PROHIBITED_CONTENT"))
    response = await sdk_generate(sdk)
    assert response.candidates is None
    assert response.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


async def test_sdk_reads_image_safety(fake, sdk):
    fake.enqueue(GeminiReply.image_safety("Unable to show the generated image."))
    response = await sdk_generate(sdk)
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.IMAGE_SAFETY
    assert candidate.content.parts is None
    # finishMessage is on the wire (the reference shows it to users) but google-genai 3.4.0 drops it for the
    # Developer API (`_Candidate_from_mldev` copies no finishMessage), so only its typed model can be checked.
    assert types.Candidate.model_validate({"finishMessage": "m"}).finish_message == "m"


async def test_sdk_reads_a_candidate_without_content(fake, sdk):
    fake.enqueue(GeminiReply.no_content("PROHIBITED_CONTENT"))
    candidate = (await sdk_generate(sdk)).candidates[0]
    assert candidate.content is None and candidate.finish_reason == types.FinishReason.PROHIBITED_CONTENT


async def test_sdk_reads_a_text_only_answer(fake, sdk):
    fake.enqueue(GeminiReply.text_only("Which breed?"))
    response = await sdk_generate(sdk)
    assert response.text == "Which breed?" and response.candidates[0].finish_reason == types.FinishReason.STOP


async def test_sdk_keeps_an_unknown_finish_reason(fake, sdk):
    fake.enqueue(GeminiReply.unknown_finish("IMAGE_SOMETHING_NEW"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the SDK warns about values newer than itself
        response = await sdk_generate(sdk)
    assert response.candidates[0].finish_reason.name == "IMAGE_SOMETHING_NEW"


@pytest.mark.parametrize(
    ("reply", "code", "status", "sdk_error"),
    [
        (GeminiReply.rate_limited(), 429, "RESOURCE_EXHAUSTED", errors.ClientError),
        (GeminiReply.rate_limited_per_day(), 429, "RESOURCE_EXHAUSTED", errors.ClientError),
        (GeminiReply.no_quota(), 429, "RESOURCE_EXHAUSTED", errors.ClientError),
        (GeminiReply.api_key_invalid(), 400, "INVALID_ARGUMENT", errors.ClientError),
        (GeminiReply.overloaded(), 503, "UNAVAILABLE", errors.ServerError),
        (GeminiReply.internal(), 500, "INTERNAL", errors.ServerError),
        (GeminiReply.deadline_exceeded(), 504, "DEADLINE_EXCEEDED", errors.ServerError),
        (GeminiReply.error(503, "UNAVAILABLE", "overloaded", wrapped=True), 503, "UNAVAILABLE", errors.ServerError),
    ],
    ids=["429", "429-per-day", "429-limit-0", "400-key", "503", "500", "504", "503-list-wrapped"],
)
async def test_sdk_raises_its_errors_for_the_fakes_error_answers(fake, sdk, reply, code, status, sdk_error):
    fake.enqueue(reply)
    with pytest.raises(sdk_error) as info:
        await sdk_generate(sdk)
    assert (info.value.code, info.value.status) == (code, status)


async def test_the_sdk_finds_the_retry_delay_where_we_read_it(fake, sdk):
    fake.enqueue(GeminiReply.rate_limited(45.837906927))
    with pytest.raises(errors.ClientError) as info:
        await sdk_generate(sdk)
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in info.value.details["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == "45.837906927s"
    assert details["QuotaFailure"]["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"


# --- the SDK's requests against the fake's validation -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"aspect_ratio": "9:16"},
        {"contents": ["edit this", types.Part.from_bytes(data=PNG, mime_type="image/png")]},
        {
            "safety_settings": [
                types.SafetySetting(category="HARM_CATEGORY_SEXUALLY_EXPLICIT", threshold="BLOCK_MEDIUM_AND_ABOVE")
            ],
            "temperature": 0.4,
            "system_instruction": "You draw pictures.",
        },
        {"model": "gemini-3-pro-image", "aspect_ratio": "4:3"},
    ],
    ids=["text", "ratio", "edit", "safety-temperature-system", "gemini-3"],
)
async def test_sdk_requests_pass_the_fakes_strict_validation(fake, sdk, kwargs):
    await sdk_generate(sdk, **kwargs)
    assert fake.requests[-1].status == 200


async def test_sdk_image_size_on_gemini_3_is_accepted_and_refused_on_2_5(fake, sdk):
    image_size = types.GenerateContentConfig(image_config=types.ImageConfig(image_size="2K"))
    await sdk.models.generate_content(model="gemini-3-pro-image", contents="x", config=image_size)
    with pytest.raises(errors.ClientError) as info:
        await sdk.models.generate_content(model=MODEL, contents="x", config=image_size)
    assert info.value.code == 400


@pytest.mark.parametrize(
    "config_kwargs",
    [
        {"candidate_count": 2},
        {"image_config": types.ImageConfig(aspect_ratio="7:3")},
    ],
    ids=["candidate-count", "bad-ratio"],
)
async def test_the_fake_refuses_what_google_refuses_from_the_sdk(fake, sdk, config_kwargs):
    with pytest.raises(errors.ClientError) as info:
        await sdk.models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(**config_kwargs)
        )
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")


async def test_the_fake_refuses_a_wrong_key_and_an_unknown_model_like_google(fake):
    wrong = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta"))
    with pytest.raises(errors.ClientError) as info:
        await wrong.aio.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 400 and info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    with pytest.raises(errors.ClientError) as info:
        await wrong.aio.models.generate_content(model="gemini-2.5-flash-image-preview", contents="x")
    assert info.value.code in (400, 404)
    await wrong.aio.aclose()


# --- raw requests the fake must refuse ----------------------------------------------------------------------

GOOD = {"contents": [{"role": "user", "parts": [{"text": "a fox"}]}]}


def with_part(part: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": "edit"}, part]}]}


def with_config(config: dict) -> dict:
    return {**GOOD, "generationConfig": config}


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({**GOOD, "prompt": "x"}, 400, 'Unknown name "prompt"'),
        (with_config({"responseModalities": ["IMAGE"], "imageSize": "1K"}), 400, 'Unknown name "imageSize"'),
        (
            with_config({"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]}),
            400,
            "Unknown name \"safetySettings\" at 'generation_config'",
        ),
        (with_config({"candidateCount": 2}), 400, "Multiple candidates"),
        (with_config({"imageConfig": {"imageSize": "1K"}}), 400, "Image size is not supported"),
        (with_config({"imageConfig": {"aspectRatio": "1:2"}}), 400, "aspect_ratio"),
        (with_config({"responseModalities": ["PICTURE"]}), 400, "response_modalities[0]"),
        (with_part({"inlineData": {"mimeType": "image/png", "data": "not base64!"}}), 400, "Base64 decoding failed"),
        (with_part({"inlineData": {"mimeType": "image/gif", "data": "R0lGODlh"}}), 400, "Unsupported MIME type"),
        (with_part({}), 400, "required oneof field 'data'"),
        ({"contents": []}, 400, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, 400, "valid role"),
        ({"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]}, 400, "not specified"),
    ],
    ids=[
        "unknown-top-level",
        "unknown-config-field",
        "safety-in-config",
        "candidate-count",
        "image-size-on-2.5",
        "bad-ratio",
        "bad-modality",
        "bad-base64",
        "gif",
        "empty-part",
        "no-contents",
        "bad-role",
        "contents-missing",
    ],
)
async def test_the_fake_refuses_invalid_bodies(fake, body, code, needle):
    status, answer = await post(fake, body)
    assert status == code and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert needle in answer["error"]["message"]
    assert fake.requests[-1].status == code


@pytest.mark.parametrize(
    "body",
    [
        # proto3 JSON: snake_case names, URL-safe unpadded bytes, and nulls are all valid.
        {"contents": [{"parts": [{"text": "x"}, {"inline_data": {"mime_type": "image/png", "data": "-_-_"}}]}]},
        {**GOOD, "generation_config": {"response_modalities": ["TEXT", "IMAGE"], "image_config": None}},
        {**GOOD, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]},
    ],
    ids=["snake-case-url-safe", "nulls", "safety-top-level"],
)
async def test_the_fake_accepts_what_proto_json_allows(fake, body):
    status, _ = await post(fake, body)
    assert status == 200


async def test_the_fake_refuses_a_body_over_20_mb(fake):
    big = with_part({"inlineData": {"mimeType": "image/png", "data": "A" * (20 * 1024 * 1024)}})
    status, answer = await post(fake, big)
    assert status == 400 and "payload size exceeds the limit" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/v1beta/models/gemini-2.5-flash-image:generateContent", {}, 403),
        ("/v1beta/models/gemini-2.5-flash-image:generateContent", {"x-goog-api-key": "nope"}, 400),
        ("/v1/models/gemini-2.5-flash-image:generateContent", None, 404),
        ("/v1beta/models/gemini-2.0-flash-preview-image-generation:generateContent", None, 404),
    ],
    ids=["no-key", "wrong-key", "v1", "retired-model"],
)
async def test_the_fake_checks_path_model_and_key(fake, path, headers, code):
    status, _ = await post(fake, GOOD, path=path, headers=headers)
    assert status == code


async def post(fake: FakeGemini, body: dict, *, path: str | None = None, headers: dict | None = None):
    path = path or "/v1beta/models/gemini-2.5-flash-image:generateContent"
    headers = {"x-goog-api-key": fake.api_key} if headers is None else headers
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, data=json.dumps(body), headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


# --- the strict RPM limiter ---------------------------------------------------------------------------------


async def test_rpm_limiter_is_a_strict_sliding_window_with_real_shaped_429s():
    now = [0.0]
    async with FakeGemini(rpm=3, window=60.0, clock=lambda: now[0]) as fake, aiohttp.ClientSession() as session:
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)
        for t in (0.0, 10.0, 20.0):
            now[0] = t
            await provider.generate("x")
        now[0] = 59.5
        with pytest.raises(RateLimited) as info:
            await provider.generate("x")
        assert info.value.retry_after == pytest.approx(0.5)  # until the request at t=0 leaves the window
        now[0] = 60.0
        await provider.generate("x")  # (0, 60] now holds 10, 20 and this one
        now[0] = 69.9
        with pytest.raises(RateLimited):
            await provider.generate("x")
    assert fake.rate_limit_hits == 2
    assert [r.status for r in fake.requests] == [200, 200, 200, 429, 200, 429]


async def test_rpm_limiter_429_parses_in_the_sdk():
    now = [0.0]
    async with FakeGemini(rpm=1, clock=lambda: now[0]) as limited:
        options = types.HttpOptions(base_url=limited.base_url, api_version="v1beta")
        client = genai.Client(api_key=limited.api_key, http_options=options)
        await client.aio.models.generate_content(model=MODEL, contents="x")
        now[0] = 15.0
        with pytest.raises(errors.ClientError) as info:
            await client.aio.models.generate_content(model=MODEL, contents="x")
        await client.aio.aclose()
    assert info.value.code == 429 and "Please retry in 45.00s." in info.value.message


async def test_latency_holds_requests_and_max_in_flight_counts_them():
    async with FakeGemini(latency=0.05) as fake, aiohttp.ClientSession() as session:
        provider = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url)
        images = await asyncio.gather(*(provider.generate(f"fox {i}") for i in range(3)))
    assert fake.max_in_flight == 3 and fake.in_flight == 0
    assert len(images) == len(fake.served) == 3


# --- our client sends what the SDK sends --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "aspect_ratio"),
    [((), None), ((InputImage(PNG, "image/png"), InputImage(JPEG, "image/jpeg")), None), ((), "16:9")],
    ids=["text", "text-and-images", "aspect-ratio"],
)
async def test_our_request_equals_the_sdks(fake, sdk, images, aspect_ratio):
    sdk_parts = ["make the sky stormy"] + [types.Part.from_bytes(data=i.data, mime_type=i.mime_type) for i in images]
    await sdk_generate(sdk, contents=sdk_parts, aspect_ratio=aspect_ratio)
    async with aiohttp.ClientSession() as session:
        ours = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url, registry=SAME_MODEL)
        await ours.generate("make the sky stormy", images, ImageOptions(aspect_ratio=aspect_ratio))
    theirs_sent, ours_sent = fake.requests
    assert theirs_sent.status == ours_sent.status == 200
    # Compared after proto3 JSON normalisation, which is how Google reads them: the SDK writes `mime_type` in
    # snake_case inside `inlineData` and URL-safe base64, we write `mimeType` and standard base64 (what the
    # reference and Google's REST samples use). Both are valid proto3 JSON for the same request. Beyond that
    # there is no difference: the SDK adds no field that we omit for these calls.
    assert canonical(ours_sent.request) == canonical(theirs_sent.request)
    assert ours_sent.path == theirs_sent.path and ours_sent.query == theirs_sent.query == {}
    assert ours_sent.headers["x-goog-api-key"] == theirs_sent.headers["x-goog-api-key"]
    for part in ours_sent.body["contents"][0]["parts"][1:]:
        assert base64.b64decode(part["inlineData"]["data"], validate=True)  # standard alphabet, padded


def canonical(request: dict) -> dict:
    """The request with inline data decoded to bytes, so both base64 alphabets compare equal."""
    contents = [
        {
            **content,
            "parts": [
                {**part, "inlineData": {**part["inlineData"], "data": decode_bytes(part["inlineData"]["data"])}}
                if "inlineData" in part
                else part
                for part in content["parts"]
            ],
        }
        for content in request["contents"]
    ]
    return {**request, "contents": contents}


async def test_sdk_and_our_client_read_the_same_answer_the_same_way(fake, sdk):
    fake.enqueue(GeminiReply.jpeg(JPEG, text="Done.", thoughts=1), GeminiReply.jpeg(JPEG, text="Done.", thoughts=1))
    response = await sdk_generate(sdk)
    async with aiohttp.ClientSession() as session:
        ours = GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url, registry=SAME_MODEL)
        image = await ours.generate("a red fox")
    last = response.candidates[0].content.parts[-1].inline_data
    assert (image.data, image.mime_type, image.text) == (last.data, last.mime_type, response.text)
    usage = response.usage_metadata
    assert (image.usage.prompt_tokens, image.usage.output_tokens, image.usage.total_tokens) == (
        usage.prompt_token_count,
        usage.candidates_token_count + usage.thoughts_token_count,  # thinking is billed as output
        usage.total_token_count,
    )


async def test_operator_errors_match_what_the_sdk_sees(fake, sdk):
    fake.enqueue(GeminiReply.no_quota(), GeminiReply.no_quota())
    with pytest.raises(errors.ClientError) as sdk_info:
        await sdk_generate(sdk)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(OperatorError) as ours:
            await GeminiProvider(session, SecretStr(fake.api_key), base_url=fake.base_url).generate("x")
    assert ours.value.status == sdk_info.value.code == 429
