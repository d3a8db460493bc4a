"""The relax lane end to end: the real discord.py client against the fake Discord, the real bot against the strict
fake Gemini (Flex shedding and Batch jobs moved by the test's hand).

Each test reads what a member sees (the message that mentions them in the channel, the interaction's own message,
`/queue`), what reached Google (the Flex tier on the wire, the Batch job, its cancel), and the ledger (the relax
allowance and the member's credits, exactly)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bot.services import build_quota
from bot.storage.db import Database
from tests.e2e.edit_helpers import ephemeral_text
from tests.e2e.test_forged_buttons_e2e import forged_click
from tests.fakes.discord import FakeDiscord, Interaction, Member
from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import png_bytes
from tests.fakes.openai_gateway import FakeGateway

# Waits in seconds instead of minutes and hours.
RELAX: dict[str, Any] = {
    "relax_rpm": 30,
    "relax_flex_attempts": 2,
    "relax_flex_backoff_seconds": 0.01,
    "relax_flex_timeout_seconds": 5,
    "relax_batch_poll_seconds": 0.05,
}
FLEX_1K = 0.0168  # the default model's 1K picture at the Flex tier (half of $0.0336), estimated and real


async def numbers(bot: Any, fake: FakeDiscord, member: Member, *, settled: bool = True) -> dict[str, int]:
    """The member's day as the ledger counts it, once every request has ended (unless some still wait)."""
    if settled:
        assert await bot.services.pipeline.drain(within=5)
    status = await bot.services.quota.status(member.id, fake.guild.id, ())
    return {
        "used": status.used,
        "reserved": status.reserved,
        "relax_used": status.relax_used,
        "relax_reserved": status.relax_reserved,
    }


async def posted_for(fake: FakeDiscord, member: Member, words: str = "") -> Any:
    """The channel message that mentions `member` (with a picture unless `words` are asked for)."""
    return await fake.wait_for_message(
        predicate=lambda m: m.mentions_user(member.user) and (words in m.content if words else m.attachments)
    )


async def relax_request(fake: FakeDiscord, prompt: str = "a fox", member: Member | None = None) -> Interaction:
    return await fake.slash("imagine", {"prompt": prompt, "relax": True}, user=member or fake.member)


async def in_batch(fake: FakeDiscord, gemini: FakeGemini, ix: Interaction) -> None:
    """Until Flex was shed and the request waits in a Batch job (and the member was told so)."""
    await fake.wait_for(lambda: gemini.batches.jobs, what="a batch job")
    await ix.wait_for_original(lambda m: "batch queue" in m.content)


def image_of(response: dict) -> bytes:
    part = response["candidates"][0]["content"]["parts"][-1]
    return base64.b64decode(part["inlineData"]["data"])


def cancel_id(ix: Interaction) -> str:
    (custom_id,) = [c for c in ix.original.custom_ids if c.startswith("gib:cancel:")]
    return custom_id


async def test_a_relax_request_is_made_by_flex_and_posted_with_a_mention_at_half_price(run_bot, fake_discord, gemini):
    fake = fake_discord
    picture = png_bytes(1344, 768, seed=3)
    gemini.enqueue(GeminiReply.image(picture))
    async with run_bot(**RELAX) as bot:
        ix = await relax_request(fake, "a red fox")
        posted = await posted_for(fake, fake.member)

        # On the wire: an ordinary generateContent asking for the Flex tier at the top level.
        (call,) = gemini.served
        assert call.body["serviceTier"] == "flex" and "serviceTier" not in call.body["generationConfig"]
        assert call.prompt == "a red fox" and call.response["usageMetadata"]["serviceTier"] == "flex"
        assert gemini.batches.jobs == {}
        # What the member sees: the picture in the channel, mentioning them; the waiting message points to it.
        assert posted.attachments[0].data == picture and "your relax picture is ready" in posted.content
        assert "🐢 relax · 1 credit · 9 of 10 relax credits left today" in posted.content
        assert "relax (Flex)" in posted.embed["footer"]["text"]
        done = await ix.wait_for_original(lambda m: m.content.startswith("🐢 Done"))
        assert not ix.ephemeral and str(posted.id) in done.content and done.custom_ids == []
        assert any("Queued in relax mode" in (edit.get("content") or "") for edit in ix.edits)
        # The ledger: one relax credit, none of the member's credits; half the estimated dollars in spend.
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 1, "relax_reserved": 0}
        spend = await bot.services.quota.spend(fake.guild.id)
        assert spend.images == 1 and spend.cost_usd == pytest.approx(FLEX_1K, rel=0.05)  # from the answer's tokens
        (generation,) = await bot.services.db.fetchall("SELECT credits, cost_micros FROM generations")
        assert generation["credits"] == 1 and generation["cost_micros"] == pytest.approx(FLEX_1K * 1e6, rel=0.05)
        (row,) = await bot.services.db.fetchall("SELECT status, message_id FROM generations")
        assert (row["status"], row["message_id"]) == ("delivered", posted.id)
        assert await bot.services.relax.store.outcome(str(ix.id)) == (True, "image")


async def test_flex_shedding_falls_back_to_a_batch_job(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.flex_shed = 99  # Google sheds every Flex request
    async with run_bot(**RELAX) as bot:
        ix = await relax_request(fake, "an owl at dusk")
        await in_batch(fake, gemini, ix)
        assert gemini.flex_sheds == 2 and gemini.served == []  # RELAX_FLEX_ATTEMPTS, then Batch
        assert cancel_id(ix)  # still cancellable while in the batch queue
        (job,) = gemini.batches.jobs.values()
        (item,) = job.items
        assert item["metadata"] == {"key": str(ix.id)} and "serviceTier" not in item["request"]
        assert item["request"]["contents"][0]["parts"][0]["text"] == "an owl at dusk"
        waiting = await numbers(bot, fake, fake.member, settled=False)
        assert waiting == {"used": 0, "reserved": 0, "relax_used": 0, "relax_reserved": 1}

        gemini.advance_batch(job.name, "RUNNING")
        gemini.advance_batch(job.name, "SUCCEEDED")
        posted = await posted_for(fake, fake.member)
        (answered,) = gemini.batch_items  # the picture is the one the job's inline result carried
        assert posted.attachments[0].data == image_of(answered.response)
        assert "relax (Batch)" in posted.embed["footer"]["text"]
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 1, "relax_reserved": 0}
        polls = [r for r in gemini.requests if r.kind == "batches.get"]
        assert polls and all(r.target == job.name.removeprefix("batches/") for r in polls)


async def test_a_batch_job_pending_when_the_bot_restarts_still_delivers(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.flex_shed = 99
    async with run_bot(**RELAX) as bot:
        ix = await relax_request(fake, "a lighthouse")
        await in_batch(fake, gemini, ix)
        settings = bot.settings
    # The bot stopped with the job in Google's hands: the member was told it carries on (Cancel still there), its
    # reservation is still open, its job alive.
    assert "restarting" in ix.original.content and "carries on" in ix.original.content
    assert cancel_id(ix)
    db = await Database.open(settings.database_path)
    try:
        status = await build_quota(db, settings).status(fake.member.id, fake.guild.id, ())
        assert (status.relax_reserved, status.relax_used, status.used) == (1, 0, 0)
        (alive,) = await db.fetchall("SELECT stage, batch_name FROM relax_jobs WHERE ended_at IS NULL")
        assert alive["stage"] == "batch" and alive["batch_name"] in gemini.batches.jobs
    finally:
        await db.close()

    gemini.advance_batch(-1, "SUCCEEDED")  # Google finished while the bot was down
    polls_before = sum(1 for r in gemini.requests if r.kind == "batches.get")
    async with run_bot(**RELAX) as bot:
        posted = await posted_for(fake, fake.member)
        assert "your relax picture is ready" in posted.content and "relax (Batch)" in posted.embed["footer"]["text"]
        assert sum(1 for r in gemini.requests if r.kind == "batches.get") > polls_before
        assert len(gemini.batches.jobs) == 1 and gemini.served == []  # nothing was sent twice
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 1, "relax_reserved": 0}
        (row,) = await bot.services.db.fetchall("SELECT status, message_id FROM generations")
        assert (row["status"], row["message_id"]) == ("delivered", posted.id)


@pytest.mark.parametrize(
    ("state", "words"),
    [("EXPIRED", "didn't get to your relax picture in time"), ("FAILED", "batch job for your relax picture failed")],
)
async def test_a_batch_job_that_expires_or_fails_refunds_and_tells_the_member(
    run_bot, fake_discord, gemini, state, words
):
    fake = fake_discord
    gemini.flex_shed = 99
    async with run_bot(**RELAX) as bot:
        ix = await relax_request(fake)
        await in_batch(fake, gemini, ix)
        fake.advance(15 * 60 + 1)  # hours later: the interaction's token is long dead
        gemini.advance_batch(-1, state)
        told = await posted_for(fake, fake.member, words)
        assert "relax credits were refunded" in told.content and not told.attachments
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 0, "relax_reserved": 0}
        (row,) = await bot.services.db.fetchall("SELECT status, error_kind FROM generations")
        assert (row["status"], row["error_kind"]) == ("failed", "BatchEnded")
        assert await bot.services.relax.store.outcome(str(ix.id)) == (True, "BatchEnded")


async def test_queue_shows_relax_jobs_with_their_age(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    gemini.flex_shed = 99
    async with run_bot(**RELAX):
        ix = await relax_request(fake, "a quiet harbour")
        await in_batch(fake, gemini, ix)
        mine = await fake.slash("queue")
        theirs = await fake.slash("queue", user=bob)
        for answer in (mine, theirs):
            await answer.wait_for_callback()
        text = mine.callback.data["content"]
        assert mine.ephemeral and "The relax lane" in text and "1 in Google's batch queue" in text
        assert "The oldest was asked for <t:" in text
        assert "Yours: “a quiet harbour” — in Google's batch queue, asked <t:" in text
        assert "1 relax request" in theirs.callback.data["content"] and "Yours" not in theirs.callback.data["content"]


async def test_cancel_in_the_batch_queue_cancels_the_job_upstream_and_refunds(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.flex_shed = 99
    async with run_bot(**RELAX) as bot:
        ix = await relax_request(fake)
        await in_batch(fake, gemini, ix)
        await fake.click(ix.original, cancel_id(ix))
        told = await ix.wait_for_original(lambda m: m.content.startswith("Cancelled"))
        assert "quota was not charged" in told.content and told.custom_ids == []
        (job,) = gemini.batches.jobs.values()
        assert job.cancel_requested and job.state == "BATCH_STATE_CANCELLED"
        assert [r.kind for r in gemini.requests if r.kind == "batches.cancel"] == ["batches.cancel"]
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 0, "relax_reserved": 0}


async def test_a_relax_cancel_is_judged_by_the_job_and_the_message_it_is_on(run_bot, fake_discord, gemini):
    fake = fake_discord
    carol = fake.add_member("carol")
    gemini.flex_shed = 99
    async with run_bot(**RELAX) as bot:
        prompt = "a **bold** fox [here](https://example.com)"
        ix = await relax_request(fake, prompt)
        await in_batch(fake, gemini, ix)
        other = await relax_request(fake, "an owl")
        await other.wait_for_original(lambda m: "relax" in m.content)
        await fake.wait_for(lambda: len(bot.services.relax.jobs()) == 2, what="both relax jobs under way")
        key = cancel_id(ix).split(":")[2]
        # Carol names herself as the requester of the member's relax job, on its own message.
        press = await forged_click(fake, ix.original, f"gib:cancel:{key}:{carol.id}", carol)
        assert "Only the person who asked" in await ephemeral_text(press)
        # The member's own Cancel of the first job, on the message of the second: it acts on neither.
        press = await forged_click(fake, other.original, cancel_id(ix), fake.member)
        assert "doesn't belong" in await ephemeral_text(press)
        assert {job.state for job in gemini.batches.jobs.values()} != {"BATCH_STATE_CANCELLED"}
        assert {info.prompt for info in bot.services.relax.jobs()} == {prompt, "an owl"}
        # /queue shows the member's prompts as typed: no bold, no masked link.
        listing = await fake.slash("queue")
        await listing.wait_for_callback()
        assert r"“a \*\*bold\*\* fox \[here\]\(https://example.com\)”" in listing.callback.data["content"]
        # The real button, pressed by the member, still cancels it.
        await fake.click(ix.original, cancel_id(ix))
        await ix.wait_for_original(lambda m: m.content.startswith("Cancelled"))
        assert [info.prompt for info in bot.services.relax.jobs()] == ["an owl"]


async def test_cancel_after_a_restart_still_cancels_the_job(run_bot, fake_discord, gemini):
    fake = fake_discord
    gemini.flex_shed = 99
    async with run_bot(**RELAX):
        ix = await relax_request(fake)
        await in_batch(fake, gemini, ix)
    async with run_bot(**RELAX) as bot:
        await fake.wait_for(lambda: bot.services.relax.jobs(), what="the relax job resumed")
        press = await fake.click(ix.original, cancel_id(ix))  # the button on the message from before the restart
        await press.wait_for_callback()
        told = await posted_for(fake, fake.member, "Cancelled")
        assert "quota was not charged" in told.content
        (job,) = gemini.batches.jobs.values()
        assert job.state == "BATCH_STATE_CANCELLED"
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 0, "relax_reserved": 0}


async def test_relax_never_delays_a_fast_request(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    gemini.flex_delay = 60.0  # Flex is slow today: the relax call stays at Google for the whole test
    async with run_bot(upstream_concurrency=1, relax_concurrency=1, **RELAX) as bot:
        relaxed = await relax_request(fake, "a slow sunset")
        await fake.wait_for(lambda: gemini.in_flight, what="the Flex call at Google")
        fast = await fake.slash("imagine", {"prompt": "a quick sketch"}, user=bob)
        done = await fast.wait_for_original(lambda m: m.attachments)
        assert gemini.in_flight == 1  # delivered while the relax request is still being made
        assert [r.body.get("serviceTier") for r in gemini.requests] == ["flex", None]
        assert "left today" in done.content and "relax" not in done.content
        # The relax request is still there, and can be cancelled while Flex works on it.
        await fake.click(relaxed.original, cancel_id(relaxed))
        await relaxed.wait_for_original(lambda m: m.content.startswith("Cancelled"))
        assert await numbers(bot, fake, bob) == {"used": 1, "reserved": 0, "relax_used": 0, "relax_reserved": 0}
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 0, "relax_reserved": 0}


async def test_out_of_credits_a_member_is_offered_relax_mode_and_takes_it(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(daily_quota=1, **RELAX) as bot:
        first = await fake.slash("imagine", {"prompt": "a fox"})
        await first.wait_for_original(lambda m: m.attachments)
        refused = await fake.slash("imagine", {"prompt": "a second fox", "aspect_ratio": "16:9"})
        await refused.wait_for_callback()
        offer = refused.original
        assert refused.ephemeral and "used all 1 of your credits" in offer.content
        assert "Queue it in relax mode at half price?" in offer.content and "It costs 1 credit from" in offer.content
        (button,) = [c for c in offer.custom_ids if c.startswith("gib:relax:")]

        press = await fake.click(offer, button)
        posted = await posted_for(fake, fake.member)
        assert "a second fox" in posted.embed["description"] and "relax (Flex)" in posted.embed["footer"]["text"]
        assert gemini.served[-1].body["serviceTier"] == "flex" and gemini.served[-1].aspect_ratio == "16:9"
        assert press.response_type == 5 and not press.ephemeral  # the relax request shows publicly, like /imagine
        assert await numbers(bot, fake, fake.member) == {"used": 1, "reserved": 0, "relax_used": 1, "relax_reserved": 0}

        again = await fake.click(offer, button)  # an offer is taken once
        await again.wait_for_callback()
        assert again.ephemeral and "This offer has expired" in again.callback.data["content"]
        assert len(gemini.served) == 2


async def test_no_offer_when_the_relax_allowance_is_used_up_too(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(daily_quota=1, relax_daily_quota=1, **RELAX) as bot:
        await (await fake.slash("imagine", {"prompt": "a fox"})).wait_for_original(lambda m: m.attachments)
        await relax_request(fake, "a relaxed fox")
        await posted_for(fake, fake.member)
        refused = await fake.slash("imagine", {"prompt": "one more"})
        await refused.wait_for_callback()
        assert "used all 1 of your credits" in refused.original.content and refused.original.custom_ids == []
        relaxed = await relax_request(fake, "one more, relaxed")
        await relaxed.wait_for_callback()
        assert relaxed.ephemeral and "your relax allowance has 0 of 1 left" in relaxed.original.content
        assert await numbers(bot, fake, fake.member) == {"used": 1, "reserved": 0, "relax_used": 1, "relax_reserved": 0}
        assert len(gemini.served) == 2


@pytest.fixture
async def gateway_only(monkeypatch):
    async with FakeGateway() as server:
        for name, value in {
            "PROVIDER_GW_KIND": "openai-chat",
            "PROVIDER_GW_BASE_URL": server.base_url,
            "PROVIDER_GW_ALLOW_HTTP": "true",
            "PROVIDER_GW_API_KEY": server.api_key,
            "PROVIDER_GW_MODELS": "gemini-nano-banana-2.1=google/gemini-nano-banana-2.1",
        }.items():
            monkeypatch.setenv(name, value)
        yield server


async def test_relax_is_gemini_only_and_says_so_when_the_bot_uses_gateways(run_bot, fake_discord, gemini, gateway_only):
    fake = fake_discord
    async with run_bot(providers="gw", daily_quota=1, **RELAX) as bot:
        ix = await relax_request(fake)
        await ix.wait_for_callback()
        assert ix.ephemeral and "Relax mode isn't available on this bot" in ix.original.content
        assert "gateways" in ix.original.content
        await (await fake.slash("imagine", {"prompt": "a fox"})).wait_for_original(lambda m: m.attachments)
        refused = await fake.slash("imagine", {"prompt": "another"})
        await refused.wait_for_callback()
        assert refused.original.custom_ids == [] and "relax" not in refused.original.content  # nothing to offer
        assert await numbers(bot, fake, fake.member) == {"used": 1, "reserved": 0, "relax_used": 0, "relax_reserved": 0}
    assert gemini.requests == [] and len(gateway_only.served) == 1


async def test_relax_costs_the_flex_price_of_the_model_and_size_chosen(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(gemini_models="gemini-3-pro-image", **RELAX) as bot:
        registry = bot.services.registry
        pro = registry.get("gemini-3-pro-image")
        standard, relax = registry.price(pro, "4K"), registry.price(pro, "4K", "flex")
        assert (standard.credits, relax.credits) == (8, 4)  # half, from the price table
        ix = await fake.slash(
            "imagine", {"prompt": "a poster", "model": "gemini-3-pro-image", "size": "4K", "relax": True}
        )
        posted = await posted_for(fake, fake.member)
        (call,) = gemini.served
        assert call.body["serviceTier"] == "flex" and call.body["generationConfig"]["imageConfig"]["imageSize"] == "4K"
        assert "🐢 relax · 4 credits · 6 of 10 relax credits left today" in posted.content
        assert "Nano Banana Pro · 4K" in posted.embed["footer"]["text"] and ix.original is not None
        assert await numbers(bot, fake, fake.member) == {"used": 0, "reserved": 0, "relax_used": 4, "relax_reserved": 0}
        spend = await bot.services.quota.spend(None)
        assert spend.cost_usd == pytest.approx(relax.estimate_usd, rel=0.05)  # Google's half-price rates
