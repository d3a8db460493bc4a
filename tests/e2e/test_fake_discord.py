"""The fake Discord, driven by the unmodified discord.py client through a tiny bot defined here."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import FakeDiscord, InteractionRefused, fake_discord  # noqa: F401
from tests.fakes.discord_state import INTENT_GUILD_MESSAGES, INTENT_MESSAGE_CONTENT

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Counter(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.count, self.step = 0, 1

    @discord.ui.button(label="+", custom_id="counter:inc")
    async def increment(self, interaction: discord.Interaction, button: discord.ui.Button[Counter]) -> None:
        self.count += self.step
        await interaction.response.edit_message(content=f"count: {self.count}", view=self)

    @discord.ui.select(custom_id="counter:step", options=[discord.SelectOption(label=n) for n in ("1", "5")])
    async def choose_step(self, interaction: discord.Interaction, select: discord.ui.Select[Counter]) -> None:
        self.step = int(select.values[0])
        await interaction.response.defer()


class Caption(discord.ui.Modal, title="Describe"):
    caption: discord.ui.TextInput[Caption] = discord.ui.TextInput(label="Caption", custom_id="caption", max_length=100)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        if self.caption.value == "hold":
            await interaction.client.held.put(interaction)  # type: ignore[attr-defined]
            return
        await interaction.response.send_message(f"caption: {self.caption.value}", ephemeral=True)


@app_commands.command()
@app_commands.describe(prompt="What to draw", image="A picture to start from")
async def draw(interaction: discord.Interaction, prompt: str, image: discord.Attachment | None = None) -> None:
    """Draw a picture (defers, then answers with a file)."""
    await interaction.response.defer(thinking=True)
    source = await image.read() if image else b""
    await interaction.followup.send(f"drew {prompt}", file=discord.File(io.BytesIO(source + prompt.encode()), "a.png"))


@app_commands.command()
async def counter(interaction: discord.Interaction) -> None:
    """A message with a button that counts clicks."""
    await interaction.response.send_message("count: 0", view=Counter())


@app_commands.command()
async def hold(interaction: discord.Interaction) -> None:
    """Hand the interaction to the test, unanswered."""
    await interaction.client.held.put(interaction)  # type: ignore[attr-defined]


@app_commands.command()
@app_commands.default_permissions(manage_guild=True)
async def settings(interaction: discord.Interaction) -> None:
    """Server settings (Manage Server only)."""
    await interaction.response.send_message("settings", ephemeral=True)


@app_commands.command()
async def crash(interaction: discord.Interaction) -> None:
    """Fail."""
    raise RuntimeError("boom")


config = app_commands.Group(name="config", description="Settings")


@config.command(name="set")
async def config_set(interaction: discord.Interaction, key: str, value: app_commands.Range[int, 1, 10]) -> None:
    """Set a value."""
    await interaction.response.send_message(f"{key}={value}", ephemeral=True)


@app_commands.context_menu(name="Wave")
async def wave(interaction: discord.Interaction, member: discord.Member) -> None:
    await interaction.response.send_message(f"waves at {member.display_name}")


@app_commands.context_menu(name="Describe")
async def describe(interaction: discord.Interaction, message: discord.Message) -> None:
    await interaction.response.send_modal(Caption())


class TinyBot(commands.Bot):
    def __init__(self, guild_id: int, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.guild_id = guild_id
        self.held: asyncio.Queue[discord.Interaction] = asyncio.Queue()
        self.seen: list[discord.Message] = []

    async def setup_hook(self) -> None:
        for command in (draw, counter, hold, settings, crash, config, wave, describe):
            self.tree.add_command(command)
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        if message.attachments:
            sizes = [len(await attachment.read()) for attachment in message.attachments]
            await message.reply(f"got {sizes}")
        elif message.content.endswith("ping"):
            await message.reply("pong")


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:  # noqa: F811
    return fake_discord


@pytest.fixture
async def bot(fake: FakeDiscord) -> Any:
    async with fake.running(TinyBot(fake.guild.id)) as bot:
        yield bot


async def raw(fake: FakeDiscord, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
    """A request straight to the fake, for rules discord.py already enforces on its side."""
    headers = {"Authorization": f"Bot {fake.token}"} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{fake.base_url}/api/v10{path}", json=body, headers=headers) as response,
    ):
        assert response.headers["Content-Type"] == "application/json"
        return response.status, await response.json()


async def test_login_identify_and_sync(fake: FakeDiscord, bot: TinyBot) -> None:
    assert [r.route for r in fake.requests[:3]] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{application_id}/guilds/{guild_id}/commands",
    ]
    assert fake.intents & INTENT_MESSAGE_CONTENT and fake.intents & INTENT_GUILD_MESSAGES
    assert bot.user is not None and bot.user.id == fake.bot_user.id
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.get_channel(fake.channel.id) is not None
    synced = {(c["name"], c["type"]) for c in fake.commands[fake.guild.id]}
    assert synced == {
        ("draw", 1),
        ("counter", 1),
        ("hold", 1),
        ("settings", 1),
        ("crash", 1),
        ("config", 1),
        ("Wave", 2),
        ("Describe", 3),
    }
    assert await raw(fake, "GET", "/users/@me", auth=False) == (
        401,
        {"message": "401: Unauthorized", "code": 0},
    )


async def test_slash_command_defers_then_sends_a_file(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("draw", {"prompt": "a cat"}, attachments={"image": ("in.png", PNG)})
    reply = await ix.wait_for_followup()
    assert ix.deferred and not ix.ephemeral
    assert ix.original is reply and reply.content == "drew a cat"  # the first followup replaces "thinking"
    assert reply.files == [("a.png", PNG + b"a cat")]
    assert reply.attachments[0].content_type == "image/png"
    async with aiohttp.ClientSession() as session, session.get(reply.attachments[0].url) as response:
        assert await response.read() == PNG + b"a cat"
    assert fake.messages() == [reply]


async def test_buttons_and_selects_update_the_message(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("counter")
    message = await ix.wait_for_original()
    assert message.custom_ids == ["counter:inc", "counter:step"]
    choose = await fake.click(message, "counter:step", values=["5"])
    assert (await choose.wait_for_callback()).type == 6  # deferred update: nothing visible changes
    click = await fake.click(message, "counter:inc", user=fake.admin)
    await click.wait_for_callback()
    assert message.content == "count: 5" and click.original is message
    with pytest.raises(InteractionRefused):
        await fake.click(message, "counter:nope")
    with pytest.raises(InteractionRefused):
        await fake.click(message, "counter:step", values=["7"])


async def test_subcommands_and_user_menus(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("config set", {"key": "size", "value": 3})
    assert (await ix.wait_for_original()).content == "size=3" and ix.ephemeral
    with pytest.raises(InteractionRefused, match="within"):
        await fake.slash("config set", {"key": "size", "value": 11})
    waved = await fake.context_menu("Wave", fake.admin)
    assert (await waved.wait_for_original()).content == "waves at admin"


async def test_context_menu_opens_a_modal_and_the_submit_answers(fake: FakeDiscord, bot: TinyBot) -> None:
    target = await fake.send_message(content="a picture", author=fake.admin)
    ix = await fake.context_menu("Describe", target)
    modal = await ix.wait_for_modal()
    assert modal["title"] == "Describe"
    submit = await fake.submit_modal(ix, {"caption": "a red fox"})
    answer = await submit.wait_for_original()
    assert answer.content == "caption: a red fox" and answer.ephemeral
    assert answer not in fake.messages()  # ephemeral: only its user sees it
    with pytest.raises(InteractionRefused):
        await fake.submit_modal(ix, {"caption": "again"})


async def test_on_message_replies_and_downloads_attachments(fake: FakeDiscord, bot: TinyBot) -> None:
    sent = await fake.send_message(content="look", attachments=[("in.png", PNG, "image/png")])
    reply = await fake.wait_for_reply(sent)
    assert reply.content == f"got [{len(PNG)}]"
    assert bot.seen[-1].attachments[0].content_type == "image/png"


async def test_threads_made_by_the_bot_reach_its_cache(fake: FakeDiscord, bot: TinyBot) -> None:
    starter = await fake.send_message(content="start here")
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    thread = await channel.get_partial_message(starter.id).create_thread(name="variations")
    await thread.send("inside")
    assert thread.id == starter.id and isinstance(bot.get_channel(thread.id), discord.Thread)
    asked = await fake.send_message(fake.channels[thread.id], "ping")
    await fake.wait_for_reply(asked)
    assert [m.content for m in fake.messages(fake.channels[thread.id])] == ["inside", "ping", "pong"]
    with pytest.raises(discord.HTTPException) as caught:
        await channel.get_partial_message(starter.id).create_thread(name="again")
    assert caught.value.code == 160004


async def test_message_limits_are_enforced(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.spec = None  # bodies that break Discord's API spec on purpose: the fake's own limits are under test
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"content": "x" * 2001}, 50035),
        ({"embeds": [discord.Embed(description="x" * 4000), discord.Embed(description="y" * 2001)]}, 50035),
        ({"embed": discord.Embed(title="x" * 257)}, 50035),
        ({"view": discord.ui.View().add_item(discord.ui.Button(label="x", custom_id="c" * 101))}, 50035),
        ({"view": discord.ui.View().add_item(discord.ui.Button(label="x" * 81, custom_id="c"))}, 50035),
        ({"files": [discord.File(io.BytesIO(b"x"), f"{i}.txt") for i in range(11)]}, 50035),
        ({}, 50006),
    ]
    for kwargs, code in cases:
        with pytest.raises(discord.HTTPException) as caught:
            await channel.send(**kwargs)
        assert caught.value.code == code, kwargs
    assert (await channel.send("x" * 2000)).content == "x" * 2000
    assert [m.content for m in fake.messages()] == ["x" * 2000]


async def test_a_file_over_the_limit_is_refused_with_413(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.guild.attachment_size_limit = 1024
    await fake.slash("hold")
    interaction = await bot.held.get()
    assert interaction.filesize_limit == 1024
    await interaction.response.defer()
    with pytest.raises(discord.HTTPException) as caught:
        await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * 1025), "big.png"))
    assert (caught.value.status, caught.value.code) == (413, 40005)
    await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * 1024), "ok.png"))


async def test_the_first_callback_must_come_within_3_seconds(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("hold")
    interaction = await bot.held.get()
    fake.advance(3.1)
    with pytest.raises(discord.NotFound) as caught:
        await interaction.response.defer()
    assert caught.value.code == 10062
    assert (await ix.wait_for_rejection()).error_code == 10062 and not ix.callbacks


async def test_only_one_initial_callback(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("hold")
    interaction = await bot.held.get()
    await interaction.response.send_message("first")
    status, body = await raw(fake, "POST", f"/interactions/{ix.id}/{ix.token}/callback", {"type": 4, "data": {}})
    assert (status, body["code"]) == (400, 40060)
    assert [m.content for m in ix.messages] == ["first"]


async def test_followups_need_a_callback_and_a_live_token(fake: FakeDiscord, bot: TinyBot) -> None:
    ix = await fake.slash("hold")
    interaction = await bot.held.get()
    with pytest.raises(discord.NotFound) as caught:
        await interaction.followup.send("too early")
    assert caught.value.code == 10015
    await interaction.response.defer(ephemeral=True)
    await interaction.followup.send("in time", ephemeral=False)  # the defer decided: ephemeral
    assert ix.original is ix.followups[0] and ix.ephemeral and fake.messages() == []
    await interaction.edit_original_response(content="edited", attachments=[discord.File(io.BytesIO(PNG), "b.png")])
    assert ix.edits[-1]["content"] == "edited" and ix.original.files == [("b.png", PNG)]
    fake.advance(15 * 60 + 1)
    with pytest.raises(discord.NotFound) as caught:
        await interaction.edit_original_response(content="too late")
    assert caught.value.code == 10015


async def test_modal_limits(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.spec = None  # bodies that break Discord's API spec on purpose: the fake's own limits are under test
    await fake.slash("hold")
    interaction = await bot.held.get()
    modal = discord.ui.Modal(title="t" * 46)
    modal.add_item(discord.ui.TextInput(label="ok"))
    with pytest.raises(discord.HTTPException) as caught:
        await interaction.response.send_modal(modal)
    assert caught.value.code == 50035 and "title" in caught.value.text
    menu = await fake.context_menu("Describe", await fake.send_message(content="x"))
    await menu.wait_for_modal()
    await fake.submit_modal(menu, {"caption": "hold"})
    submitted = await bot.held.get()
    with pytest.raises(discord.HTTPException) as caught:
        await submitted.response.send_modal(Caption())  # a modal never answers a modal
    assert caught.value.code == 50035


async def test_commands_are_validated_at_sync(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.spec = None  # bodies that break Discord's API spec on purpose: the fake's own limits are under test
    path = f"/applications/{fake.application_id}/commands"
    option = {"type": 3, "name": "opt", "description": "d"}
    bad = [
        {"name": "Draw", "description": "upper case"},
        {"name": "x" * 33, "description": "too long"},
        {"name": "draw", "description": ""},
        {
            "name": "draw",
            "description": "d",
            "options": [option, {**option, "name": "req", "required": True}],
        },
        {"name": "draw", "description": "d", "options": [{**option, "name": f"o{i}"} for i in range(26)]},
        {
            "name": "draw",
            "description": "d",
            "options": [{**option, "choices": [{"name": "c", "value": "v"}] * 26}],
        },
        {"name": "Edit image", "type": 3, "description": "menus have none"},
    ]
    for command in bad:
        status, body = await raw(fake, "PUT", path, [command])
        assert (status, body["code"]) == (400, 50035), command
    status, body = await raw(fake, "PUT", path, [{"name": "Edit image", "type": 3}])
    assert status == 200 and body[0]["description"] == "" and body[0]["application_id"] == str(fake.application_id)


async def test_commands_never_synced_or_not_permitted_are_refused(fake: FakeDiscord, bot: TinyBot) -> None:
    with pytest.raises(InteractionRefused, match="never synced"):
        await fake.slash("imagine", {"prompt": "a cat"})
    with pytest.raises(InteractionRefused, match="no option"):
        await fake.slash("draw", {"prompt": "a cat", "style": "oil"})
    with pytest.raises(InteractionRefused, match="required"):
        await fake.slash("draw")
    with pytest.raises(InteractionRefused, match="lacks the permissions"):
        await fake.slash("settings", user=fake.member)
    ix = await fake.slash("settings", user=fake.admin)
    assert (await ix.wait_for_original()).content == "settings"
    assert int(ix.payload["member"]["permissions"]) & (1 << 5)


async def test_without_message_content_intent_content_is_empty(fake: FakeDiscord) -> None:
    async with fake.running(TinyBot(fake.guild.id, message_content=False)) as bot:
        plain = await fake.send_message(content="plain ping", author=fake.admin)
        mentioned = await fake.send_message(content="ping", mentions_bot=True)
        pong = await fake.wait_for_reply(mentioned)
        await fake.send_message(content="to the bot", reply_to=pong)
        await fake.send_message(content="quiet", reply_to=pong, mention_author=False)
        await fake.send_message(content="about it", reply_to=plain, attachments=[("a.png", PNG)])
        await fake.wait_for(lambda: len(bot.seen) == 5)
    assert not fake.intents & INTENT_MESSAGE_CONTENT
    assert [m.content for m in bot.seen] == ["", mentioned.content, "to the bot", "", ""]
    assert bot.seen[4].attachments == [] and bot.seen[4].reference is not None
    assert bot.seen[4].reference.resolved.content == ""  # type: ignore[union-attr]
    assert fake.messages(author=fake.bot_user) == [pong]


async def test_direct_messages(fake: FakeDiscord) -> None:
    async with fake.running(TinyBot(fake.guild.id, message_content=False)):
        dm = fake.dm(fake.member)
        sent = await fake.send_message(dm, "ping")  # DMs keep their content without the intent
        assert (await fake.wait_for_reply(sent)).content == "pong"
        with pytest.raises(InteractionRefused, match="never synced"):
            await fake.slash("draw", {"prompt": "x"}, channel=dm)  # synced to the guild only


async def test_privileged_intents_must_be_enabled_in_the_portal() -> None:
    async with FakeDiscord(portal_intents=0) as fake:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with fake.running(TinyBot(fake.guild.id)):
                pass


async def test_errors_are_failures_until_claimed(fake: FakeDiscord, bot: TinyBot) -> None:
    await fake.slash("crash")
    await fake.wait_for(lambda: fake.failures, what="the logged error")
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/nowhere"))
    failures = fake.take_failures()
    assert "boom" in failures[0] and "unknown route: GET /api/v10/nowhere" in failures[1]


async def test_injected_errors_reach_the_bot(fake: FakeDiscord, bot: TinyBot) -> None:
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    route = "POST /channels/{channel_id}/messages"
    fake.inject_error(route, 403, 50013, "Missing Permissions")
    with pytest.raises(discord.Forbidden):
        await channel.send("refused")
    fake.inject_error(route, 429)
    await channel.send("after a retry")  # discord.py waited retry_after and sent again
    assert [r.status for r in fake.requests if r.route == route] == [403, 429, 200]
    assert [m.content for m in fake.messages()] == ["after a retry"]


async def test_unclaimed_failures_fail_at_teardown() -> None:
    with pytest.raises(AssertionError, match="unknown route"):
        async with FakeDiscord() as fake:
            await raw(fake, "GET", "/nowhere")
