"""InteractionJob against a recording stand-in for the interaction, on a fake clock: the order of edits, throttling,
and the way to the channel once the 15-minute token is gone. (End to end, the same is in test_queue_e2e.py.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.errors import PromptBlocked
from bot.models import GeneratedImage, ImageRequest, Progress, Reservation
from bot.pipeline import Delivery
from cogs.ui.jobs import TOKEN_LIFETIME_SECONDS, InteractionJob, cancel_view
from tests.fakes.clock import FakeClock
from tests.fakes.gemini_images import png_bytes

USER = SimpleNamespace(id=42, mention="<@42>", display_name="alice")


class Channel(discord.abc.Messageable):
    def __init__(self) -> None:
        self.id = 7
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent.append(kwargs)
        return SimpleNamespace(id=1000 + len(self.sent))


class Interaction:
    """What InteractionJob uses of a `discord.Interaction`. `slow()` makes the next edit take until `release()`,
    while later ones would go straight through, as a request stuck in the network does."""

    def __init__(self) -> None:
        self.id = 123456789
        self.user = USER
        self.channel = Channel()
        self.created_at = discord.utils.utcnow()
        self.filesize_limit = 10 * 1024 * 1024
        self.edits: list[dict[str, Any]] = []
        self._slow: asyncio.Event | None = None
        self._held = asyncio.Event()
        self.refuse: discord.HTTPException | None = None  # what Discord answers to every edit, if set

    def slow(self) -> None:
        self._slow = asyncio.Event()

    def release(self) -> None:
        assert self._slow is not None and self._held.is_set(), "no edit was held"
        self._slow.set()

    async def edit_original_response(self, **kwargs: Any) -> Any:
        if self._slow is not None and not self._held.is_set():
            self._held.set()
            await self._slow.wait()
        if self.refuse is not None:
            raise self.refuse
        self.edits.append(kwargs)
        return SimpleNamespace(id=555)


def delivery() -> Delivery:
    image = GeneratedImage(png_bytes(8, 8), "image/png", "gemini-2.5-flash-image")
    reservation = Reservation(id=1, user_id=USER.id, guild_id=None, limit=10, remaining=9, resets_at=2e9)
    return Delivery(1, ImageRequest(user_id=USER.id, channel_id=7, prompt="a fox"), image, reservation, 0)


def texts(ix: Interaction) -> list[str]:
    return [edit.get("content") or "" for edit in ix.edits]


async def test_no_progress_edit_lands_after_the_result():
    clock, ix = FakeClock(), Interaction()
    job = InteractionJob(ix, edit_interval=0, clock=clock)  # type: ignore[arg-type]
    ix.slow()
    job.start()
    in_flight = asyncio.create_task(job.progress(Progress("queued", 3, 10.0)))
    await clock.settle()
    delivering = asyncio.create_task(job.deliver(delivery()))
    await clock.settle()
    assert not delivering.done()  # it waits for the edit under way instead of racing it
    ix.release()
    assert await delivering == 555
    await in_flight
    # The scheduler's reports can come after its run() returned, from a task of their own.
    await job.progress(Progress("queued", 1, 1.0))
    await job.progress(Progress("generating"))
    await clock.advance(60)

    assert len(ix.edits) == 2 and "position 3 in line" in texts(ix)[0]
    assert ix.edits[-1]["attachments"] and "left today" in ix.edits[-1]["content"]


async def test_edits_are_throttled_the_newest_wins_and_generating_goes_out_at_once():
    clock, ix = FakeClock(), Interaction()
    job = InteractionJob(ix, edit_interval=2, clock=clock)  # type: ignore[arg-type]
    job.start()
    await job.progress(Progress("queued", 5, 30.0))
    await clock.advance(0.5)
    await job.progress(Progress("queued", 4, 20.0))
    await clock.advance(0.5)
    await job.progress(Progress("queued", 3, 10.0))  # made at t+1: its start is t+11, whenever it is shown
    assert len(ix.edits) == 1
    await clock.advance(1.2)
    await job.progress(Progress("generating"))

    started = round(clock.time() - 2.2 + 1 + 10)
    assert texts(ix) == [
        f"⏳ Waiting for the image model — position 5 in line · should start <t:{round(clock.time() - 2.2 + 30)}:R>",
        f"⏳ Waiting for the image model — position 3 in line · should start <t:{started}:R>",
        "🎨 Generating your image…",
    ]
    # Waiting messages carry the requester's Cancel button; "generating" takes it away.
    (button,) = ix.edits[0]["view"].children
    assert button.custom_id == f"gib:cancel:{ix.id}:{USER.id}"
    assert ix.edits[2]["view"] is None


def refusal(status: int, code: int) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="refused")
    kind = discord.NotFound if status == 404 else discord.HTTPException
    return kind(response, {"code": code, "message": "refused"})  # type: ignore[arg-type]


EXPIRIES = [
    pytest.param(None, id="by-its-own-clock"),
    pytest.param(refusal(404, 10015), id="unknown-webhook"),
    pytest.param(refusal(401, 50027), id="invalid-webhook-token"),
]


@pytest.mark.parametrize("answer", EXPIRIES)
async def test_after_the_token_the_result_and_failures_go_to_the_channel_mentioning_the_user(answer):
    clock, ix = FakeClock(), Interaction()
    job = InteractionJob(ix, edit_interval=0, clock=clock)  # type: ignore[arg-type]
    await job.progress(Progress("generating"))
    await clock.advance(TOKEN_LIFETIME_SECONDS + 1 if answer is None else 1)
    ix.refuse = answer

    assert await job.deliver(delivery()) == 1001
    refused = PromptBlocked("SAFETY")
    refused.blame("gemini", "Google")
    await job.fail(refused)

    result, failure = ix.channel.sent
    assert result["content"].startswith("<@42> your image is ready.") and result["file"].filename.endswith(".png")
    assert failure["content"].startswith("<@42> 🛡️ Google's safety filter refused")
    for sent in (result, failure):
        assert sent["reference"].message_id == 555 and sent["allowed_mentions"].users == [USER]
    assert len(ix.edits) == 1  # only "generating", from before the token died


def test_a_key_that_cannot_be_a_custom_id_gets_no_cancel_button():
    assert cancel_view("cli-0f3a", 1) is None and cancel_view("9" * 21, 1) is None
    assert cancel_view("1234", 1) is not None
