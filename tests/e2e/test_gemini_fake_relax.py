"""The fake Gemini's relax lane (Flex and Batch), checked with google-genai as the peer.

- Flex: the SDK's `service_tier="flex"` reaches the fake as top-level `"serviceTier": "flex"`; unknown tiers
  are 400; the shedding switch answers 503 UNAVAILABLE, which the SDK raises as a ServerError.
- Batch: the SDK's `batches.create` / `get` / `cancel` / `list` round-trip; results arrive in input order with
  their keys, errors per request; jobs move by the test's hand or by the fake's clock, and expire.
"""

from __future__ import annotations

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import image_size

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
PRO = "gemini-3-pro-image"
IMAGE = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])


def client_for(fake: FakeGemini) -> genai.Client:
    http = types.HttpOptions(base_url=fake.base_url, api_version="v1beta")
    return genai.Client(api_key=fake.api_key, http_options=http)


@pytest.fixture
async def fake():
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def sdk(fake):
    client = client_for(fake)
    yield client.aio
    await client.aio.aclose()


async def raw(fake: FakeGemini, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {"x-goog-api-key": fake.api_key}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


# --- Flex ---------------------------------------------------------------------------------------------------


async def test_the_sdks_flex_tier_is_top_level_service_tier_and_reported_in_usage(fake, sdk):
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], service_tier="flex")
    response = await sdk.models.generate_content(model=PRO, contents="a fox", config=config)
    assert response.candidates[0].content.parts[-1].inline_data.data
    sent = fake.requests[-1]
    assert sent.body["serviceTier"] == "flex" and "serviceTier" not in sent.body.get("generationConfig", {})
    assert sent.response["usageMetadata"]["serviceTier"] == "flex"
    await sdk.models.generate_content(model=PRO, contents="a fox", config=IMAGE)
    assert fake.requests[-1].response["usageMetadata"]["serviceTier"] == "standard"


@pytest.mark.parametrize("tier", ["turbo", "FLEX_TIER", "batch", ""])
async def test_an_unknown_service_tier_is_a_400(fake, tier):
    status, answer = await raw(
        fake,
        "POST",
        f"/v1beta/models/{PRO}:generateContent",
        {"contents": [{"parts": [{"text": "x"}]}], "serviceTier": tier},
    )
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT") and "service_tier" in answer["error"][
        "message"
    ]


async def test_flex_shedding_by_count_answers_503_to_flex_only(fake, sdk):
    fake.flex_shed = 2
    flex = types.GenerateContentConfig(service_tier="flex")
    for _ in range(2):
        with pytest.raises(errors.ServerError) as info:
            await sdk.models.generate_content(model=PRO, contents="x", config=flex)
        assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    await sdk.models.generate_content(model=PRO, contents="standard is never shed")
    await sdk.models.generate_content(model=PRO, contents="x", config=flex)
    assert [r.status for r in fake.requests] == [503, 503, 200, 200] and fake.flex_sheds == 2


async def test_flex_shedding_by_predicate(fake, sdk):
    fake.flex_shed = lambda request: "busy" in request.prompt
    flex = types.GenerateContentConfig(service_tier="flex")
    with pytest.raises(errors.ServerError):
        await sdk.models.generate_content(model=PRO, contents="busy hour", config=flex)
    await sdk.models.generate_content(model=PRO, contents="quiet hour", config=flex)
    assert fake.flex_sheds == 1


# --- Batch --------------------------------------------------------------------------------------------------


def inline(prompt: str, key: str, **config) -> dict:
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "config": {"response_modalities": ["TEXT", "IMAGE"], **config},
        "metadata": {"key": key},
    }


async def test_sdk_batch_create_get_and_results_in_input_order(fake, sdk):
    src = [inline("a fox", "job-1", image_config={"aspect_ratio": "16:9"}), inline("an owl", "job-2")]
    job = await sdk.batches.create(model=PRO, src=src, config={"display_name": "relax"})
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "relax"
    wire = fake.requests[-1].body["batch"]
    assert [r["metadata"] for r in wire["inputConfig"]["requests"]["requests"]] == [{"key": "job-1"}, {"key": "job-2"}]

    assert (await sdk.batches.get(name=job.name)).state == types.JobState.JOB_STATE_PENDING
    fake.advance_batch(job.name, "RUNNING")
    assert (await sdk.batches.get(name=job.name)).state == types.JobState.JOB_STATE_RUNNING
    fake.advance_batch(job.name, "SUCCEEDED")
    done = await sdk.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done
    results = done.dest.inlined_responses
    assert [r.metadata for r in results] == [{"key": "job-1"}, {"key": "job-2"}]
    fox = results[0].response.candidates[0].content.parts[-1]
    assert image_size(fox.inline_data.data) == (1376, 768) and fox.thought_signature
    assert [r.prompt for r in fake.batch_items] == ["a fox", "an owl"]
    assert fake.served == []  # batch items are not generateContent calls


async def test_the_operation_wire_shape_matches_the_reference(fake, sdk):
    job = await sdk.batches.create(model="gemini-2.5-flash-image", src=[inline("a fox", "k")])
    fake.advance_batch(job.name, "SUCCEEDED")
    status, operation = await raw(fake, "GET", f"/v1beta/{job.name}")
    assert status == 200 and operation["done"] is True and operation["name"] == job.name
    assert operation["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "1",
        "successfulRequestCount": "1",
        "failedRequestCount": "0",
    }
    (result,) = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert result["metadata"] == {"key": "k"} and result["response"]["candidates"][0]["finishReason"] == "STOP"


async def test_a_failing_request_is_an_error_in_its_place(fake, sdk):
    fake.enqueue_batch(GeminiReply.image(), GeminiReply.overloaded())
    src = [inline("fine", "a"), inline("shed", "b"), inline("bad size", "c", image_config={"image_size": "8K"})]
    job = await sdk.batches.create(model=PRO, src=src)
    fake.advance_batch(job.name, "SUCCEEDED")
    results = (await sdk.batches.get(name=job.name)).dest.inlined_responses
    assert [r.metadata["key"] for r in results] == ["a", "b", "c"]
    assert results[0].response and results[0].error is None
    assert (results[1].error.code, results[1].response) == (14, None)  # UNAVAILABLE
    assert results[2].error.code == 3 and "image_size" in results[2].error.message  # INVALID_ARGUMENT


async def test_sdk_cancel_round_trip(fake, sdk):
    job = await sdk.batches.create(model=PRO, src=[inline("a fox", "k")])
    await sdk.batches.cancel(name=job.name)
    cancelled = await sdk.batches.get(name=job.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.done and cancelled.dest is None
    assert [r.kind for r in fake.requests] == ["batchGenerateContent", "batches.cancel", "batches.get"]


async def test_sdk_lists_batches_and_unknown_ids_are_404(fake, sdk):
    names = [(await sdk.batches.create(model=PRO, src=[inline(str(i), str(i))])).name for i in range(3)]
    listed = [job.name async for job in await sdk.batches.list(config={"page_size": 2})]
    assert listed == names
    with pytest.raises(errors.ClientError) as info:
        await sdk.batches.get(name="batches/doesnotexist")
    assert info.value.code == 404


@pytest.mark.parametrize(
    ("factor", "times", "states"),
    [
        (1.0, [5, 15, 29, 30], ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]),
        (3600.0, [0.002, 0.004, 0.01], ["PENDING", "RUNNING", "SUCCEEDED"]),  # hours in milliseconds
    ],
    ids=["real-time", "scaled"],
)
async def test_jobs_move_with_the_fakes_clock(factor, times, states):
    now = [0.0]
    async with FakeGemini(clock=lambda: now[0], batch_timing=(10.0, 20.0), batch_time_factor=factor) as fake:
        client = client_for(fake)
        job = await client.aio.batches.create(model=PRO, src=[inline("a fox", "k")])
        seen = []
        for t in times:
            now[0] = t
            seen.append((await client.aio.batches.get(name=job.name)).state.name.removeprefix("JOB_STATE_"))
        await client.aio.aclose()
    assert seen == states


async def test_a_job_pending_past_its_expiry_expires_without_results():
    now = [0.0]
    async with FakeGemini(clock=lambda: now[0], batch_expire_after=48 * 3600.0) as fake:
        client = client_for(fake)
        job = await client.aio.batches.create(model=PRO, src=[inline("a fox", "k")])
        now[0] = 48 * 3600.0 - 1
        assert (await client.aio.batches.get(name=job.name)).state == types.JobState.JOB_STATE_PENDING
        now[0] = 48 * 3600.0
        expired = await client.aio.batches.get(name=job.name)
        await client.aio.aclose()
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.done and expired.dest is None


async def test_a_failed_job_carries_an_error_and_no_results(fake, sdk):
    job = await sdk.batches.create(model=PRO, src=[inline("a fox", "k")])
    fake.advance_batch(-1, "FAILED", message="Batch failed: quota exceeded.")
    failed = await sdk.batches.get(name=job.name)
    assert failed.state == types.JobState.JOB_STATE_FAILED and failed.done
    operation = fake.requests[-1].response
    assert (
        operation["error"] == {"code": 13, "message": "Batch failed: quota exceeded."} and "response" not in operation
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"batch": {"inputConfig": {"requests": {"requests": []}}}}, "input_config"),
        (
            {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"prompt": "x"}}]}}}},
            'Unknown name "prompt"',
        ),
        ({"batch": {"input_config": {}, "colour": "red"}}, 'Unknown name "colour"'),
        ({"requests": []}, 'Unknown name "requests"'),
    ],
    ids=["empty", "bad-inner-request", "unknown-field", "not-wrapped-in-batch"],
)
async def test_malformed_batches_are_400(fake, body, needle):
    status, answer = await raw(fake, "POST", f"/v1beta/models/{PRO}:batchGenerateContent", body)
    assert status == 400 and needle in answer["error"]["message"]
    assert not fake.batches.jobs


async def test_batches_on_retired_and_new_project_legacy_models_are_404(sdk):
    with pytest.raises(errors.ClientError) as info:
        await sdk.batches.create(model="gemini-3-pro-image-preview", src=[inline("x", "k")])
    assert info.value.code == 404
    async with FakeGemini(new_project=True) as fake:
        client = client_for(fake)
        with pytest.raises(errors.ClientError) as info:
            await client.aio.batches.create(model="gemini-2.5-flash-image", src=[inline("x", "k")])
        await client.aio.aclose()
    assert info.value.code == 404 and "new users" in info.value.message
