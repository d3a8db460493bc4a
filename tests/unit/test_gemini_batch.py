"""The Batch client: what it sends (the same inline job google-genai sends for the same request), how it reads an
Operation (both places results are found, both spellings of the states), and what a failed inline request means."""

from __future__ import annotations

import aiohttp
import pytest
from google import genai
from google.genai import types
from pydantic import SecretStr

from bot.errors import ModelUnavailable, OperatorError, PromptBlocked, RateLimited, UpstreamUnavailable
from bot.models import ImageOptions
from bot.providers.gemini import GeminiProvider, build_request
from bot.providers.gemini_batch import GeminiBatches, parse_operation, rpc_error
from bot.providers.registry import ModelRegistry
from tests.fakes.gemini import GeminiReply

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
MODEL = "gemini-nano-banana-2.1"


async def test_the_submitted_job_is_what_google_genai_submits(gemini):
    async with aiohttp.ClientSession() as http:
        ours = GeminiBatches(http, SecretStr(gemini.api_key), base_url=gemini.base_url)
        body = build_request(
            "a fox", (), ImageOptions("16:9", size="2K", tier="batch"), spec=ModelRegistry.build().default
        )
        name = await ours.create(MODEL, [("k1", body)], display_name="relax")
    client = genai.Client(
        api_key=gemini.api_key, http_options=types.HttpOptions(base_url=gemini.base_url, api_version="v1beta")
    )
    src = [
        {
            "contents": [{"role": "user", "parts": [{"text": "a fox"}]}],
            "config": {
                "response_modalities": ["TEXT", "IMAGE"],
                "image_config": {"aspect_ratio": "16:9", "image_size": "2K"},
            },
            "metadata": {"key": "k1"},
        }
    ]
    await client.aio.batches.create(model=MODEL, src=src, config={"display_name": "relax"})
    await client.aio.aclose()
    mine, theirs = (r.body["batch"] for r in gemini.requests)
    assert name.startswith("batches/") and mine == theirs


async def test_status_and_cancel_round_trip(gemini):
    async with aiohttp.ClientSession() as http:
        batches = GeminiBatches(http, SecretStr(gemini.api_key), base_url=gemini.base_url)
        name = await batches.create(MODEL, [("k", build_request("a fox"))], display_name="x")
        pending = await batches.get(name)
        assert (pending.state, pending.done, pending.results) == ("PENDING", False, ())
        gemini.advance_batch(name, "SUCCEEDED")
        done = await batches.get(name)
        assert done.state == "SUCCEEDED" and done.done and done.result_for("k")["response"]["candidates"]
        other = await batches.create(MODEL, [("k", build_request("an owl"))], display_name="x")
        await batches.cancel(other)
        assert (await batches.get(other)).state == "CANCELLED" and gemini.batches.find(other).cancel_requested
        third = await batches.create(MODEL, [("k", build_request("a cat"))], display_name="x")
        gemini.advance_batch(third, "FAILED", message="Batch failed: quota exceeded.")
        status = await batches.get(third)  # a 200 whose Operation carries the job's error: not a failed call
        assert status.state == "FAILED" and status.error == {"code": 13, "message": "Batch failed: quota exceeded."}
        with pytest.raises(OperatorError) as missing:
            await batches.get("batches/doesnotexist")
        assert missing.value.status == 404 and not isinstance(missing.value, ModelUnavailable)
        with pytest.raises(ModelUnavailable):  # a retired model is the operator's problem, named as such
            await batches.create("gemini-3-pro-image-preview", [("k", build_request("x"))], display_name="x")


def test_an_operation_is_read_from_either_place_and_either_spelling():
    result = {"response": {"candidates": []}, "metadata": {"key": "a"}}
    rest = {"name": "batches/x", "done": True, "metadata": {"state": "BATCH_STATE_SUCCEEDED"},
            "response": {"inlinedResponses": {"inlinedResponses": [result]}}}  # fmt: skip
    sdk = {"name": "batches/x", "metadata": {"state": "JOB_STATE_SUCCEEDED",
           "output": {"inlinedResponses": {"inlinedResponses": [result]}}}}  # fmt: skip
    for payload in (rest, sdk):
        status = parse_operation(payload, "batches/x")
        assert (status.state, status.done, status.result_for("a")) == ("SUCCEEDED", True, result)
    assert parse_operation({"metadata": {"state": "BATCH_STATE_RUNNING"}}, "batches/y").done is False
    with pytest.raises(UpstreamUnavailable):
        parse_operation(["not", "an", "operation"], "batches/z")


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        ({"code": 14, "message": "The model is overloaded."}, UpstreamUnavailable),
        ({"code": 13, "message": "Internal error."}, UpstreamUnavailable),
        ({"code": 8, "message": "Resource exhausted. Please retry in 7s."}, RateLimited),
        ({"code": 3, "message": "Invalid value at image_size"}, OperatorError),
        ({}, UpstreamUnavailable),
    ],
)
def test_a_failed_inline_request_maps_like_the_same_http_answer(status, raised):
    assert isinstance(rpc_error(status), raised)


async def test_flex_is_asked_for_at_the_top_level_and_priced_at_half(gemini):
    registry = ModelRegistry.build()
    async with aiohttp.ClientSession() as http:
        provider = GeminiProvider(http, SecretStr(gemini.api_key), base_url=gemini.base_url, registry=registry)
        flex = await provider.generate("a fox", options=ImageOptions(model=MODEL, size="1K", tier="flex"))
        standard = await provider.generate("a fox", options=ImageOptions(model=MODEL, size="1K"))
        gemini.enqueue(GeminiReply.prompt_blocked())
        with pytest.raises(PromptBlocked):
            await provider.generate("a fox", options=ImageOptions(model=MODEL, size="1K", tier="flex"))
    first, second, third = gemini.requests
    assert first.body["serviceTier"] == "flex" and third.body["serviceTier"] == "flex"
    assert "serviceTier" not in second.body and "serviceTier" not in first.body["generationConfig"]
    assert flex.cost_usd == pytest.approx(standard.cost_usd / 2, rel=1e-3)  # the price table rounds to micros
