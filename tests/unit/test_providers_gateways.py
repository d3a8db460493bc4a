"""The two OpenAI-compatible kinds against a small gateway on 127.0.0.1: what goes on the wire, what comes back,
and how every failure maps into the bot's errors (and whether it may have been billed)."""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
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
from bot.providers.billing import may_be_billed
from bot.providers.config import DEFAULT_SIZE_MAP, ProviderConfig, load_providers
from bot.providers.factory import build_chain
from bot.providers.failover import FailoverProvider, is_bad_request
from bot.providers.openai_chat import OpenAIChatProvider
from bot.providers.openai_images import OpenAIImagesProvider
from tests.fakes.gemini import FakeGemini, GeminiReply

KEY = "gw-secret-key-31337"
MODEL = "gemini-3-pro-image"


def picture(width: int = 64, height: int = 64, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    json: Any = None
    parts: list[tuple[str, str | None, str | None, bytes]] = field(default_factory=list)  # name, file, type, data


Reply = Callable[[Seen], Any] | web.StreamResponse  # a response, or a function (sync or async) that makes one


class Gateway:
    """Answers like an OpenAI-compatible gateway: Bearer auth, OpenAI's error envelope, scripted replies."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: deque[Reply] = deque()
        self.files: dict[str, web.StreamResponse | Callable[[web.Request], Any]] = {}
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/files/"):
            file = self.files[request.path.removeprefix("/files/")]
            return await _resolve(file(request) if callable(file) else file)
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            message = f"Incorrect API key provided: {request.headers.get('Authorization', '')[7:]}"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=401)
        seen = Seen(request.path, dict(request.headers))
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                seen.parts.append((part.name or "", part.filename, part.headers.get("Content-Type"), await part.read()))
        else:
            seen.json = await request.json()
        self.seen.append(seen)
        reply = self.script.popleft() if self.script else web.json_response({"data": [{"b64_json": b64(picture())}]})
        return await _resolve(reply(seen) if callable(reply) else reply)


async def _resolve(reply: Any) -> web.StreamResponse:
    return await reply if inspect.isawaitable(reply) else reply


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", gw.handle)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gw.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield gw
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def config(gw: Gateway, kind: str, **values: Any) -> ProviderConfig:
    base = dict(
        name="gw",
        kind=kind,
        base_url=gw.base_url,
        api_key=SecretStr(KEY),
        models={MODEL: "nano-banana-pro"},
        allow_http=True,
        size_map=dict(DEFAULT_SIZE_MAP),
    )
    return ProviderConfig(**(base | values))  # type: ignore[arg-type]


def images_provider(session: aiohttp.ClientSession, gw: Gateway, **values: Any) -> OpenAIImagesProvider:
    return OpenAIImagesProvider(session, config(gw, "openai-images", **values), model=MODEL, attempt_timeout=1.0)


def chat_provider(session: aiohttp.ClientSession, gw: Gateway, **values: Any) -> OpenAIChatProvider:
    return OpenAIChatProvider(session, config(gw, "openai-chat", **values), model=MODEL, attempt_timeout=1.0)


# --- openai-images ---------------------------------------------------------------------------------------------


async def test_generation_sends_the_mapped_model_and_size_and_judges_the_result_by_its_bytes(session, gateway):
    jpeg = picture(1344, 768, "JPEG")
    gateway.script.append(web.json_response({"data": [{"b64_json": b64(jpeg)}], "usage": {"input_tokens": 7}}))
    image = await images_provider(session, gateway).generate("a fox", options=ImageOptions("16:9"))
    (seen,) = gateway.seen
    assert seen.path == "/v1/images/generations"
    assert seen.json == {
        "model": "nano-banana-pro",
        "prompt": "a fox",
        "n": 1,
        "response_format": "b64_json",
        "size": "1344x768",
    }
    assert (image.data, image.mime_type, image.provider, image.model) == (jpeg, "image/jpeg", "gw", "nano-banana-pro")
    assert image.usage.prompt_tokens == 7 and image.cost_usd is None


async def test_a_base_url_ending_in_v1_is_not_doubled_and_no_ratio_sends_no_size(session, gateway):
    provider = images_provider(session, gateway, base_url=gateway.base_url + "/v1")
    await provider.generate("a fox")
    assert gateway.seen[0].path == "/v1/images/generations" and "size" not in gateway.seen[0].json


async def test_edits_send_one_image_as_image_and_several_as_repeated_image_brackets(session, gateway):
    provider = images_provider(session, gateway, size_map={"1:1": "1:1"})
    one = (InputImage(picture(), "image/png"),)
    three = (*one, InputImage(picture(fmt="JPEG"), "image/jpeg"), InputImage(picture(fmt="WEBP"), "image/webp"))
    await provider.generate("make it blue", one, ImageOptions("1:1"))
    await provider.generate("combine them", three)
    first, second = gateway.seen
    assert first.path == second.path == "/v1/images/edits"
    fields = {name: data.decode() for name, file, _, data in first.parts if file is None}
    assert fields == {"model": "nano-banana-pro", "prompt": "make it blue", "n": "1", "response_format": "b64_json",
                      "size": "1:1"}  # fmt: skip
    assert [(n, f, t) for n, f, t, _ in first.parts if f] == [("image", "image0.png", "image/png")]
    files = [(n, t, d) for n, f, t, d in second.parts if f]
    assert [(n, t) for n, t, _ in files] == [
        ("image[]", "image/png"),
        ("image[]", "image/jpeg"),
        ("image[]", "image/webp"),
    ]
    assert [d for _, _, d in files] == [i.data for i in three]


async def test_a_url_result_is_downloaded_without_the_key(session, gateway):
    png = picture()
    seen_headers: list[dict] = []

    def file(request: web.Request) -> web.Response:
        seen_headers.append(dict(request.headers))
        return web.Response(body=png, content_type="application/octet-stream")

    async def redirect(_: Seen) -> web.Response:
        return web.json_response({"data": [{"url": f"{gateway.base_url}/files/moved"}], "usage": {"cost": 0.05}})

    def moved(request: web.Request) -> web.Response:
        seen_headers.append(dict(request.headers))
        raise web.HTTPFound("/files/out.bin")

    gateway.files |= {"out.bin": file, "moved": moved}
    gateway.script.append(redirect)
    image = await images_provider(session, gateway).generate("a fox")
    assert image.data == png and image.mime_type == "image/png" and image.cost_usd == 0.05
    assert len(seen_headers) == 2 and not any("Authorization" in headers for headers in seen_headers)


@pytest.mark.parametrize(
    ("allow_http", "body", "message"),
    [
        (False, picture(), "not https"),
        (True, b"<html>not an image</html>", "not an image"),
        (True, picture(400, 400) + b"x" * 2048, "larger than"),
    ],
)
async def test_unusable_url_results_are_upstream_failures_that_may_be_billed(
    session, gateway, allow_http, body, message
):
    gateway.files["x"] = lambda _: web.Response(body=body)
    gateway.script.append(web.json_response({"data": [{"url": f"{gateway.base_url}/files/x"}]}))
    provider = images_provider(session, gateway, allow_http=allow_http)
    provider.download_max_bytes = len(picture(400, 400)) + 1024
    with pytest.raises(UpstreamUnavailable, match=message) as info:
        await provider.generate("a fox")
    assert may_be_billed(info.value)


async def test_a_url_that_does_not_finish_downloading_times_out_as_billed(session, gateway):
    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(body=picture())

    gateway.files["slow"] = slow
    gateway.script.append(web.json_response({"data": [{"url": f"{gateway.base_url}/files/slow"}]}))
    provider = images_provider(session, gateway)
    provider.download_timeout = 0.2
    with pytest.raises(UpstreamTimeout) as info:
        await provider.generate("a fox")
    assert may_be_billed(info.value)


async def test_a_picture_of_another_shape_than_asked_is_delivered_and_logged_once(session, gateway, caplog):
    caplog.set_level(logging.WARNING)
    provider = images_provider(session, gateway)
    for _ in range(2):
        gateway.script.append(web.json_response({"data": [{"b64_json": b64(picture(1024, 1024))}]}))
        image = await provider.generate("a fox", options=ImageOptions("16:9"))
        assert image.mime_type == "image/png"
    warnings = [r for r in caplog.records if "1024x1024 picture" in r.getMessage()]
    assert len(warnings) == 1 and "1344x768" in warnings[0].getMessage() and "PROVIDER_GW_SIZE_MAP" in caplog.text


def envelope(status: int, code: str | None, message: str = "nope", headers: dict | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return web.json_response({"error": error}, status=status, headers=headers)


@pytest.mark.parametrize(
    ("reply", "kind", "check"),
    [
        (envelope(429, "rate_limit_exceeded", headers={"retry-after": "7"}), RateLimited, lambda e: e.retry_after == 7),
        (envelope(429, None, headers={"retry-after-ms": "1500"}), RateLimited, lambda e: e.retry_after == 1.5),
        (envelope(429, None), RateLimited, lambda e: e.retry_after is None),
        (envelope(429, "insufficient_quota"), OperatorError, lambda e: not is_bad_request(e)),
        (envelope(400, "content_policy_violation", "rejected by our safety system"), PromptBlocked, lambda e: True),
        (envelope(400, "moderation_blocked"), PromptBlocked, lambda e: e.reason == "moderation_blocked"),
        (envelope(400, "invalid_size", "size must be one of ..."), OperatorError, is_bad_request),
        (envelope(402, None, "Insufficient credits"), OperatorError, lambda e: e.reason == "payment"),
        (envelope(404, "model_not_found"), OperatorError, lambda e: not is_bad_request(e)),
        (envelope(503, None, "overloaded"), UpstreamUnavailable, lambda e: not may_be_billed(e)),
        (
            web.Response(status=502, text="<html>Bad gateway</html>"),
            UpstreamUnavailable,
            lambda e: "Bad gateway" in str(e),
        ),
        (web.json_response({"data": "nope"}), UpstreamUnavailable, may_be_billed),
        (web.json_response({"data": []}), GenerationFailed, may_be_billed),
    ],
)
async def test_gateway_answers_map_into_the_error_hierarchy(session, gateway, reply, kind, check):
    gateway.script.append(reply)
    with pytest.raises(kind) as info:
        await images_provider(session, gateway).generate("a fox")
    assert type(info.value) is kind and check(info.value)


async def test_a_refused_key_is_an_operator_error_that_never_shows_the_key(session, gateway):
    provider = OpenAIImagesProvider(
        session, config(gateway, "openai-images", api_key=SecretStr("sk-wrong-" + KEY)), model=MODEL
    )
    with pytest.raises(OperatorError) as info:
        await provider.generate("a fox")
    assert info.value.status == 401 and info.value.reason == "auth"
    assert "Incorrect API key provided: [redacted]" in str(info.value) and KEY not in str(info.value)
    assert KEY not in repr(provider)


async def test_connection_refused_is_unavailable_and_not_billed(session, gateway):
    provider = images_provider(session, gateway, base_url="http://127.0.0.1:9")
    with pytest.raises(UpstreamUnavailable) as info:
        await provider.generate("a fox")
    assert not may_be_billed(info.value)


async def test_no_answer_in_time_is_a_timeout_that_may_be_billed(session, gateway):
    async def stall(_: Seen) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    gateway.script.append(stall)
    provider = images_provider(session, gateway)
    provider.attempt_timeout = 0.2
    with pytest.raises(UpstreamTimeout) as info:
        await provider.generate("a fox")
    assert may_be_billed(info.value) and len(gateway.seen) == 1


# --- openai-chat -----------------------------------------------------------------------------------------------


def chat_reply(*urls: str, content: Any = None, finish: str = "stop", **choice: Any) -> web.Response:
    images = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    message = {"role": "assistant", "content": content, "images": images}
    return web.json_response({"choices": [{"message": message, "finish_reason": finish, **choice}]})


async def test_chat_sends_text_images_as_data_urls_modalities_and_image_config(session, gateway):
    jpeg = picture(1344, 768, "JPEG")
    gateway.script.append(
        web.json_response(
            {
                "model": "google/gemini-3-pro-image",
                "choices": [
                    {
                        "message": {
                            "role": "assistant",
                            "content": "Here you go.",
                            "images": [
                                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(jpeg)}}
                            ],
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1300, "total_tokens": 1312, "cost": 0.0387},
            }
        )
    )
    source = InputImage(picture(), "image/png")
    image = await chat_provider(session, gateway).generate("make it night", (source,), ImageOptions("16:9"))
    (seen,) = gateway.seen
    assert seen.path == "/v1/chat/completions" and seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.json == {
        "model": "nano-banana-pro",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "make it night"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(source.data)}},
                ],
            }
        ],
        "modalities": ["image", "text"],
        "image_config": {"aspect_ratio": "16:9"},
    }
    # The bytes are JPEG whatever the data URL says.
    assert (image.data, image.mime_type, image.text, image.cost_usd) == (jpeg, "image/jpeg", "Here you go.", 0.0387)
    assert (image.provider, image.model, image.usage.total_tokens) == ("gw", "google/gemini-3-pro-image", 1312)


async def test_chat_without_a_ratio_sends_no_image_config(session, gateway):
    gateway.script.append(chat_reply("data:image/png;base64," + b64(picture())))
    await chat_provider(session, gateway).generate("a fox")
    assert "image_config" not in gateway.seen[0].json


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (chat_reply(content="Which fox do you mean?"), TextOnlyAnswer),
        (chat_reply(content=None, finish="content_filter"), ImageBlocked),
        (chat_reply(content=None, native_finish_reason="IMAGE_SAFETY"), ImageBlocked),
        (chat_reply(content=None, finish="length"), GenerationFailed),
        (chat_reply("data:image/png,not-base64"), UpstreamUnavailable),
        (chat_reply("data:image/png;base64,!!!!"), UpstreamUnavailable),
        (web.json_response({"error": {"code": 502, "message": "Provider returned error"}}), UpstreamUnavailable),
        (web.json_response({"error": {"code": 403, "message": "Input was flagged by moderation"}}), PromptBlocked),
        (web.json_response({"choices": [{"error": {"code": 429, "message": "slow down"}}]}), RateLimited),
        (web.json_response({"choices": []}), GenerationFailed),
    ],
)
async def test_chat_answers_without_a_picture_map_into_the_error_hierarchy(session, gateway, reply, kind):
    gateway.script.append(reply)
    with pytest.raises(kind):
        await chat_provider(session, gateway).generate("a fox")


async def test_chat_text_only_answer_keeps_the_words(session, gateway):
    gateway.script.append(chat_reply(content=[{"type": "text", "text": "Which fox"}, {"type": "text", "text": "?"}]))
    with pytest.raises(TextOnlyAnswer) as info:
        await chat_provider(session, gateway).generate("a fox")
    assert info.value.text == "Which fox?"


async def test_chat_input_images_are_encoded_off_the_loop_and_sent_whole(session, gateway):
    big = InputImage(picture(1500, 1500, "PNG") + b"\0" * 3_000_000, "image/png")
    gateway.script.append(chat_reply("data:image/png;base64," + b64(picture())))
    await chat_provider(session, gateway).generate("a fox", (big,))
    url = gateway.seen[0].json["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.partition(",")[2]) == big.data


# --- the chain over HTTP: Google's endpoint (the fake Gemini) first, a gateway second ----------------------------


@pytest.fixture
async def google() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake


def google_then_gateway(session: aiohttp.ClientSession, google: FakeGemini, gw: Gateway, kind: str) -> FailoverProvider:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        gemini_api_key=SecretStr(google.api_key),
        gemini_base_url=google.base_url,
        gemini_attempt_timeout_seconds=2,
    )
    env = {
        "PROVIDERS": "gemini,gw",
        "PROVIDER_GW_KIND": kind,
        "PROVIDER_GW_BASE_URL": gw.base_url,
        "PROVIDER_GW_ALLOW_HTTP": "true",
        "PROVIDER_GW_API_KEY": KEY,
        "PROVIDER_GW_MODELS": "gemini-2.5-flash-image=google/gemini-2.5-flash-image",
        "PROVIDER_GW_PRICES": "0.04",
    }
    return build_chain(session, settings, load_providers(settings, env))


@pytest.mark.parametrize("kind", ["openai-images", "openai-chat"])
@pytest.mark.parametrize(
    "failure", [GeminiReply.overloaded(), GeminiReply.rate_limited(), GeminiReply.api_key_invalid()]
)
async def test_a_failing_google_hands_the_edit_to_the_gateway_as_a_stateless_edit(
    session, google, gateway, kind, failure
):
    google.enqueue(failure)
    result = picture(1184, 864)
    if kind == "openai-chat":
        gateway.script.append(chat_reply("data:image/png;base64," + b64(result)))
    else:
        gateway.script.append(web.json_response({"data": [{"b64_json": b64(result)}]}))
    source = InputImage(picture(), "image/png")
    providers = google_then_gateway(session, google, gateway, kind)
    image = await providers.generate("Earlier: a fox.\n\nNow: make it night", (source,), ImageOptions("4:3"))
    assert (image.provider, image.data, image.cost_usd) == ("gw", result, 0.04)
    assert len(google.requests) == 1 and len(gateway.seen) == 1
    sent = gateway.seen[0]
    if kind == "openai-chat":
        content = sent.json["messages"][0]["content"]
        assert sent.json["model"] == "google/gemini-2.5-flash-image"
        assert content[0]["text"].endswith("Now: make it night")
        assert content[1]["image_url"]["url"] == "data:image/png;base64," + b64(source.data)
    else:
        assert [(n, d) for n, f, _, d in sent.parts if f] == [("image", source.data)]
        assert {n: d.decode() for n, f, _, d in sent.parts if not f}["size"] == "1184x864"


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
        await google_then_gateway(session, google, gateway, "openai-images").generate("a fox")
    assert len(google.requests) == 1 and gateway.seen == []


async def test_google_serving_is_named_as_the_provider(session, google, gateway):
    image = await google_then_gateway(session, google, gateway, "openai-chat").generate("a fox")
    assert image.provider == "gemini" and image.cost_usd is None and gateway.seen == []
