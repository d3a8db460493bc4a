"""The official `openai` SDK as a conformance peer for the fake OpenAI-compatible gateways.

- What the SDK sends (JSON generations, multipart edits with one `image` or repeated `image[]`, chat completions
  with `extra_body`) passes the fake's strict checks, and the fake records it as sent.
- Every answer the fake gives parses in the SDK into the typed values a gateway client reads (b64 and url
  results, pictures as data URLs in `message.images[]`, `usage.cost`), and every error raises the SDK's typed
  exception with OpenAI's fields (RateLimitError with `retry-after`, BadRequestError for a policy refusal, ...).
- The fake refuses what the real services refuse, including the SDK's own pitfall (raw bytes upload as
  application/octet-stream).
"""

from __future__ import annotations

import base64
import email.utils
import json

import aiohttp
import openai
import pytest
from openai.types import ImagesResponse

from tests.fakes.gemini_images import image_size, jpeg_bytes, png_bytes
from tests.fakes.openai_gateway import FakeGateway, GatewayReply

MODEL = "nano-banana"
CHAT_MODEL = "google/gemini-3-pro-image"
PNG = png_bytes(300, 200)  # a 3:2 input picture
JPEG = jpeg_bytes(90, 160)  # a 9:16 input picture


@pytest.fixture
async def gateway():
    async with FakeGateway() as server:
        yield server


def sdk_for(server: FakeGateway, **kwargs) -> openai.AsyncOpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(api_key=kwargs.pop("api_key", server.api_key), base_url=server.openai_base_url, **kwargs)


@pytest.fixture
async def sdk(gateway):
    client = sdk_for(gateway)
    yield client
    await client.close()


def decoded(result: ImagesResponse) -> list[bytes]:
    return [base64.b64decode(item.b64_json or "") for item in result.data or []]


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def raw_post(server: FakeGateway, path: str, **kwargs) -> tuple[int, dict]:
    """A request the SDK would not send; answers (status, JSON body)."""
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {server.api_key}"})
    async with aiohttp.ClientSession() as session:
        async with session.post(server.openai_base_url + path, headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None)


# --- Images API: generations ---------------------------------------------------------------------------------


async def test_generate_b64_reaches_the_gateway_as_sent_and_parses(sdk, gateway):
    result = await sdk.images.generate(model=MODEL, prompt="a red fox", size="1024x768", response_format="b64_json")

    [picture] = decoded(result)
    assert picture.startswith(b"\x89PNG") and image_size(picture) == (1024, 768)
    [request] = gateway.requests
    assert request.kind == "generations" and request.auth == "ok" and request.status == 200
    assert request.body == {"model": MODEL, "prompt": "a red fox", "response_format": "b64_json", "size": "1024x768"}
    assert request.outputs == [picture] and request.billed and gateway.billed == 1
    assert result.usage is not None and result.usage.output_tokens == 1290
    assert "authorization" not in request.headers and gateway.api_key not in repr(gateway.requests)


async def test_generate_url_is_served_by_the_gateway_over_plain_http(sdk, gateway):
    result = await sdk.images.generate(model=MODEL, prompt="a red fox", response_format="url")

    [item] = result.data or []
    assert item.url is not None and item.url.startswith("http://127.0.0.1:")  # https is the client's concern
    async with aiohttp.ClientSession() as session:
        async with session.get(item.url) as response:
            body, content_type = await response.read(), response.content_type
        async with session.get(item.url.split("?")[0]) as unsigned:
            assert unsigned.status == 403
    assert gateway.requests[0].outputs == [body] and content_type == "image/png"
    assert [d.status for d in gateway.downloads] == [200, 403]
    assert not any(d.authorization_sent for d in gateway.downloads)


async def test_url_downloads_can_fail_lie_about_their_type_or_stall(sdk, gateway):
    gateway.enqueue(GatewayReply.image(download_status=403), GatewayReply.jpeg(download_content_type="text/plain"))
    expired = (await sdk.images.generate(model=MODEL, prompt="x", response_format="url")).data[0].url
    mislabelled = (await sdk.images.generate(model=MODEL, prompt="x", response_format="url")).data[0].url
    async with aiohttp.ClientSession() as session:
        async with session.get(expired) as response:
            assert response.status == 403 and b"AuthenticationFailed" in await response.read()
        async with session.get(mislabelled) as response:
            assert response.content_type == "text/plain" and (await response.read()).startswith(b"\xff\xd8\xff")


async def test_a_jpeg_gateway_answers_jpeg_bytes():
    async with FakeGateway(output_format="jpeg") as server, sdk_for(server) as client:
        [picture] = decoded(await client.images.generate(model=MODEL, prompt="x", size="512x512"))
    assert picture.startswith(b"\xff\xd8\xff") and image_size(picture) == (512, 512)


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("exact", "1024x1536", (1024, 1536)),
        ("fixed", "1024x1536", (1024, 1024)),  # the gateway ignores the request: the client must notice
        ("fixed", "16:9", (1024, 1024)),
        ("ratio", "16:9", (1344, 768)),
        ("nearest", "1024x1536", (832, 1248)),  # 2:3, Gemini's size for it
        ("nearest", None, (1024, 1024)),
    ],
)
async def test_size_handling_is_the_gateways_choice(mode, size, expected):
    async with FakeGateway(size_mode=mode) as server, sdk_for(server) as client:
        kwargs = {"size": size} if size else {}
        [picture] = decoded(await client.images.generate(model=MODEL, prompt="x", **kwargs))
    assert image_size(picture) == expected


@pytest.mark.parametrize(("mode", "size"), [("exact", "16:9"), ("ratio", "1024x1024"), ("nearest", "7:5")])
async def test_a_size_the_gateway_does_not_take_is_a_400(mode, size):
    async with FakeGateway(size_mode=mode) as server, sdk_for(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.images.generate(model=MODEL, prompt="x", size=size)
    assert caught.value.param == "size" and server.billed == 0


async def test_n_above_the_gateways_limit_is_refused_and_accepted_up_to_it(sdk, gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x", n=2)
    assert (caught.value.code, caught.value.param) == ("integer_above_max_value", "n")
    async with FakeGateway(max_n=3) as server, sdk_for(server) as client:
        assert len(decoded(await client.images.generate(model=MODEL, prompt="x", n=3))) == 3


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": MODEL}, "prompt", "missing_required_parameter"),
        ({"model": MODEL, "prompt": "  "}, "prompt", "empty_string"),
        ({"model": MODEL, "prompt": "x", "response_format": "bmp"}, "response_format", "invalid_value"),
        ({"model": MODEL, "prompt": "x", "quality": "ultra"}, "quality", "invalid_value"),
        ({"model": MODEL, "prompt": "x", "n": "2"}, "n", "invalid_type"),
        ({"model": MODEL, "prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio", "unknown_parameter"),
        ({"prompt": "x"}, "model", "missing_required_parameter"),
    ],
)
async def test_malformed_generations_get_openais_400(sdk, gateway, body, param, code):
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.post("/images/generations", body=body, cast_to=ImagesResponse)
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")
    assert gateway.requests[0].status == 400 and gateway.billed == 0


async def test_a_gateway_extension_parameter_is_accepted_when_configured():
    async with FakeGateway(extra_params=("aspect_ratio",)) as server, sdk_for(server) as client:
        await client.images.generate(model=MODEL, prompt="x", extra_body={"aspect_ratio": "16:9"})
    assert server.requests[0].body["aspect_ratio"] == "16:9"


async def test_a_body_that_is_not_json_is_refused(gateway):
    status, body = await raw_post(gateway, "/images/generations", data=b"prompt=x")
    assert status == 400 and "could not parse the JSON body" in body["error"]["message"]


# --- Images API: edits ---------------------------------------------------------------------------------------


async def test_edit_with_several_images_sends_repeated_image_brackets(sdk, gateway):
    files = [("a.png", PNG, "image/png"), ("b.jpg", JPEG, "image/jpeg")]
    result = await sdk.images.edit(model=MODEL, prompt="merge them", image=files, size="1024x1024")

    [request] = gateway.requests
    assert [(i.field, i.filename, i.content_type, i.data) for i in request.images] == [
        ("image[]", "a.png", "image/png", PNG),
        ("image[]", "b.jpg", "image/jpeg", JPEG),
    ]
    assert request.image_count == 2 and request.image_bytes == [PNG, JPEG]
    assert request.fields == [("prompt", "merge them"), ("model", MODEL), ("size", "1024x1024")]
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert image_size(decoded(result)[0]) == (1024, 1024)


async def test_edit_with_one_image_sends_a_bare_image_field(sdk, gateway):
    await sdk.images.edit(model=MODEL, prompt="brighter", image=("a.png", PNG, "image/png"))
    assert [i.field for i in gateway.requests[0].images] == ["image"]


async def test_an_edit_without_size_keeps_the_input_ratio_on_a_gemini_gateway():
    async with FakeGateway(size_mode="nearest") as server, sdk_for(server) as client:
        result = await client.images.edit(model=MODEL, prompt="x", image=[("a.jpg", JPEG, "image/jpeg")])
    assert image_size(decoded(result)[0]) == (768, 1344)  # 9:16


async def test_raw_bytes_upload_as_octet_stream_and_the_gateway_refuses_them(sdk, gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.edit(model=MODEL, prompt="x", image=[PNG, PNG])
    assert caught.value.code == "unsupported_file_mimetype" and caught.value.param == "image"
    assert "application/octet-stream" in caught.value.message


def form(*parts: tuple[str, bytes | str, str | None, str | None]) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    data.add_field("model", MODEL)
    data.add_field("prompt", "x")
    for name, value, filename, content_type in parts:
        data.add_field(name, value, filename=filename, content_type=content_type)
    return data


@pytest.mark.parametrize(
    ("parts", "code", "says"),
    [
        ((("image", PNG, "a.png", "image/png"), ("image[]", PNG, "b.png", "image/png")), None, "repeated 'image[]'"),
        ((("image", PNG, "a.png", "image/png"), ("image", PNG, "b.png", "image/png")), None, "repeated 'image[]'"),
        ((("image", "not a file", None, None),), None, "expected a file upload"),
        ((("image", b"GIF89a....", "a.png", "image/png"),), "invalid_image_file", "check your image file"),
        ((("image", b"\x89PNG\r\n\x1a\n", "a.gif", "image/gif"),), "unsupported_file_mimetype", "'image/gif'"),
        ((), "missing_required_parameter", "'image'"),
        ((("images", PNG, "a.png", "image/png"),), "unknown_parameter", "'images'"),
    ],
)
async def test_edit_shapes_the_real_api_refuses(gateway, parts, code, says):
    status, body = await raw_post(gateway, "/images/edits", data=form(*parts))
    assert (status, body["error"]["code"], body["error"]["type"]) == (400, code, "invalid_request_error")
    assert says in body["error"]["message"] and gateway.billed == 0


async def test_too_many_images_and_json_edits_are_refused():
    async with FakeGateway(max_input_images=2) as server:
        parts = [("image[]", PNG, f"{i}.png", "image/png") for i in range(3)]
        status, body = await raw_post(server, "/images/edits", data=form(*parts))
        assert (status, body["error"]["code"]) == (400, "array_above_max_length")
        status, body = await raw_post(server, "/images/edits", json={"model": MODEL, "prompt": "x"})
        assert status == 400 and "expected multipart/form-data" in body["error"]["message"]


# --- errors, as the SDK types them ---------------------------------------------------------------------------


async def test_a_wrong_or_missing_key_is_a_401_that_never_echoes_the_key(gateway):
    async with sdk_for(gateway, api_key="sk-wrong-key-9999") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.images.generate(model=MODEL, prompt="x")
    assert caught.value.code == "invalid_api_key" and "9999" not in str(caught.value.body)
    status, _ = await raw_post(gateway, "/images/generations", json={"model": MODEL, "prompt": "x"}, headers={})
    assert status == 401 and [r.auth for r in gateway.requests] == ["wrong", "missing"]


async def test_an_unknown_model_is_not_found_or_a_400_by_gateway(sdk):
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.images.generate(model="gemini-3-pro-image", prompt="x")
    assert caught.value.code == "model_not_found"
    async with FakeGateway(unknown_model_status=400) as server, sdk_for(server) as client:
        with pytest.raises(openai.BadRequestError):
            await client.images.generate(model="nope", prompt="x")


async def test_a_kind_the_gateway_does_not_serve_is_an_invalid_url():
    async with FakeGateway(kinds=("images",)) as server, sdk_for(server) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "x"}])
    assert "Invalid URL (POST /v1/chat/completions)" in caught.value.message


async def test_429_carries_retry_after_and_ratelimit_headers(sdk, gateway):
    gateway.enqueue(GatewayReply.rate_limited(3, limit=20), GatewayReply.rate_limited(5, http_date=True))
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x")
    headers = caught.value.response.headers
    assert caught.value.code == "rate_limit_exceeded" and headers["retry-after"] == "3"
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("20", "0")
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x")
    assert email.utils.parsedate_to_datetime(caught.value.response.headers["retry-after"]) is not None
    assert gateway.billed == 0


async def test_the_sdk_honours_retry_after_and_retries(gateway):
    gateway.enqueue(GatewayReply.rate_limited(0.01, retry_after_ms=True))
    async with sdk_for(gateway, max_retries=1) as client:
        assert decoded(await client.images.generate(model=MODEL, prompt="x"))
    assert [r.status for r in gateway.requests] == [429, 200]
    assert gateway.requests[1].headers["x-stainless-retry-count"] == "1"


async def test_insufficient_quota_is_a_429_without_a_wait(sdk, gateway):
    gateway.enqueue(GatewayReply.insufficient_quota())
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x")
    assert caught.value.code == "insufficient_quota" and "retry-after" not in caught.value.response.headers


async def test_the_rpm_limiter_answers_429_with_the_wait():
    async with FakeGateway(rpm=2) as server, sdk_for(server) as client:
        for _ in range(2):
            await client.images.generate(model=MODEL, prompt="x")
        with pytest.raises(openai.RateLimitError) as caught:
            await client.images.generate(model=MODEL, prompt="x")
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60 and server.rate_limit_hits == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_internal_server_errors(sdk, gateway, status):
    gateway.enqueue(GatewayReply.server_error(status))
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x")
    assert caught.value.status_code == status and gateway.billed == 0


async def test_the_default_reply_can_be_switched_to_an_outage(sdk, gateway):
    gateway.default_reply = GatewayReply.overloaded()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await sdk.images.generate(model=MODEL, prompt="x")
    assert [r.status for r in gateway.requests] == [503, 503]


async def test_a_policy_refusal_is_a_bad_request_and_not_billed(sdk, gateway):
    gateway.enqueue(GatewayReply.refusal(), GatewayReply.text_only())
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.generate(model=MODEL, prompt="x")
    assert caught.value.code == "content_policy_violation" and gateway.billed == 0
    assert (await sdk.images.generate(model=MODEL, prompt="x")).data == []  # no picture this time
    assert gateway.billed == 1


async def test_a_client_that_gives_up_is_still_billed(sdk, gateway):
    gateway.enqueue(GatewayReply.stall())
    with pytest.raises(openai.APITimeoutError):
        await sdk.images.generate(model=MODEL, prompt="x", timeout=0.2)
    [request] = gateway.requests
    await gateway.wait_until(lambda: request.cancelled)
    assert request.billed and gateway.billed == 1 and request.status is None


async def test_a_dropped_connection_is_a_connection_error_billed_only_if_work_was_done(sdk, gateway):
    gateway.enqueue(GatewayReply.disconnect(), GatewayReply.disconnect(work_done=True))
    for _ in range(2):
        with pytest.raises(openai.APIConnectionError):
            await sdk.images.generate(model=MODEL, prompt="x")
    assert [(r.billed, r.cancelled, r.status) for r in gateway.requests] == [(False, False, 0), (True, False, 0)]
    assert gateway.billed == 1


# --- chat completions ----------------------------------------------------------------------------------------


def chat_messages(*images: tuple[bytes, str]) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": "a lighthouse at dusk"}]
    content += [{"type": "image_url", "image_url": {"url": data_url(data, mime)}} for data, mime in images]
    return [{"role": "system", "content": "You draw."}, {"role": "user", "content": content}]


async def chat(client: openai.AsyncOpenAI, *images: tuple[bytes, str], **extra):
    extra.setdefault("modalities", ["image", "text"])
    return await client.chat.completions.create(model=CHAT_MODEL, messages=chat_messages(*images), extra_body=extra)


def pictures_of(completion) -> list[tuple[str, bytes]]:
    images = getattr(completion.choices[0].message, "images", None) or []
    out = []
    for image in images:
        head, _, payload = image["image_url"]["url"].partition(",")
        out.append((head, base64.b64decode(payload)))
    return out


@pytest.mark.parametrize(("resolution", "expected"), [("1K", (1344, 768)), ("2K", (2688, 1536))])
async def test_chat_image_answer_parses_with_cost(sdk, gateway, resolution, expected):
    completion = await chat(sdk, image_config={"aspect_ratio": "16:9", "image_size": resolution})

    [(head, picture)] = pictures_of(completion)
    assert head == "data:image/png;base64" and image_size(picture) == expected
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.role == "assistant"
    [request] = gateway.requests
    assert request.kind == "chat" and request.body["image_config"] == {"aspect_ratio": "16:9", "image_size": resolution}
    assert request.prompt == "a lighthouse at dusk" and request.call.modalities == ("image", "text")
    assert completion.usage.cost == request.cost == gateway.billed_cost > 0.134


async def test_chat_input_images_arrive_as_data_urls_and_set_the_ratio(sdk, gateway):
    completion = await chat(sdk, (PNG, "image/png"), (JPEG, "image/jpeg"))
    request = gateway.requests[0]
    assert [(i.content_type, i.data) for i in request.images] == [("image/png", PNG), ("image/jpeg", JPEG)]
    assert image_size(pictures_of(completion)[0][1]) == (768, 1344)  # the last input's 9:16


async def test_chat_can_answer_jpeg_data_urls_even_mislabelled(sdk, gateway):
    gateway.enqueue(GatewayReply.jpeg(), GatewayReply.jpeg(declared_type="image/png", text="Here you go."))
    [(head, picture)] = pictures_of(await chat(sdk))
    assert head == "data:image/jpeg;base64" and picture.startswith(b"\xff\xd8\xff")
    completion = await chat(sdk)
    [(head, picture)] = pictures_of(completion)
    assert head == "data:image/png;base64" and picture.startswith(b"\xff\xd8\xff")
    assert completion.choices[0].message.content == "Here you go."


async def test_chat_without_image_modality_answers_text_only(sdk, gateway):
    completion = await sdk.chat.completions.create(model=CHAT_MODEL, messages=chat_messages())
    message = completion.choices[0].message
    assert pictures_of(completion) == [] and message.content and completion.choices[0].finish_reason == "stop"
    assert gateway.requests[0].call.modalities == ("text",)


async def test_chat_refusal_and_text_only_answers(sdk, gateway):
    gateway.enqueue(GatewayReply.refusal("blocked"), GatewayReply.text_only("What style?"))
    refused = await chat(sdk)
    choice = refused.choices[0]
    assert (choice.finish_reason, choice.message.content, choice.message.refusal) == ("content_filter", None, "blocked")
    assert choice.model_extra["native_finish_reason"] == "IMAGE_SAFETY" and pictures_of(refused) == []
    talked = await chat(sdk)
    assert talked.choices[0].message.content == "What style?" and pictures_of(talked) == []
    assert gateway.billed == 2 and refused.usage.cost + talked.usage.cost == pytest.approx(gateway.billed_cost)


@pytest.mark.parametrize(
    "extra",
    [
        {"image_config": {"aspect_ratio": "7:3"}},
        {"image_config": {"image_size": "8K"}},
        {"image_config": {"aspectRatio": "16:9"}},
        {"modalities": ["picture"]},
        {"modalities": []},
        {"image_generation": True},
        {"stream": False, "n": 2},
    ],
)
async def test_chat_requests_the_gateway_refuses(sdk, gateway, extra):
    with pytest.raises(openai.BadRequestError):
        await chat(sdk, **extra)
    assert gateway.billed == 0


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
        {"type": "image_url", "image_url": {"url": data_url(b"plain text", "image/png")}},
        {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_image", "image_url": {"url": data_url(PNG)}},
    ],
)
async def test_chat_input_images_must_be_image_data_urls(sdk, part):
    messages = [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}]
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model=CHAT_MODEL, messages=messages, extra_body={"modalities": ["image"]})


async def test_openrouter_style_errors_still_type_in_the_sdk():
    async with FakeGateway(kinds=("chat",), prefix="/api/v1", error_style="openrouter") as server:
        server.enqueue(GatewayReply.rate_limited(2))
        async with sdk_for(server) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await chat(client)
            completion = await chat(client)
    assert caught.value.body == {"code": 429, "message": caught.value.body["message"], "metadata": {"type": "requests"}}
    assert caught.value.response.headers["retry-after"] == "2"
    assert pictures_of(completion) and server.requests[1].path == "/api/v1/chat/completions"


async def test_records_never_hold_the_key(sdk, gateway):
    await chat(sdk, (PNG, "image/png"))
    await sdk.images.edit(model=MODEL, prompt="x", image=[("a.png", PNG, "image/png")])
    assert all(gateway.api_key not in json.dumps(r.headers) + repr(r) for r in gateway.requests)
