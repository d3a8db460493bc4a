"""The two OpenAI-compatible kinds against the strict fake gateway: what goes on the wire, what comes back, how
every failure maps into the bot's errors and whether it may have been billed; then the chain over HTTP, Google's
fake first and a gateway second."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

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
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import ImageOptions, InputImage
from bot.providers.billing import may_be_billed
from bot.providers.config import DEFAULT_SIZE_MAP, ProviderConfig, load_providers
from bot.providers.factory import build_chain
from bot.providers.failover import FailoverProvider, is_bad_request
from bot.providers.openai_chat import OpenAIChatProvider
from bot.providers.openai_common import OpenAICompatible
from bot.providers.openai_images import OpenAIImagesProvider
from bot.services import build_lane
from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import image_size, jpeg_bytes, png_bytes
from tests.fakes.openai_gateway import FakeGateway, GatewayReply

MODEL = "gemini-3-pro-image"  # ours; the gateways know it as nano-banana-pro or google/gemini-3-pro-image
PNG = png_bytes(300, 200)
JPEG = jpeg_bytes(90, 160)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway() as server:
        yield server


def config(server: FakeGateway, kind: str, **values: Any) -> ProviderConfig:
    remote = "nano-banana-pro" if kind == "openai-images" else "google/gemini-3-pro-image"
    base: dict[str, Any] = {
        "name": "gw",
        "kind": kind,
        "base_url": server.base_url,
        "api_key": SecretStr(server.api_key),
        "models": {MODEL: remote},
        "allow_http": True,
        "size_map": dict(DEFAULT_SIZE_MAP),
    }
    return ProviderConfig(**(base | values))


def images(session: aiohttp.ClientSession, server: FakeGateway, **values: Any) -> OpenAIImagesProvider:
    return OpenAIImagesProvider(session, config(server, "openai-images", **values), model=MODEL, attempt_timeout=2)


def chat(session: aiohttp.ClientSession, server: FakeGateway, **values: Any) -> OpenAIChatProvider:
    return OpenAIChatProvider(session, config(server, "openai-chat", **values), model=MODEL, attempt_timeout=2)


async def raised(provider: OpenAICompatible, *args: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await provider.generate("a red fox", *args)
    return info.value


# --- openai-images ---------------------------------------------------------------------------------------------


async def test_a_generation_sends_the_mapped_model_and_size_and_reads_the_picture(session, gateway):
    image = await images(session, gateway).generate("a red fox", options=ImageOptions("16:9"))
    (request,) = gateway.requests
    assert request.path == "/v1/images/generations" and request.status == 200
    assert request.body == {"model": "nano-banana-pro", "prompt": "a red fox", "n": 1, "size": "1344x768"}
    assert image.data == request.outputs[0] and image.mime_type == "image/png"
    assert image_size(image.data) == (1344, 768)
    assert (image.provider, image.model, image.cost_usd) == ("gw", "nano-banana-pro", None)
    assert image.usage.prompt_tokens > 0 and image.usage.output_tokens == 1120


async def test_a_base_url_ending_in_v1_is_not_doubled_and_no_ratio_sends_no_size(session, gateway):
    await images(session, gateway, base_url=gateway.openai_base_url).generate("a red fox")
    (request,) = gateway.requests
    assert request.path == "/v1/images/generations" and "size" not in request.body


async def test_the_picture_s_type_is_judged_by_its_bytes(session, gateway):
    gateway.enqueue(GatewayReply.jpeg())
    image = await images(session, gateway).generate("a red fox")
    assert image.mime_type == "image/jpeg" and image.data.startswith(b"\xff\xd8\xff")


async def test_edits_send_one_image_bare_and_several_as_repeated_image_brackets(session, gateway):
    provider = images(session, gateway)
    one = (InputImage(PNG, "image/png"),)
    three = (*one, InputImage(JPEG, "image/jpeg"), InputImage(png_bytes(64, 64), "image/png"))
    await provider.generate("make it blue", one, ImageOptions("1:1"))
    await provider.generate("combine them", three)
    first, second = gateway.requests
    assert first.path == second.path == "/v1/images/edits" and first.status == second.status == 200
    assert first.fields == [("model", "nano-banana-pro"), ("prompt", "make it blue"), ("n", "1"), ("size", "1024x1024")]
    assert [(i.field, i.content_type, i.data) for i in first.images] == [("image", "image/png", PNG)]
    assert [(i.field, i.content_type) for i in second.images] == [
        ("image[]", "image/png"),
        ("image[]", "image/jpeg"),
        ("image[]", "image/png"),
    ]
    assert second.image_bytes == [i.data for i in three]


async def test_a_gateway_that_takes_ratios_gets_them_with_size_map_ratio(session):
    async with FakeGateway(size_mode="ratio") as server:
        provider = images(session, server, size_map={"16:9": "16:9"})
        image = await provider.generate("a red fox", options=ImageOptions("16:9"))
    assert server.requests[0].body["size"] == "16:9" and image_size(image.data) == (1344, 768)


async def test_a_url_result_is_downloaded_without_the_key(session):
    async with FakeGateway(default_response_format="url") as server:
        server.enqueue(GatewayReply.image(download_content_type="application/octet-stream"))
        image = await images(session, server).generate("a red fox")
    (download,) = server.downloads
    assert download.status == 200 and not download.authorization_sent
    assert image.data == server.requests[0].outputs[0] and image.mime_type == "image/png"


@pytest.mark.parametrize(
    ("reply", "values", "kind", "says"),
    [
        (GatewayReply.image(), {"allow_http": False}, UpstreamUnavailable, "not https"),
        (GatewayReply.image(download_status=403), {}, UpstreamUnavailable, "answered 403"),
        (GatewayReply.image(download_delay=5), {}, UpstreamTimeout, "did not download"),
        (GatewayReply.image(), {"max_bytes": 1000}, UpstreamUnavailable, "larger than"),
    ],
)
async def test_a_url_result_that_cannot_be_used_fails_and_counts_as_billed(session, reply, values, kind, says):
    async with FakeGateway(default_response_format="url") as server:
        server.enqueue(reply)
        provider = images(session, server, **{k: v for k, v in values.items() if k != "max_bytes"})
        provider.download_timeout = 0.3
        provider.download_max_bytes = values.get("max_bytes", provider.download_max_bytes)
        exc = await raised(provider)
    assert type(exc) is kind and says in str(exc)
    assert may_be_billed(exc) and server.requests[0].billed


async def test_a_picture_of_another_shape_than_asked_is_delivered_and_logged_once(session, caplog):
    caplog.set_level(logging.WARNING)
    async with FakeGateway(size_mode="fixed") as server:
        provider = images(session, server)
        for _ in range(2):
            image = await provider.generate("a red fox", options=ImageOptions("16:9"))
            assert image_size(image.data) == (1024, 1024)
    warnings = [r.getMessage() for r in caplog.records if "1024x1024 picture" in r.getMessage()]
    assert len(warnings) == 1 and "1344x768" in warnings[0] and "PROVIDER_GW_SIZE_MAP" in warnings[0]


@pytest.mark.parametrize(
    ("reply", "kind", "check"),
    [
        (GatewayReply.rate_limited(7), RateLimited, lambda e: e.retry_after == 7),
        (GatewayReply.rate_limited(1.5, retry_after_ms=True), RateLimited, lambda e: e.retry_after == 1.5),
        (GatewayReply.rate_limited(None), RateLimited, lambda e: e.retry_after is None),
        (GatewayReply.insufficient_quota(), OperatorError, lambda e: e.reason == "insufficient_quota"),
        (GatewayReply.payment_required(), OperatorError, lambda e: e.reason == "payment"),
        (GatewayReply.refusal(), PromptBlocked, lambda e: e.reason == "content_policy_violation"),
        (GatewayReply.error(400, "Invalid size.", code="invalid_value"), OperatorError, is_bad_request),
        (GatewayReply.overloaded(), UpstreamUnavailable, lambda e: not may_be_billed(e)),
        (GatewayReply.server_error(502), UpstreamUnavailable, lambda e: "502 Bad Gateway" in str(e)),
        (GatewayReply.text_only(), GenerationFailed, may_be_billed),
        (GatewayReply.disconnect(work_done=True), UpstreamUnavailable, may_be_billed),
    ],
)
async def test_gateway_answers_map_into_the_error_hierarchy(session, gateway, reply, kind, check):
    gateway.enqueue(reply)
    exc = await raised(images(session, gateway))
    assert type(exc) is kind and check(exc)


async def test_a_retry_after_given_as_a_date_is_the_time_until_then(session, gateway):
    gateway.enqueue(GatewayReply.rate_limited(30, http_date=True))  # made now: the date is 30 s ahead
    exc = await raised(images(session, gateway))
    assert isinstance(exc, RateLimited) and exc.retry_after is not None and 27 <= exc.retry_after <= 30


async def test_an_unknown_model_is_the_operator_s_problem_not_a_bad_request(session):
    async with FakeGateway(models=("nano-banana",)) as server:
        exc = await raised(images(session, server))
    assert isinstance(exc, OperatorError) and exc.reason == "not_found" and not is_bad_request(exc)


async def test_a_refused_key_is_an_operator_error_that_never_shows_the_key(session, gateway):
    exc = await raised(images(session, gateway, api_key=SecretStr("sk-wrong-key-31337")))
    assert isinstance(exc, OperatorError) and exc.status == 401 and exc.reason == "auth"
    echo = GatewayReply.error(401, f"Incorrect API key provided: {gateway.api_key}.", code="invalid_api_key")
    gateway.enqueue(echo)
    exc = await raised(images(session, gateway))
    assert "[redacted]" in str(exc) and gateway.api_key not in str(exc)
    assert gateway.api_key not in repr(images(session, gateway))


async def test_connection_refused_is_unavailable_and_not_billed(session, gateway):
    exc = await raised(images(session, gateway, base_url="http://127.0.0.1:9"))
    assert type(exc) is UpstreamUnavailable and not may_be_billed(exc)


async def test_no_answer_in_time_is_a_timeout_that_may_be_billed(session, gateway):
    gateway.enqueue(GatewayReply.stall())
    provider = images(session, gateway)
    provider.attempt_timeout = 0.3
    exc = await raised(provider)
    assert type(exc) is UpstreamTimeout and may_be_billed(exc)
    await gateway.wait_until(lambda: gateway.requests[0].cancelled)
    assert gateway.requests[0].billed  # the gateway made and charged it all the same


# --- openai-chat -----------------------------------------------------------------------------------------------


async def test_chat_sends_text_images_modalities_and_image_config_and_reads_cost(session, gateway):
    gateway.enqueue(GatewayReply.jpeg(text="Here you go.", declared_type="image/png"))
    source = InputImage(PNG, "image/png")
    image = await chat(session, gateway).generate("make it night", (source,), ImageOptions("16:9"))
    (request,) = gateway.requests
    assert request.path == "/v1/chat/completions" and request.status == 200
    assert request.body["modalities"] == ["image", "text"] and request.body["image_config"] == {"aspect_ratio": "16:9"}
    call = request.call
    assert (call.model, call.prompt, call.aspect_ratio) == ("google/gemini-3-pro-image", "make it night", "16:9")
    assert [(i.content_type, i.data) for i in request.images] == [("image/png", PNG)]
    # The data URL says PNG; the bytes are JPEG, and the bytes win.
    assert image.mime_type == "image/jpeg" and image.data == request.outputs[0]
    assert (image.text, image.cost_usd, image.provider) == ("Here you go.", request.cost, "gw")
    assert image.model == "google/gemini-3-pro-image" and image.usage.output_tokens > 1120


async def test_chat_without_a_ratio_sends_no_image_config(session, gateway):
    await chat(session, gateway).generate("a red fox")
    assert "image_config" not in gateway.requests[0].body


@pytest.mark.parametrize(
    ("reply", "kind", "check"),
    [
        (GatewayReply.text_only("Which fox?"), TextOnlyAnswer, lambda e: e.text == "Which fox?"),
        (GatewayReply.refusal("I can't make that."), ImageBlocked, lambda e: e.message == "I can't make that."),
        (GatewayReply.refusal(reason="PROHIBITED_CONTENT"), ImageBlocked, lambda e: e.reason == "PROHIBITED_CONTENT"),
        (GatewayReply.rate_limited(3), RateLimited, lambda e: e.retry_after == 3),
        (GatewayReply.payment_required(), OperatorError, lambda e: e.reason == "payment"),
        (GatewayReply.overloaded(), UpstreamUnavailable, lambda e: not may_be_billed(e)),
    ],
)
@pytest.mark.parametrize("style", ["openai", "openrouter"])
async def test_chat_answers_without_a_picture_map_into_the_error_hierarchy(session, style, reply, kind, check):
    async with FakeGateway(error_style=style) as server:
        server.enqueue(reply)
        exc = await raised(chat(session, server))
    assert type(exc) is kind and check(exc)


async def test_chat_input_images_arrive_whole(session, gateway):
    big = InputImage(png_bytes(1500, 1500), "image/png")
    await chat(session, gateway).generate("a red fox", (big, InputImage(JPEG, "image/jpeg")))
    assert gateway.requests[0].image_bytes == [big.data, JPEG]


# --- the chain over HTTP: Google's endpoint (the fake Gemini) first, a gateway second ----------------------------


@pytest.fixture
async def google() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake


def google_then(session: aiohttp.ClientSession, google: FakeGemini, gw: FakeGateway, kind: str) -> FailoverProvider:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        gemini_api_key=SecretStr(google.api_key),
        gemini_base_url=google.base_url,
        gemini_attempt_timeout_seconds=2,
        providers="gemini,gw",
    )
    theirs = "nano-banana" if kind == "openai-images" else "google/gemini-nano-banana-2.1"
    env = {
        "PROVIDER_GW_KIND": kind,
        "PROVIDER_GW_BASE_URL": gw.base_url,
        "PROVIDER_GW_ALLOW_HTTP": "true",
        "PROVIDER_GW_API_KEY": gw.api_key,
        "PROVIDER_GW_MODELS": f"gemini-nano-banana-2.1={theirs}",  # the default model
        "PROVIDER_GW_PRICES": "0.05",
    }
    return build_chain(
        session, settings, load_providers(settings, env), lane_for=lambda config: build_lane(settings, config)
    )


@pytest.mark.parametrize("kind", ["openai-images", "openai-chat"])
@pytest.mark.parametrize(
    "failure", [GeminiReply.overloaded(), GeminiReply.rate_limited(), GeminiReply.api_key_invalid()], ids=str
)
async def test_a_failing_google_hands_an_edit_to_the_gateway_as_a_stateless_edit(
    session, google, gateway, kind, failure
):
    google.enqueue(failure)
    source = InputImage(PNG, "image/png")
    prompt = "Earlier instructions in this conversation (already applied):\n- a fox\n\nNow: make it night"
    image = await google_then(session, google, gateway, kind).generate(prompt, (source,), ImageOptions("4:3"))
    assert len(google.requests) == 1 and len(gateway.requests) == 1
    request = gateway.requests[0]
    assert (image.provider, image.data) == ("gw", request.outputs[0])
    assert image.cost_usd == (request.cost if kind == "openai-chat" else 0.05)  # the gateway's own, else the price
    assert request.prompt == prompt and request.image_bytes == [PNG]
    assert image_size(image.data) == (1184, 864)


@pytest.mark.parametrize(
    ("refusal", "kind"),
    [
        (GeminiReply.prompt_blocked(), PromptBlocked),
        (GeminiReply.image_safety(), ImageBlocked),
        (GeminiReply.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), OperatorError),
    ],
)
async def test_google_refusing_or_rejecting_the_request_never_reaches_the_gateway(
    session, google, gateway, refusal, kind
):
    google.enqueue(refusal)
    with pytest.raises(kind):
        await google_then(session, google, gateway, "openai-images").generate("a fox")
    assert len(google.requests) == 1 and gateway.requests == []


async def test_google_stalling_is_charged_and_the_gateway_serves(session, google, gateway):
    google.enqueue(GeminiReply.stall())
    providers = google_then(session, google, gateway, "openai-chat")
    providers.members[0].provider.attempt_timeout = 0.3  # type: ignore[attr-defined]
    image = await providers.generate("a fox")
    assert image.provider == "gw" and [(c.provider, c.why) for c in image.charges] == [("gemini", "UpstreamTimeout")]


async def test_google_serving_is_named_as_the_provider(session, google, gateway):
    image = await google_then(session, google, gateway, "openai-chat").generate("a fox")
    assert image.provider == "gemini" and gateway.requests == []
    assert 0.0336 < image.cost_usd < 0.04  # Google's token counts at the price table: the picture, words, prompt
