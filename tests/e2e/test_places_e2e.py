"""Where the bot may be used, end to end: `/settings` changes the server's rules with selects and buttons, and
every door follows them before anything is spent (nothing reaches the image model from a closed place)."""

from __future__ import annotations

from bot.errors import NotHere
from cogs.ui.wording import not_here_text
from tests.e2e.edit_helpers import ephemeral_text, imagine, quota_used
from tests.fakes.discord import FakeDiscord, Message
from tests.fakes.discord_state import GUILD_CATEGORY
from tests.fakes.gemini_images import png_bytes

DENIED = "🔒 This server doesn't allow the image bot in this channel."
NO_THREADS = not_here_text(NotHere("thread"))
NO_DMS = "🔒 The bot doesn't take requests in direct messages."


async def open_settings(fake: FakeDiscord) -> Message:
    ix = await fake.slash("settings", user=fake.admin)
    shown = await ix.wait_for_original()
    assert shown.ephemeral and shown.embed["title"] == "Where the bot may be used here"
    return shown


def field(message: Message, name: str) -> str:
    return next(f["value"] for f in message.embed["fields"] if f["name"] == name)


async def choose(fake: FakeDiscord, message: Message, custom_id: str, *values: int) -> None:
    """Pick `values` in a select of the settings message (or press a button when there are none and it is one);
    the message then shows the rules as stored."""
    before = message.edited_at
    kind = message.component(custom_id)["type"]
    ix = await fake.click(message, custom_id, values=None if kind == 2 else [str(v) for v in values])
    await ix.wait_for_callback()
    await fake.wait_for(lambda: message.edited_at != before, what="the settings message to show the change")


async def test_a_denied_channel_is_ignored_or_answered_and_reaches_no_upstream(run_bot, fake_discord, gemini):
    fake = fake_discord
    quiet = fake.add_channel("quiet")
    async with run_bot() as bot:
        picture = await imagine(fake, bot, "a red fox")  # in #general, before any rule
        quiet_picture = await imagine_in(fake, bot, quiet, "a blue fox")
        assert len(gemini.requests) == 2

        panel = await open_settings(fake)
        assert field(panel, "Never in") == "nowhere excluded"
        await choose(fake, panel, "settings:denied", quiet.id)
        assert field(panel, "Never in") == f"<#{quiet.id}>"
        assert (await bot.services.server_settings.rules(fake.guild.id)).denied == (quiet.id,)

        # A reply to a picture in the denied channel: silence, nothing spent, nothing sent upstream.
        ask = await fake.send_message(quiet, "make it night", reply_to=quiet_picture)
        elsewhere = await fake.send_message(content="make it night", reply_to=picture)  # #general still works
        await fake.wait_for_message(fake.channel, lambda m: m.reference_id == elsewhere.id and m.attachments)
        assert not [m for m in fake.messages(quiet, author=fake.bot_user) if m.id > ask.id]
        assert len(gemini.requests) == 3

        # Asked to answer with the rule: the reply says why, still without reaching the model.
        await choose(fake, panel, "settings:explain")
        assert field(panel, "Messages in closed places") == "answered with the rule"
        again = await fake.send_message(quiet, "make it night", reply_to=quiet_picture)
        answer = await fake.wait_for_reply(again)
        assert answer.content == DENIED
        # A slash command there is refused too, privately, and a button under the old picture as well.
        refused = await fake.slash("imagine", {"prompt": "a cat"}, channel=quiet)
        assert await ephemeral_text(refused) == DENIED
        reroll = await fake.click(quiet_picture, "gib:reroll:2")
        assert await ephemeral_text(reroll) == DENIED
        assert len(gemini.requests) == 3
        assert await quota_used(bot, fake) == (3, 0)


async def imagine_in(fake: FakeDiscord, bot, channel, prompt: str) -> Message:
    ix = await fake.slash("imagine", {"prompt": prompt}, channel=channel)
    shown = await ix.wait_for_original(lambda m: m.attachments)
    assert await bot.services.pipeline.drain(within=5)
    return shown


async def test_only_the_chosen_category_and_threads_rules(run_bot, fake_discord, gemini):
    fake = fake_discord
    art = fake.add_channel("Art", kind=GUILD_CATEGORY)
    studio = fake.add_channel("studio", category=art)
    async with run_bot(message_content_intent=True) as bot:
        panel = await open_settings(fake)
        await choose(fake, panel, "settings:allowed", art.id)
        assert field(panel, "Channels") == f"<#{art.id}>"

        refused = await fake.slash("imagine", {"prompt": "a cat"})  # #general is outside the category
        text = await ephemeral_text(refused)
        assert (
            text == not_here_text(NotHere("channel", allowed=(art.id,))) == f"{DENIED} It can be used in <#{art.id}>."
        )
        shown = await imagine_in(fake, bot, studio, "a cat")
        assert len(gemini.requests) == 1

        # A thread follows its channel: open in the category's channel, until threads are switched off.
        thread = await fake.create_thread(studio, "cats", message=shown)
        first = await fake.send_message(thread, "make it orange")
        await fake.wait_for_message(thread, lambda m: m.reference_id == first.id and m.attachments)
        await choose(fake, panel, "settings:threads")
        assert field(panel, "Threads") == "not allowed"
        await choose(fake, panel, "settings:explain")
        second = await fake.send_message(thread, "make it grey")
        assert (await fake.wait_for_reply(second)).content == NO_THREADS
        assert len(gemini.requests) == 2

        await choose(fake, panel, "settings:reset")
        assert field(panel, "Channels") == "every channel" and field(panel, "Threads") == "allowed"
        await imagine(fake, bot, "a dog")  # open again: #general works
        assert len(gemini.requests) == 3


async def test_only_members_with_a_chosen_role_may_generate(run_bot, fake_discord, gemini):
    fake = fake_discord
    artists = fake.add_role("artists")
    painter = fake.add_member("painter", roles=[artists])
    async with run_bot() as bot:
        picture = await imagine(fake, bot, "a red fox")
        panel = await open_settings(fake)
        await choose(fake, panel, "settings:roles", artists.id)
        assert field(panel, "Who may make images") == f"<@&{artists.id}>"

        refused = await fake.slash("imagine", {"prompt": "a cat"})
        text = await ephemeral_text(refused)
        assert (
            refused.ephemeral
            and text == f"🔒 On this server, only members with the role <@&{artists.id}> can make images."
        )
        reroll = await fake.click(picture, "gib:reroll:1")
        assert await ephemeral_text(reroll) == text
        edit = await fake.click(picture, "gib:edit:1")  # refused before the modal opens
        assert await ephemeral_text(edit) == text and edit.modal is None
        # A reply is ignored by default (the server did not ask for answers).
        ask = await fake.send_message(content="make it night", reply_to=picture)
        assert len(gemini.requests) == 1

        ix = await fake.slash("imagine", {"prompt": "a cat"}, user=painter)
        await ix.wait_for_original(lambda m: m.attachments)
        assert len(gemini.requests) == 2
        assert not [m for m in fake.messages(fake.channel, author=fake.bot_user) if m.reference_id == ask.id]


async def test_direct_messages_follow_allow_dms_and_the_bots_caps(run_bot, fake_discord, gemini):
    fake = fake_discord
    dm = fake.dm(fake.member)
    upload = [("cat.png", png_bytes(32, 32))]
    async with run_bot(allow_dms=False):
        ask = await fake.send_message(dm, "make it blue", mentions_bot=True, attachments=upload)
        assert (await fake.wait_for_reply(ask)).content.startswith(NO_DMS)
        assert gemini.requests == []

    # Open DMs go through the same pipeline as everything else: the bot's daily cap counts them and holds there.
    async with run_bot(global_daily_image_cap=1) as bot:
        await imagine(fake, bot, "a red fox")
        ask = await fake.send_message(dm, "make it blue", mentions_bot=True, attachments=upload)
        answer = await fake.wait_for_reply(ask)
        assert answer.content.startswith("The bot's daily image budget is used up"), answer.content
        assert len(gemini.requests) == 1
