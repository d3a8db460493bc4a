"""A busy channel under Discord's rate limits (issue 12, item 8): 40 members reply to a picture in one channel at
once, with the fake Discord enforcing Discord's per-channel buckets (5 creates and 5 edits per window; windows
shrunk tenfold). Everyone gets their picture; every request reaches the image model without waiting for a
message in the channel; Discord never has to refuse a write; and once the first picture is ready, no waiting reply or
progress edit takes a slot of the channel's buckets until every picture is shown. `python bench/busy_channel.py`
measures the times beside a bot that only posts results."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from tests.fakes.discord import FakeDiscord, Message
from tests.fakes.discord_ratelimits import RateLimits

FACTOR = 0.1
MEMBERS = 40
CREATE, EDIT = "POST /channels/{channel_id}/messages", "PATCH /channels/{channel_id}/messages/{message_id}"


@pytest.fixture
def handed(monkeypatch, fake_discord) -> list[tuple[str, str, float, bool]]:
    """Every request the bot handed to discord.py: (method, path, fake time, carries files)."""
    seen: list[tuple[str, str, float, bool]] = []
    request = discord.http.HTTPClient.request

    async def spy(self: Any, route: discord.http.Route, **kwargs: Any) -> Any:
        seen.append((route.method, route.path, fake_discord.now(), bool(kwargs.get("files"))))
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", spy)
    return seen


async def test_forty_members_in_one_channel_get_their_pictures_results_first(run_bot, fake_discord, gemini, handed):
    fake: FakeDiscord = fake_discord
    fake.timeout = 60
    gemini.clock, gemini.latency = fake.now, 3.0 * FACTOR
    settings = {
        "upstream_rpm": 100_000,
        "upstream_concurrency": 100,
        "progress_edit_interval_seconds": 2.0 * FACTOR,
        "discord_channel_window_seconds": 5.0 * FACTOR,
    }
    async with run_bot(**settings) as bot:
        ix = await fake.slash("imagine", {"prompt": "a quiet street"})
        picture = await ix.wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        crowd = [fake.add_member(f"member{i}") for i in range(MEMBERS)]
        fake.limiter.configure(RateLimits(time_factor=FACTOR))
        first = len(fake.requests)
        asks = [
            await fake.send_message(content=f"make it night {i}", reply_to=picture, author=member)
            for i, member in enumerate(crowd)
        ]

        def answers() -> list[Message] | None:
            found = [next((m for m in fake.messages() if m.reference_id == a.id and m.attachments), None) for a in asks]
            return None if None in found else found  # type: ignore[return-value]

        shown = await fake.wait_for(answers, what="a picture for every member")
        assert await bot.services.pipeline.drain(within=10)
        # The ⏳ of those who got no waiting reply is taken away once their picture is there.
        await fake.wait_for(lambda: not any(ask.reactions for ask in asks), what="the waiting reactions to go")

    ours = fake.requests[first:]
    channel = [r for r in ours if r.route in (CREATE, EDIT) and r.status == 200]
    results = [r for r in channel if r.files]
    progress = [r for r in channel if not r.files]
    assert len(results) == MEMBERS and {m.author for m in shown} == {fake.bot_user}
    assert sorted(r.prompt.rsplit("Now: ", 1)[-1] for r in gemini.served[1:]) == sorted(a.content for a in asks)
    # Discord never had to refuse a write: results were handed over no faster than the channel takes them.
    assert fake.rate_limited == []
    # Every request reached the image model before the first picture was shown: none waited for a message.
    assert max(r.at for r in gemini.requests[1:]) < min(r.at for r in results)
    # From the first picture handed to discord.py until the last one is shown, no progress write in the channel.
    first_result = min(at for method, path, at, files in handed if files and path.startswith("/channels/"))
    last_result = max(r.at for r in results)
    assert [r for r in progress if first_result < r.at < last_result] == []
    # Progress used at most half of any window: the waiting replies went to the first comers only.
    waiting_replies = [r for r in progress if r.route == CREATE]
    assert 1 <= len(waiting_replies) <= 2
    reacted = [r for r in ours if r.route.startswith("PUT /channels/{channel_id}/messages/{message_id}/reactions")]
    assert len(reacted) == MEMBERS - len(waiting_replies)
