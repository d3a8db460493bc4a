"""The fake Discord checks every request body against Discord's published API spec (`tests/fakes/discord_spec`),
here through discord.py's own HTTP client: what the spec refuses gets Discord's 400 and fails the test; what
discord.py really sends (integer snowflakes, "+00:00" timestamps, multipart `payload_json`) passes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import discord
import pytest
from discord.ext import commands
from discord.http import Route

from tests.fakes import discord_spec
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_spec import Spec, SpecUnavailable

CREATE = "/channels/{channel_id}/messages"


@pytest.fixture(scope="module")
def spec() -> Spec:
    """The spec, or a skip that says why (visible with -rs); under CI=true its absence is an error."""
    try:
        return discord_spec.load()
    except SpecUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and Discord's API spec is unavailable: {exc}")
        pytest.skip(f"Discord's API spec is unavailable, requests are NOT validated: {exc}")


class Bot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(), help_command=None)


@pytest.fixture
async def fake(spec: Spec) -> AsyncIterator[FakeDiscord]:  # skipped without the spec
    async with FakeDiscord() as fake:
        assert fake.spec is not None
        yield fake


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Bot]:
    async with fake.running(Bot()) as bot:
        yield bot  # type: ignore[misc]


async def send_raw(bot: Bot, fake: FakeDiscord, body: dict[str, Any]) -> discord.HTTPException:
    """`body` posted to #general by discord.py's HTTP client, which must refuse it."""
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(Route("POST", CREATE, channel_id=fake.channel.id), json=body)
    return caught.value


async def test_a_field_of_the_wrong_type_is_refused_with_discords_400(fake: FakeDiscord, bot: Bot) -> None:
    error = await send_raw(bot, fake, {"content": "hi", "embeds": [{"title": "t", "color": "red"}]})

    assert error.status == 400 and error.code == 50035
    assert "In embeds.0.color: Value must be of type number or null." in error.text
    assert [r.route for r in fake.spec_violations] == ["POST /channels/{channel_id}/messages"]
    assert fake.take_failures() == [
        "POST /channels/{channel_id}/messages breaks Discord's API spec at embeds.0.color: "
        "Value must be of type number or null."
    ]
    assert fake.messages() == []


async def test_an_unknown_component_type_names_the_types_allowed(fake: FakeDiscord, bot: Bot) -> None:
    row = {"type": 1, "components": [{"type": 42, "custom_id": "x", "label": "x", "style": 1}]}
    error = await send_raw(bot, fake, {"content": "hi", "components": [row]})

    assert error.code == 50035
    assert 'In components.0.components.0.type: Value of field "type" must be one of (2, 3, 5, 6, 7, 8).' in error.text
    assert len(fake.take_failures()) == 1 and fake.messages() == []


async def test_the_spec_bounds_content_at_4000_and_the_fakes_own_limit_at_2000(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 2001)  # valid for the spec; Discord's limit for bots, kept by the fake itself
    assert caught.value.code == 50035 and not fake.spec_violations and not fake.failures

    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 4001)
    assert "In content: Must be 4000 or fewer in length." in caught.value.text
    assert fake.take_failures() == [
        "POST /channels/{channel_id}/messages breaks Discord's API spec at content: Must be 4000 or fewer in length."
    ]


async def test_payload_json_of_a_multipart_upload_is_validated_too(fake: FakeDiscord, bot: Bot) -> None:
    payload = {"content": "a file", "allowed_mentions": {"parse": ["nobody"]}, "attachments": [{"id": 0}]}
    form: list[dict[str, Any]] = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": b"data", "filename": "a.txt", "content_type": "application/octet-stream"},
    ]
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(Route("POST", CREATE, channel_id=fake.channel.id), form=form)

    assert "In allowed_mentions.parse.0: Value must be one of ['users', 'roles', 'everyone']." in caught.value.text
    assert fake.spec_violations[0].files[0].filename == "a.txt"
    assert len(fake.take_failures()) == 1 and fake.messages() == []


async def test_what_discord_py_sends_passes(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    user_message = await fake.send_message(content="draw me a cat")
    view = discord.ui.View().add_item(discord.ui.Button(label="Again", custom_id="again"))
    embed = discord.Embed(title="A cat", description="done", color=0x57F287, timestamp=datetime.now(UTC))
    embed.add_field(name="model", value="gemini").set_footer(text="footer")
    reply = await channel.fetch_message(user_message.id)
    sent = await reply.reply(embed=embed, view=view, file=discord.File(io.BytesIO(b"png"), "cat.png"))
    await sent.edit(content="edited", embed=None, attachments=[])
    await sent.add_reaction("👍")
    thread = await sent.create_thread(name="more cats")
    await thread.send("in a thread")
    await sent.delete()

    assert fake.spec_violations == [] and fake.failures == []
    with_bodies = {r.route for r in fake.requests if r.json is not None}
    assert with_bodies == {
        "POST /channels/{channel_id}/messages",  # multipart (the reply with a file) and JSON (in the thread)
        "PATCH /channels/{channel_id}/messages/{message_id}",
        "POST /channels/{channel_id}/messages/{message_id}/threads",
    }
    assert fake.messages(fake.channels[thread.id])[0].content == "in a thread"


async def test_without_node_the_check_is_skipped_loudly_but_never_under_ci(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no spec built here yet
    monkeypatch.setenv("PATH", str(tmp_path))  # and neither node nor npm to build it
    discord_spec.forget()
    try:
        monkeypatch.setenv("CI", "true")
        with pytest.raises(SpecUnavailable, match="CI=true.*node and npm"):
            FakeDiscord()
        monkeypatch.delenv("CI")
        with pytest.warns(UserWarning, match="does NOT validate requests against Discord's API spec"):
            fake = FakeDiscord()
        assert fake.spec is None
    finally:
        discord_spec.forget()  # the next fake reads the machine's spec again
