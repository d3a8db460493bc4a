"""The relax lane on its own, against the strict fake Gemini: when it goes from Flex to Batch and when it does not,
what a Batch result means, the deadline, suspending and resuming, shedding and the circuit breaker, cancelling a
request still in the lane's line. Timings are settings, so every wait is a few milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from bot.errors import BatchEnded, Cancelled, OperatorError, PromptBlocked, Suspended, UpstreamUnavailable
from bot.models import ImageOptions, ImageRequest, Price, as_relax
from bot.providers.gemini import build_request
from bot.relax import RelaxJob, RelaxLane
from bot.relax.values import display_name
from bot.services import build_relax
from bot.storage.db import Database
from tests.fakes.gemini import FakeGemini, GeminiReply

MODEL = "gemini-nano-banana-2.1"
FLEX_1K = Price(1, 0.0168)  # the default model's 1K picture at the Flex tier
FAST = {
    "relax_rpm": 100,
    "relax_flex_attempts": 2,
    "relax_flex_backoff_seconds": 0.01,
    "relax_flex_timeout_seconds": 5,
    "relax_batch_poll_seconds": 0.02,
}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def lane_for(http, db, gemini, tmp_path) -> Callable[..., RelaxLane]:
    def make(clock: Callable[[], float] | None = None, **overrides: Any) -> RelaxLane:
        values: dict[str, Any] = {
            "gemini_api_key": gemini.api_key,
            "gemini_base_url": gemini.base_url,
            "database_path": Path(tmp_path) / "unused.sqlite3",
            **FAST,
            **overrides,
        }
        settings = Settings(_env_file=None, **values)
        return build_relax(http, db, settings, clock=clock or Clock())

    return make


async def new_job(lane: RelaxLane, prompt: str = "a fox", key: str = "1001", user: int = 7) -> RelaxJob:
    """A planned relax request (the pipeline chose its model and size), written down as the pipeline does."""
    options = ImageOptions("16:9", model=MODEL, size="1K", tier="flex")
    request = ImageRequest(user_id=user, channel_id=5, prompt=prompt, options=options)
    return await lane.register(key, generation_id=1, entry_id=1, request=request, model=MODEL)


def start(lane: RelaxLane, job: RelaxJob, *, force: bool = False, calls: list[int] | None = None) -> asyncio.Task[Any]:
    ticket = lane.admit(job.request.user_id, job.key, force=force)
    on_call = (lambda: calls.append(1)) if calls is not None else None
    return asyncio.create_task(lane.run(job, ticket, None, price=FLEX_1K, on_call=on_call))


async def until(condition: Callable[[], Any], what: str) -> Any:
    for _ in range(500):
        if value := condition():
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def flex_calls(gemini: FakeGemini) -> list[Any]:
    return [r for r in gemini.requests if r.kind == "generateContent"]


async def test_flex_refused_for_the_model_goes_to_batch_without_trying_flex_again(lane_for, gemini):
    lane = lane_for()
    gemini.enqueue(GeminiReply.error(400, "INVALID_ARGUMENT", "The flex service tier is not supported for this model."))
    calls: list[int] = []
    task = start(lane, await new_job(lane), calls=calls)
    job = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    gemini.advance_batch(job[0].name, "SUCCEEDED")
    image = await task
    # The real cost of the Batch answer, from its tokens at the Batch (half) rate.
    assert image.tier == "batch" and image.provider == "gemini" and image.cost_usd == pytest.approx(0.0168, rel=0.05)
    assert len(flex_calls(gemini)) == 1 and flex_calls(gemini)[0].body["serviceTier"] == "flex"
    assert len(calls) == 2  # the Flex call and the Batch submission, each counted as a call
    request = job[0].items[0]["request"]
    assert request["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "1K"}
    assert "serviceTier" not in request and job[0].model == MODEL
    assert await lane.store.outcome("1001") == (True, "image")


async def test_a_setup_problem_on_flex_ends_the_request_instead_of_trying_batch(lane_for, gemini):
    lane = lane_for()
    gemini.enqueue(GeminiReply.api_key_invalid())
    with pytest.raises(OperatorError):
        await start(lane, await new_job(lane))
    assert gemini.batches.jobs == {} and len(flex_calls(gemini)) == 1
    assert await lane.store.outcome("1001") == (True, "OperatorError")


async def test_no_flex_attempts_sends_a_batch_job_at_once(lane_for, gemini):
    lane = lane_for(relax_flex_attempts=0)
    task = start(lane, await new_job(lane))
    (job,) = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    gemini.advance_batch(job.name, "SUCCEEDED")
    assert (await task).tier == "batch" and flex_calls(gemini) == []


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (GeminiReply.prompt_blocked("PROHIBITED_CONTENT"), PromptBlocked),
        (GeminiReply.overloaded(), UpstreamUnavailable),
    ],
    ids=["refusal", "error-item"],
)
async def test_a_batch_result_means_what_the_same_answer_would_mean(lane_for, gemini, reply, raised):
    lane = lane_for(relax_flex_attempts=0)
    gemini.enqueue_batch(reply)
    task = start(lane, await new_job(lane))
    (job,) = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    gemini.advance_batch(job.name, "SUCCEEDED")
    with pytest.raises(raised):
        await task


async def test_a_job_past_the_deadline_is_cancelled_upstream_and_ends(lane_for, gemini):
    clock = Clock()
    lane = lane_for(clock, relax_flex_attempts=0, relax_batch_max_hours=2)
    task = start(lane, await new_job(lane))
    (job,) = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    await until(lambda: [r for r in gemini.requests if r.kind == "batches.get"], "a poll")
    clock.now += 2 * 3600
    with pytest.raises(BatchEnded) as ended:
        await task
    assert ended.value.state == "TIMEOUT" and ended.value.hours == pytest.approx(2)
    assert job.cancel_requested and job.state == "BATCH_STATE_CANCELLED"


async def test_a_suspended_flex_request_is_carried_on_by_the_next_lane(lane_for, gemini, db):
    gemini.flex_delay = 60.0
    lane = lane_for()
    task = start(lane, await new_job(lane))
    await until(lambda: gemini.in_flight, "the Flex call")
    assert lane.suspend() == 1
    with pytest.raises(Suspended):
        await task
    (alive,) = await lane.store.alive()
    assert (alive.stage, alive.flex_attempts, alive.batch_name) == ("flex", 1, None)

    gemini.flex_delay = 0.0
    after = lane_for()  # the next start, on the same database
    image = await start(after, alive, force=True)
    assert image.tier == "flex" and len(flex_calls(gemini)) == 2  # the interrupted call was sent again
    assert await after.store.alive() == [] and await after.store.outcome("1001") == (True, "image")


async def test_a_suspended_batch_request_resumes_polling_without_sending_anything(lane_for, gemini):
    lane = lane_for(relax_flex_attempts=0)
    task = start(lane, await new_job(lane))
    (job,) = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    lane.suspend()
    with pytest.raises(Suspended):
        await task
    (alive,) = await lane.store.alive()
    assert alive.batch_name == job.name
    gemini.advance_batch(job.name, "SUCCEEDED")
    image = await start(lane_for(), alive, force=True)
    assert image.tier == "batch" and len(gemini.batches.jobs) == 1 and flex_calls(gemini) == []


async def test_shedding_never_opens_the_lanes_circuit(lane_for, gemini):
    gemini.flex_shed = 99
    lane = lane_for(circuit_failure_threshold=2, relax_flex_attempts=3)
    task = start(lane, await new_job(lane))
    (job,) = await until(lambda: list(gemini.batches.jobs.values()), "a batch job")
    assert gemini.flex_sheds == 3 and lane.scheduler.gate.circuit.state(0.0) == "closed"
    lane.admit(8, "2002")  # the lane still takes requests
    gemini.advance_batch(job.name, "SUCCEEDED")
    await task


async def test_cancel_while_waiting_for_a_relax_slot_sends_nothing(lane_for, gemini):
    gemini.flex_delay = 60.0
    lane = lane_for(relax_concurrency=1)
    first = start(lane, await new_job(lane, key="1001", user=7))
    await until(lambda: gemini.in_flight, "the first Flex call")
    second = start(lane, await new_job(lane, key="1002", user=8))
    await until(lambda: [j for j in lane.jobs() if j.key == "1002"], "the second job")
    assert lane.cancel("1002") and not lane.cancel("1002")  # once
    with pytest.raises(Cancelled):
        await second
    assert len(flex_calls(gemini)) == 1 and await lane.store.outcome("1002") == (True, "Cancelled")
    assert lane.cancel("1001")
    with pytest.raises(Cancelled):
        await first
    assert not lane.cancel("9999")


async def test_unavailable_says_why(lane_for, http, db, tmp_path, monkeypatch):
    lane = lane_for()
    plain = as_relax(ImageRequest(user_id=1, channel_id=2, prompt="x"))
    assert lane.unavailable(plain) is None
    assert lane.unavailable(ImageRequest(user_id=1, channel_id=2, prompt="x", parent_id=3)).reason == "edits"
    assert lane_for(relax_daily_quota=0).unavailable(plain).reason == "off"
    monkeypatch.setenv("PROVIDER_GW_KIND", "openai-chat")
    monkeypatch.setenv("PROVIDER_GW_BASE_URL", "https://gateway.example/v1")
    monkeypatch.setenv("PROVIDER_GW_API_KEY", "sk-test-0123456789")
    settings = Settings(_env_file=None, providers="gw", database_path=Path(tmp_path) / "x.sqlite3")
    gateways_only = build_relax(http, db, settings)
    assert gateways_only.upstream is None and gateways_only.unavailable(plain).reason == "gateways-only"


async def test_jobs_are_stored_with_what_a_restart_needs(lane_for, db: Database):
    lane = lane_for()
    job = await new_job(lane, prompt="a fox in the snow")
    (alive,) = await lane.store.alive()
    assert alive == job and alive.request.relax and alive.request.options.aspect_ratio == "16:9"


async def test_a_batch_job_created_just_before_a_crash_is_found_not_sent_twice(lane_for, gemini, http):
    lane = lane_for()
    job = await new_job(lane)
    await lane.store.submitting(job.id)  # the crash came after creating the job, before storing its name
    upstream = lane.upstream
    assert upstream is not None
    for other in range(3):  # other jobs of the same project
        await upstream.batches.create(MODEL, [("x", build_request(f"other {other}"))], display_name=f"else-{other}")
    name = await upstream.batches.create(MODEL, [(job.key, build_request("a fox"))], display_name=display_name(job))
    (alive,) = await lane.store.alive()
    assert alive.stage == "submitting"

    task = start(lane_for(), alive, force=True)
    await until(lambda: [r for r in gemini.requests if r.kind == "batches.get"], "a poll")
    gemini.advance_batch(name, "SUCCEEDED")
    assert (await task).tier == "batch"
    assert len(gemini.batches.jobs) == 4 and flex_calls(gemini) == []  # found, neither resent nor sent to Flex
    assert [r.query.get("pageSize") for r in gemini.requests if r.kind == "batches.list"] == ["100"]


async def test_a_submission_that_never_reached_google_is_made_at_the_next_start(lane_for, gemini):
    lane = lane_for()
    job = await new_job(lane)
    await lane.store.submitting(job.id)
    (alive,) = await lane.store.alive()
    task = start(lane_for(), alive, force=True)
    (created,) = await until(lambda: list(gemini.batches.jobs.values()), "the batch job")
    assert created.display_name == display_name(job) and flex_calls(gemini) == []
    gemini.advance_batch(created.name, "SUCCEEDED")
    assert (await task).tier == "batch"


async def test_find_reads_every_page_and_takes_the_newest(gemini, http):
    from pydantic import SecretStr

    from bot.providers.gemini_batch import GeminiBatches

    batches = GeminiBatches(http, SecretStr(gemini.api_key), base_url=gemini.base_url)
    names = [await batches.create(MODEL, [("k", build_request(str(i)))], display_name="same") for i in range(3)]
    await batches.create(MODEL, [("k", build_request("other"))], display_name="other")
    assert await batches.find("same", page_size=1, max_pages=5) == names[-1]  # on the third of four pages
    assert await batches.find("same", page_size=1, max_pages=2) == names[1]  # only what the pages it read show
    assert await batches.find("nobody", page_size=3) is None
    pages = [r.query.get("pageToken") for r in gemini.requests if r.kind == "batches.list"]
    assert pages[:4] == [None, pages[1], pages[2], pages[3]] and len(set(pages[:4])) == 4
