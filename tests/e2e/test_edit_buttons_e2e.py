"""Reroll, Edit and Delete under every result, also after the bot process restarted on the same database."""

from __future__ import annotations

from tests.e2e.edit_helpers import FRESH, ephemeral_text, footer, generations, imagine, quota_used, result_reply
from tests.fakes.discord_state import MANAGE_MESSAGES
from tests.fakes.gemini import GeminiReply
from tests.fakes.gemini_images import jpeg_bytes, png_bytes

RED, BLUE = (200, 30, 30), (30, 30, 200)


async def test_buttons_work_after_a_restart(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    fox, night = png_bytes(40, 40, color=RED), png_bytes(40, 40, color=BLUE)
    gemini.enqueue(GeminiReply.image(fox), GeminiReply.image(night))
    async with run_bot(**FRESH, daily_quota=5) as bot:
        shown = await imagine(fake, bot, "a red fox", aspect_ratio="3:2")
        ask = await fake.send_message(content="make it night", reply_to=shown)
        edited = await result_reply(fake, bot, ask)

    async with run_bot(**FRESH, daily_quota=5) as bot:  # a new process: nothing in memory, the same database
        # Reroll of the edit, pressed by someone else: their own request, from the same picture and context.
        reroll = await fake.click(edited, "gib:reroll:2", user=bob)
        again = await reroll.wait_for_original(lambda m: m.attachments)
        call = gemini.served[2]
        assert call.images == [("image/png", fox)]  # fetched again from the original message on Discord
        assert call.prompt.endswith("Now: make it night") and "- a red fox" in call.prompt
        assert "edit 1 of a chain" in footer(again) and not again.ephemeral

        # Reroll of the /imagine result keeps its options.
        reroll = await fake.click(shown, "gib:reroll:1")
        await reroll.wait_for_original(lambda m: m.attachments)
        assert gemini.served[3].prompt == "a red fox" and gemini.served[3].aspect_ratio == "3:2"

        # Edit opens a modal; the instruction edits exactly this picture.
        edit = await fake.click(edited, "gib:edit:2")
        await edit.wait_for_modal()
        submit = await fake.submit_modal(edit, {"instruction": "add a moon"})
        moon = await submit.wait_for_original(lambda m: m.attachments)
        assert gemini.served[4].images == [("image/png", edited.attachments[0].data)]
        assert "edit 2 of a chain" in footer(moon)

        rows = await generations(bot)
        assert [(r["kind"], r["parent_id"], r["user_id"]) for r in rows[2:]] == [
            ("reroll", 1, bob.id),
            ("reroll", None, fake.member.id),
            ("edit", 2, fake.member.id),
        ]
        assert await quota_used(bot, fake, bob) == (1, 0)  # the presser paid for their reroll
        assert await quota_used(bot, fake) == (4, 0)


async def test_delete_is_for_the_requester_and_moderators_only(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    mod = fake.add_member("mod", roles=[fake.add_role("mods", permissions=MANAGE_MESSAGES)])
    async with run_bot(**FRESH) as bot:
        first = await imagine(fake, bot, "a red fox")
        second = await imagine(fake, bot, "a blue fox")

    async with run_bot(**FRESH) as bot:
        refused = await fake.click(first, "gib:delete:1", user=bob)
        assert "Only the person who asked for this picture" in await ephemeral_text(refused)
        assert not first.deleted

        mine = await fake.click(first, "gib:delete:1")
        await fake.wait_for(lambda: first.deleted, what="the result to be deleted")
        moderated = await fake.click(second, "gib:delete:2", user=mod)
        await fake.wait_for(lambda: second.deleted, what="the result to be deleted by a moderator")
        assert not mine.ephemeral and not moderated.followups  # nothing said: the picture just goes

        rows = await generations(bot)
        assert all(row["deleted_at"] is not None for row in rows)


async def test_a_deleted_picture_is_never_the_latest_in_its_thread(run_bot, fake_discord, gemini):
    fake = fake_discord
    pictures = [png_bytes(24, 24, color=c) for c in (RED, BLUE, (0, 0, 0))]
    gemini.enqueue(*(GeminiReply.image(p) for p in pictures))
    async with run_bot(**FRESH, message_content_intent=True) as bot:
        shown = await imagine(fake, bot, "a red fox", thread=True)
        thread = await fake.wait_for(lambda: fake.channels.get(shown.id), what="a thread on the result")
        night = await result_reply(fake, bot, await fake.send_message(thread, "make it night"))
        await fake.click(night, "gib:delete:2")
        await fake.wait_for(lambda: night.deleted, what="the edit to be deleted")
        await result_reply(fake, bot, await fake.send_message(thread, "make it blue"))
        assert gemini.served[2].images == [("image/png", pictures[0])]  # back to the starter


async def test_reroll_of_uploads_needs_kept_inputs(run_bot, fake_discord, gemini):
    fake = fake_discord
    upload = {"image": ("cat.jpg", jpeg_bytes(30, 30))}
    async with run_bot(**FRESH) as bot:
        ix = await fake.slash("edit", {"instruction": "add a hat"}, attachments=upload)
        result = await ix.wait_for_original(lambda m: m.attachments)
        await generations(bot)
        refused = await fake.click(result, "gib:reroll:1")
        assert "doesn't keep uploads" in await ephemeral_text(refused)
        assert await quota_used(bot, fake) == (1, 0)

    async with run_bot(**FRESH, keep_input_images=True) as bot:
        ix = await fake.slash("edit", {"instruction": "add a hat"}, attachments=upload)
        result = await ix.wait_for_original(lambda m: m.attachments)
        await generations(bot)
    async with run_bot(**FRESH, keep_input_images=True) as bot:
        reroll = await fake.click(result, "gib:reroll:2")
        await reroll.wait_for_original(lambda m: m.attachments)
        assert gemini.served[-1].images == gemini.served[-2].images == [("image/jpeg", upload["image"][1])]
    assert len(gemini.served) == 3
