"""The fake Gemini's late-2026 lineup, checked with Google's own SDK (google-genai) as the peer.

- Per model: the sizes and aspect ratios the reference's table lists pass, the others are 400; the answer is a
  picture of the requested ratio and size class (read back by Pillow); retired ids and, for a new project, the
  legacy model answer 404 while the models list still shows it.
- Gemini 3 answers (thought parts, draft images, signatures, JPEG, usage) parse in the SDK; an SDK chat passes
  the fake's signature check, and a hand-made model turn without its signature is refused with Google's message.
- Text models answer words, or JSON that fits the request's response_schema, scripted per prompt.
"""

from __future__ import annotations

import base64
from typing import Literal

import aiohttp
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import image_size, png_bytes
from tests.fakes.gemini_schema import decode_bytes

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
PRO = "gemini-3-pro-image"
SIZE_SCALE = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
# (model, sizes it has, sizes it lacks): the reference's "Model lineup" table.
LINEUP = [
    ("gemini-nano-banana-2.1", ("1K", "2K", "4K"), ("512",)),
    (PRO, ("1K", "2K", "4K"), ("512",)),
    ("gemini-3.1-flash-lite-image", ("1K",), ("512", "2K", "4K")),
    ("gemini-3.1-flash-image", ("512", "1K", "2K", "4K"), ()),
]
TEN = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
EXTRA = ["1:4", "4:1", "1:8", "8:1"]


@pytest.fixture
async def fake():
    async with FakeGemini() as server:
        yield server


def client_for(fake: FakeGemini, **options) -> genai.Client:
    http = types.HttpOptions(base_url=fake.base_url, api_version="v1beta", **options)
    return genai.Client(api_key=fake.api_key, http_options=http)


@pytest.fixture
async def sdk(fake):
    client = client_for(fake)
    yield client.aio
    await client.aio.aclose()


async def draw(sdk, model: str, ratio: str | None = None, size: str | None = None, contents="a red fox"):
    image_config = types.ImageConfig(aspect_ratio=ratio, image_size=size)
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], image_config=image_config)
    return await sdk.models.generate_content(model=model, contents=contents, config=config)


def answer_image(response: types.GenerateContentResponse) -> types.Blob:
    return [p for p in response.candidates[0].content.parts if p.inline_data and not p.thought][-1].inline_data


def assert_picture(data: bytes, ratio: str, size: str) -> None:
    """Pillow reads the picture; its shape matches the ratio and its pixel count the size class (1K ~ 1 MP)."""
    width, height = image_size(data)
    w, h = (int(x) for x in ratio.split(":"))
    assert abs(width / height - w / h) / (w / h) < 0.05
    assert 0.85 < width * height / (1024 * 1024 * SIZE_SCALE[size] ** 2) < 1.2


# --- sizes, ratios, inputs per model ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "size"), [(m, s) for m, sizes, _ in LINEUP for s in sizes])
async def test_each_model_draws_each_of_its_sizes(fake, sdk, model, size):
    response = await draw(sdk, model, "16:9", size)
    assert_picture(answer_image(response).data, "16:9", size)
    assert fake.requests[-1].body["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": size}


@pytest.mark.parametrize(("model", "size"), [(m, s) for m, _, lacks in LINEUP for s in lacks])
async def test_a_size_the_model_lacks_is_a_400(sdk, model, size):
    with pytest.raises(errors.ClientError) as info:
        await draw(sdk, model, size=size)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "image_size" in info.value.message


@pytest.mark.parametrize("size", ["2k", "1k", "4k", "2048", "HD"])
async def test_size_names_are_exact_uppercase_k(sdk, size):
    with pytest.raises(errors.ClientError) as info:
        await draw(sdk, PRO, size=size)
    assert info.value.code == 400


async def test_the_legacy_model_refuses_any_image_size_and_draws_its_own_sizes(sdk):
    with pytest.raises(errors.ClientError) as info:
        await draw(sdk, "gemini-2.5-flash-image", size="1K")
    assert info.value.code == 400 and "Image size is not supported" in info.value.message
    assert_picture(answer_image(await draw(sdk, "gemini-2.5-flash-image", "21:9")).data, "21:9", "1K")


@pytest.mark.parametrize(
    ("model", "ratios", "refused"),
    [
        ("gemini-nano-banana-2.1", TEN + EXTRA, []),
        ("gemini-3.1-flash-image", TEN + EXTRA, []),
        (PRO, TEN, EXTRA),
        ("gemini-3.1-flash-lite-image", TEN, EXTRA),
        ("gemini-2.5-flash-image", TEN, EXTRA),
    ],
)
async def test_aspect_ratios_per_model(sdk, model, ratios, refused):
    for ratio in ratios:
        assert_picture(answer_image(await draw(sdk, model, ratio)).data, ratio, "1K")
    for ratio in refused + ["7:3"]:
        with pytest.raises(errors.ClientError) as info:
            await draw(sdk, model, ratio)
        assert info.value.code == 400 and "aspect_ratio" in info.value.message


@pytest.mark.parametrize(
    ("model", "limit"), [("gemini-2.5-flash-image", 3), ("gemini-3.1-flash-lite-image", 10), (PRO, 14)]
)
async def test_input_images_up_to_the_models_limit(sdk, model, limit):
    tiny = types.Part.from_bytes(data=png_bytes(8, 8), mime_type="image/png")
    await sdk.models.generate_content(model=model, contents=["combine these", *[tiny] * limit])
    with pytest.raises(errors.ClientError) as info:
        await sdk.models.generate_content(model=model, contents=["combine these", *[tiny] * (limit + 1)])
    assert info.value.code == 400 and f"at most {limit} input images" in info.value.message


async def test_an_edit_without_a_ratio_keeps_the_inputs_ratio(sdk):
    wide = types.Part.from_bytes(data=png_bytes(320, 180), mime_type="image/png")
    response = await sdk.models.generate_content(model=PRO, contents=["make it night", wide])
    assert_picture(answer_image(response).data, "16:9", "1K")


# --- retired ids, new projects, the models list -------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview", "gemini-2.5-flash-image-preview"]
)
async def test_retired_ids_answer_404_in_googles_envelope(fake, sdk, model):
    with pytest.raises(errors.ClientError) as info:
        await draw(sdk, model)
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert f"models/{model} is not found" in info.value.message
    with pytest.raises(errors.ClientError) as info:
        await sdk.models.get(model=model)
    assert info.value.code == 404


async def test_a_new_project_gets_404_from_the_legacy_model_while_models_get_answers_200():
    async with FakeGemini(new_project=True) as fake:
        client = client_for(fake)
        with pytest.raises(errors.ClientError) as info:
            await draw(client.aio, "gemini-2.5-flash-image")
        assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
        assert "no longer available to new users" in info.value.message
        model = await client.aio.models.get(model="gemini-2.5-flash-image")
        assert model.name == "models/gemini-2.5-flash-image" and "generateContent" in model.supported_actions
        await draw(client.aio, "gemini-nano-banana-2.1")  # the current models still work
        await client.aio.aclose()
    assert [r.status for r in fake.requests] == [404, 200, 200]


async def test_the_sdk_pages_through_the_models_list(fake, sdk):
    pager = await sdk.models.list(config={"page_size": 3})
    names = [model.name async for model in pager]
    assert names == [f"models/{m}" for m in fake.models]
    listing = [r for r in fake.requests if r.kind == "models.list"]
    assert len(listing) == -(-len(fake.models) // 3) and listing[0].query["pageSize"] == "3"
    assert "nextPageToken" in listing[0].response and "nextPageToken" not in listing[-1].response
    assert not any(m.startswith("models/gemini-3-pro-image-preview") for m in names)


# --- Gemini 3 answers in the SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "tokens"), [("1K", 1120), ("2K", 1120), ("4K", 2000)])
async def test_pro_answers_thoughts_drafts_and_a_signed_jpeg_with_its_usage(fake, sdk, size, tokens):
    response = await draw(sdk, PRO, "1:1", size)
    parts = response.candidates[0].content.parts
    assert [(bool(p.thought), p.inline_data is not None) for p in parts] == [(True, False), (True, True), (False, True)]
    assert all(p.thought_signature is None for p in parts if p.thought)
    final = parts[-1]
    assert final.inline_data.mime_type == "image/jpeg" and final.inline_data.data[:3] == b"\xff\xd8\xff"
    assert final.thought_signature and fake.signature_issued(final.thought_signature)
    usage = response.usage_metadata
    assert [(d.modality, d.token_count) for d in usage.candidates_tokens_details] == [
        (types.MediaModality.IMAGE, tokens)
    ]
    assert usage.thoughts_token_count > 0
    assert (
        usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    assert response.model_version == PRO


async def test_text_before_the_image_is_signed_too_and_every_signature_is_new(fake, sdk):
    fake.enqueue(GeminiReply.image(text="Here is your fox."), GeminiReply.image(text="Another one."))
    first, second = await draw(sdk, PRO), await draw(sdk, PRO)
    signatures = []
    for response in (first, second):
        answer = [p for p in response.candidates[0].content.parts if not p.thought]
        assert [p.text is not None for p in answer] == [True, False]
        signatures += [p.thought_signature for p in answer]
    assert all(signatures) and len(set(signatures)) == 4
    assert [decode_bytes(s) for s in fake.issued_signatures] == signatures


async def test_switches_jpeg_as_png_weight_drafts_and_model_version():
    async with FakeGemini(jpeg_as_png=True, thought_images=2, model_versions={PRO: "gemini-3-pro-image-002"}) as fake:
        client = client_for(fake)
        response = await draw(client.aio, PRO, "16:9", "2K")
        final = answer_image(response)
        assert final.mime_type == "image/png" and final.data[:3] == b"\xff\xd8\xff"
        assert sum(1 for p in response.candidates[0].content.parts if p.thought and p.inline_data) == 2
        assert response.model_version == "gemini-3-pro-image-002"
        fake.jpeg_as_png, fake.png_weight = False, 3_000_000
        heavy = answer_image(await draw(client.aio, PRO, "1:1", "4K"))
        assert heavy.mime_type == "image/png" and heavy.data[:4] == b"\x89PNG" and len(heavy.data) >= 3_000_000
        assert image_size(heavy.data) == (4096, 4096)
        await client.aio.aclose()


# --- multi-turn: thought signatures -------------------------------------------------------------------------


async def test_an_sdk_chat_sends_the_signatures_back_and_passes_the_check(fake, sdk):
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
    chat = sdk.chats.create(model=PRO, config=config)
    first = await chat.send_message("a lighthouse at dusk")
    await chat.send_message("now make it stormy")
    assert [r.status for r in fake.requests] == [200, 200]
    second = fake.requests[-1]
    assert [c["role"] for c in second.contents] == ["user", "model", "user"]
    issued = [p.thought_signature for p in first.candidates[0].content.parts if p.thought_signature]
    assert [decode_bytes(s) for s in second.returned_signatures] == issued
    assert second.prompt == "now make it stormy"


def two_turns(model_parts: list[dict]) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "a lighthouse"}]},
            {"role": "model", "parts": model_parts},
            {"role": "user", "parts": [{"text": "make it stormy"}]},
        ],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }


async def post(fake: FakeGemini, body: dict, model: str = PRO) -> tuple[int, dict]:
    url = f"{fake.base_url}/v1beta/models/{model}:generateContent"
    headers = {"x-goog-api-key": fake.api_key}
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_model_turn_without_its_signature_is_refused_with_googles_message(fake, sdk):
    await draw(sdk, PRO)
    received = fake.requests[-1].response["candidates"][0]["content"]["parts"]
    stripped = [{k: v for k, v in part.items() if k != "thoughtSignature"} for part in received]
    status, answer = await post(fake, two_turns(stripped))
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    # The image is the third part of the second content (after the thought summary and the draft).
    assert answer["error"]["message"] == (
        "Image part is missing a thought_signature in content position 2, part position 3."
    )
    assert (await post(fake, two_turns(received)))[0] == 200  # exactly as received: accepted


@pytest.mark.parametrize(
    ("signature", "status"),
    [
        ("skip_thought_signature_validator", 200),
        (base64.b64encode(b"skip_thought_signature_validator").decode(), 200),  # what the SDK sends for bytes
        (base64.b64encode(b"made up by someone").decode(), 400),
    ],
    ids=["bypass", "bypass-as-sdk-bytes", "forged"],
)
async def test_the_bypass_value_passes_and_a_forged_signature_does_not(fake, signature, status):
    picture = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(8, 8)).decode()}}
    code, answer = await post(fake, two_turns([{**picture, "thoughtSignature": signature}]))
    assert code == status
    if status == 400:
        assert answer["error"]["message"] == "Corrupted thought signature."


async def test_the_legacy_model_takes_unsigned_model_turns(fake):
    picture = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(8, 8)).decode()}}
    assert (await post(fake, two_turns([picture]), model="gemini-2.5-flash-image"))[0] == 200


# --- text models: words and JSON verdicts -------------------------------------------------------------------


class Verdict(pydantic.BaseModel):
    allowed: bool
    category: Literal["none", "sexual", "violence", "hate"]
    reason: str


JSON_CONFIG = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Verdict)


async def test_text_models_answer_words_and_refuse_image_output(fake, sdk):
    fake.text_answers = {"capital of France": "Paris."}
    response = await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="The capital of France?")
    assert response.text == "Paris." and response.candidates[0].finish_reason == types.FinishReason.STOP
    with pytest.raises(errors.ClientError) as info:
        await draw(sdk, "gemini-3.1-flash-lite")
    assert info.value.code == 400 and "response modalities" in info.value.message


async def test_json_verdicts_scripted_per_prompt_parse_into_the_schema(fake, sdk):
    fake.text_answers = {
        "naked": {"allowed": False, "category": "sexual", "reason": "nudity"},
        "kitten": {"allowed": True, "category": "none", "reason": ""},
    }
    for prompt, allowed in [("a kitten in a box", True), ("a naked giant", False)]:
        response = await sdk.models.generate_content(model="gemini-3.1-flash-lite", contents=prompt, config=JSON_CONFIG)
        assert isinstance(response.parsed, Verdict) and response.parsed.allowed is allowed
    sent = fake.requests[-1].request["generationConfig"]
    assert sent["responseMimeType"] == "application/json" and "properties" in sent["responseSchema"]
    # Unscripted: the smallest answer that fits the schema.
    response = await sdk.models.generate_content(model="gemini-3.1-flash-lite", contents="a tree", config=JSON_CONFIG)
    assert response.parsed == Verdict(allowed=False, category="none", reason="")


async def test_a_verdict_function_sees_the_request_and_a_misfit_is_a_500_that_says_why(fake, sdk):
    fake.text_answers = lambda request: {"allowed": "knife" not in request.prompt, "category": "none", "reason": "x"}
    response = await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="a knife", config=JSON_CONFIG)
    assert response.parsed.allowed is False
    fake.text_answers = lambda request: {"allowed": "yes", "category": "none", "reason": ""}
    with pytest.raises(errors.ServerError) as info:
        await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="x", config=JSON_CONFIG)
    assert info.value.code == 500 and "$.allowed: expected BOOLEAN, got str" in info.value.message


async def test_a_schema_without_the_json_mime_type_is_a_400(fake):
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseSchema": {"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}}},
    }
    status, answer = await post(fake, body, model="gemini-2.5-flash-lite")
    assert status == 400 and "response_mime_type" in answer["error"]["message"]
    body["generationConfig"]["responseSchema"]["colour"] = "red"
    assert (await post(fake, body, model="gemini-2.5-flash-lite"))[0] == 400


async def test_a_verdict_function_may_answer_with_any_scripted_reply(fake, sdk):
    fake.text_answers = lambda request: GeminiReply.overloaded() if "busy" in request.prompt else "fine"
    with pytest.raises(errors.ServerError) as info:
        await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="busy")
    assert info.value.code == 503
    assert (await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="calm")).text == "fine"


async def test_text_delay_makes_a_client_timeout(fake):
    fake.text_delay = 5.0
    client = client_for(fake, timeout=300)  # milliseconds
    with pytest.raises(Exception) as info:  # the SDK surfaces its transport's timeout error
        await client.aio.models.generate_content(model="gemini-2.5-flash-lite", contents="slow")
    assert "timeout" in type(info.value).__name__.lower() or isinstance(info.value, TimeoutError)
    await client.aio.aclose()


async def test_text_scripts_do_not_consume_image_scripts(fake, sdk):
    fake.enqueue(GeminiReply.overloaded())
    fake.enqueue_text(GeminiReply.answer("from the text script"))
    text = await sdk.models.generate_content(model="gemini-2.5-flash-lite", contents="x")
    assert text.text == "from the text script"
    with pytest.raises(errors.ServerError):
        await draw(sdk, PRO)


def test_the_fake_keeps_its_own_tables():
    """The fake must not borrow the bot's constants (it would then agree with the bot by construction)."""
    from pathlib import Path

    fakes = Path(__file__).resolve().parent.parent / "fakes"
    for path in fakes.glob("gemini*.py"):
        assert "from bot" not in path.read_text() and "import bot" not in path.read_text(), path.name
