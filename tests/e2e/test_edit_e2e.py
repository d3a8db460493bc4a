"""Editing end to end: replies to pictures, chains of edits, threads, `/edit` and the "Edit image" menu, through
the real bot between the fake Discord and the fake Gemini."""

from __future__ import annotations

from tests.e2e.edit_helpers import FRESH, ephemeral_text, footer, generations, imagine, quota_used, result_reply
from tests.fakes.gemini import GeminiReply
from tests.fakes.gemini_images import image_size, jpeg_bytes, png_bytes

RED, BLUE, GREEN, GREY = (200, 30, 30), (30, 30, 200), (30, 200, 30), (90, 90, 90)


async def test_a_reply_to_a_picture_edits_its_exact_bytes_and_answers_as_a_reply(run_bot, fake_discord, gemini):
    fake = fake_discord
    first, extra, edited = png_bytes(64, 48, color=RED), jpeg_bytes(32, 32), png_bytes(64, 48, color=BLUE)
    gemini.enqueue(GeminiReply.image(first), GeminiReply.image(edited, text="Night has fallen."))
    async with run_bot(**FRESH) as bot:
        shown = await imagine(fake, bot, "a red fox")
        ask = await fake.send_message(content="make it night", reply_to=shown, attachments=[("moon.jpg", extra)])
        result = await result_reply(fake, bot, ask)

        # Google got the picture's exact bytes first, the reply's attachment after, and the instruction.
        call = gemini.served[1]
        assert call.images == [("image/png", first), ("image/jpeg", extra)]
        assert call.prompt.endswith("Now: make it night") and "- a red fox" in call.prompt
        # The answer is a reply to the user's message that shows the new picture, how deep it is, its buttons.
        assert result.attachments[0].data == edited and result.channel is fake.channel
        assert "make it night" in result.embed["description"] and "edit 1 of a chain" in footer(result)
        actions = [f"gib:{action}:2" for action in ("reroll", "edit", "delete")]
        assert result.custom_ids == [*actions, "gib:render:2K:2", "gib:render:4K:2"]  # 1K: 2K and 4K offered
        assert result.edited_at is not None  # it was the "in line" reply, replaced by the result
        assert "left today" in result.content and result.mentions == []

        original, edit = await generations(bot)
        assert (edit["kind"], edit["parent_id"], edit["prompt"]) == ("reply", original["id"], "make it night")
        assert edit["message_id"] == result.id and edit["input_images"] == 2
        assert await quota_used(bot, fake) == (2, 0)


async def test_a_three_step_chain_sends_earlier_instructions_and_notes_a_cut(run_bot, fake_discord, gemini):
    fake = fake_discord
    pictures = [png_bytes(32, 32, color=c) for c in (RED, BLUE, GREEN, GREY)]
    gemini.enqueue(*(GeminiReply.image(p) for p in pictures))
    async with run_bot(**FRESH, conversation_max_depth=2) as bot:
        shown = await imagine(fake, bot, "a red fox")
        for step, instruction in enumerate(["make it night", "add a moon", "paint it as a watercolour"], start=1):
            ask = await fake.send_message(content=instruction, reply_to=shown)
            shown = await result_reply(fake, bot, ask)
            call = gemini.served[step]
            assert call.images == [("image/png", pictures[step - 1])]  # always the picture replied to
            assert f"edit {step} of a chain" in footer(shown)
        # The last request carried the two latest earlier instructions, not the first one, and says so.
        assert "- make it night\n- add a moon\n\nNow: paint it as a watercolour" in call.prompt
        assert "a red fox" not in call.prompt
        assert "only the last 2 instructions were sent" in footer(shown)
        assert "only the last" not in gemini.served[2].prompt and "- a red fox" in gemini.served[2].prompt
        rows = await generations(bot)
        assert [row["parent_id"] for row in rows] == [None, 1, 2, 3]


async def test_in_a_thread_the_owner_just_writes_and_others_must_mention(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    pictures = [png_bytes(32, 32, color=c) for c in (RED, BLUE, GREEN, GREY)]
    gemini.enqueue(*(GeminiReply.image(p) for p in pictures))
    async with run_bot(**FRESH, message_content_intent=True) as bot:
        shown = await imagine(fake, bot, "a red fox", thread=True)
        thread = await fake.wait_for(lambda: fake.channels.get(shown.id), what="a thread on the result")
        welcome = await fake.wait_for_message(thread)
        assert fake.member.mention in welcome.content and "write what to change" in welcome.content

        ask = await fake.send_message(thread, "make it night")  # plain: no reply, no mention
        night = await result_reply(fake, bot, ask)
        assert gemini.served[1].images == [("image/png", pictures[0])]  # the thread's starter
        assert night.channel is thread

        ignored = await fake.send_message(thread, "make it pink", author=bob)
        ask = await fake.send_message(thread, "add a moon")
        moon = await result_reply(fake, bot, ask)
        call = gemini.served[2]
        assert call.images == [("image/png", pictures[1])]  # the latest picture in the thread
        assert "- a red fox\n- make it night\n\nNow: add a moon" in call.prompt
        assert "edit 2 of a chain" in footer(moon)

        ask = await fake.send_message(thread, "make it snow", author=bob, mentions_bot=True)
        await result_reply(fake, bot, ask)
        assert gemini.served[3].images == [("image/png", pictures[2])]
        assert len(gemini.requests) == 4 and "make it pink" not in str([r.prompt for r in gemini.served])
        assert not any(m.reference_id == ignored.id for m in fake.messages(thread))
        rows = await generations(bot)
        assert [(r["kind"], r["parent_id"], r["user_id"]) for r in rows[1:]] == [
            ("thread", 1, fake.member.id),
            ("thread", 2, fake.member.id),
            ("thread", 3, bob.id),
        ]


async def test_without_the_content_intent_thread_messages_need_a_reply_or_mention(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(**FRESH) as bot:
        shown = await imagine(fake, bot, "a red fox", thread=True)
        thread = await fake.wait_for(lambda: fake.channels.get(shown.id), what="a thread on the result")
        welcome = await fake.wait_for_message(thread)
        assert "Reply to a picture in this thread (or mention me)" in welcome.content
        await fake.send_message(thread, "make it night")  # arrives empty: the bot cannot know it was asked
        ask = await fake.send_message(thread, "add a moon", mentions_bot=True)
        await result_reply(fake, bot, ask)
        assert [r.prompt.rsplit("Now: ", 1)[-1] for r in gemini.served] == ["a red fox", "add a moon"]


async def test_the_edit_image_menu_opens_a_modal_and_edits_any_picture(run_bot, fake_discord, gemini):
    fake = fake_discord
    photo, edited = jpeg_bytes(80, 60), png_bytes(80, 60, color=BLUE)
    gemini.enqueue(GeminiReply.image(edited))
    async with run_bot(**FRESH) as bot:  # no content intent: the menu still sees the message's files
        posted = await fake.send_message(content="my cat", author=fake.admin, attachments=[("cat.jpg", photo)])
        menu = await fake.context_menu("Edit image", posted)
        modal = await menu.wait_for_modal()
        assert len(modal["title"]) <= 45
        submit = await fake.submit_modal(menu, {"instruction": "give it a hat"})
        result = await submit.wait_for_original(lambda m: m.attachments)
        assert gemini.served[0].images == [("image/jpeg", photo)] and gemini.served[0].prompt == "give it a hat"
        assert result.attachments[0].data == edited and "edit" not in footer(result).split("·", 1)[-1]
        (row,) = await generations(bot)
        assert (row["kind"], row["parent_id"], row["user_id"]) == ("edit", None, fake.member.id)

        text = await fake.send_message(content="no picture here", author=fake.admin)
        menu = await fake.context_menu("Edit image", text)
        assert "has no image" in await ephemeral_text(menu)
    assert len(gemini.requests) == 1


async def test_the_menu_on_a_result_continues_its_chain(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(**FRESH) as bot:
        shown = await imagine(fake, bot, "a red fox")
        menu = await fake.context_menu("Edit image", shown)
        await menu.wait_for_modal()
        submit = await fake.submit_modal(menu, {"instruction": "make it night"})
        result = await submit.wait_for_original(lambda m: m.attachments)
        assert "edit 1 of a chain" in footer(result) and "- a red fox" in gemini.served[1].prompt


async def test_slash_edit_combines_up_to_three_uploads_in_order(run_bot, fake_discord, gemini):
    fake = fake_discord
    uploads = {
        "image": ("a.png", png_bytes(20, 20, color=RED)),
        "image2": ("b.jpg", jpeg_bytes(20, 20)),
        "image3": ("c.png", png_bytes(20, 20, color=GREEN)),
    }
    async with run_bot(**FRESH) as bot:
        ix = await fake.slash("edit", {"instruction": "put them side by side"}, attachments=uploads)
        result = await ix.wait_for_original(lambda m: m.attachments)
        (call,) = gemini.served
        assert [data for _, data in call.images] == [upload[1] for upload in uploads.values()]
        assert call.prompt == "put them side by side" and not result.ephemeral
        (row,) = await generations(bot)
        assert row["kind"] == "edit" and row["input_images"] == 3


async def test_a_result_over_the_upload_limit_is_reencoded_to_fit(run_bot, fake_discord, gemini):
    fake = fake_discord
    huge = png_bytes(1900, 1900, noise=True)  # ~10.8 MB, over the 10 MiB of a server without boosts
    assert len(huge) > fake.guild.attachment_size_limit
    gemini.enqueue(GeminiReply.image(png_bytes(40, 40)), GeminiReply.image(huge))
    async with run_bot(**FRESH) as bot:
        shown = await imagine(fake, bot, "static")
        ask = await fake.send_message(content="more static", reply_to=shown)
        result = await result_reply(fake, bot, ask)
        (attachment,) = result.attachments
        assert attachment.size <= fake.guild.attachment_size_limit and attachment.filename.endswith(".jpg")
        assert image_size(attachment.data) == (1900, 1900)  # same picture, smaller file
        assert result.embed["image"]["url"] == f"attachment://{attachment.filename}"
