"""Every bad input to an edit gets its own message, costs no quota and never reaches Google."""

from __future__ import annotations

import discord
import pytest

from tests.e2e.edit_helpers import ephemeral_text, imagine, quota_used, text_reply
from tests.fakes.gemini_images import png_bytes
from tests.unit.test_images import bomb_png

MB = 1024 * 1024
PNG = png_bytes(32, 32)


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """Names of the attachments the bot downloaded."""
    seen: list[str] = []
    read = discord.Attachment.read

    async def spy(self: discord.Attachment, **kwargs: object) -> bytes:
        seen.append(self.filename)
        return await read(self, **kwargs)

    monkeypatch.setattr(discord.Attachment, "read", spy)
    return seen


SLASH_CASES = [
    # (uploads, settings, words, downloaded?)
    pytest.param(
        {"image": ("notes.txt", b"just words", "text/plain")}, {}, "“notes.txt” is not a PNG, JPEG, WebP", False,
        id="wrong-type",
    ),
    pytest.param(
        {"image": ("big.png", png_bytes(700, 700, noise=True))}, {"max_input_image_bytes": MB},
        "“big.png” is 1.4 MB; the limit is 1.0 MB", False, id="too-big-by-metadata",
    ),
    pytest.param(
        {"image": ("a.png", PNG), "image2": ("b.png", PNG), "image3": ("c.png", PNG)}, {"max_input_images": 2},
        "That's 3 images; I can work from at most 2", False, id="too-many",
    ),
    pytest.param(
        {"image": ("bomb.png", bomb_png(100_000, 100_000))}, {},
        "“bomb.png” has too many pixels; the limit is 50,000,000", True, id="decompression-bomb",
    ),
    pytest.param(
        {"image": ("photo.png", b"<html>not a picture</html>", "image/png")}, {}, "whatever its name says", True,
        id="lying-extension",
    ),
]  # fmt: skip


@pytest.mark.parametrize("uploads,settings,words,downloaded", SLASH_CASES)
async def test_bad_uploads_to_slash_edit(
    run_bot, fake_discord, gemini, downloads, uploads, settings, words, downloaded
):
    fake = fake_discord
    async with run_bot(**settings) as bot:
        ix = await fake.slash("edit", {"instruction": "make it night"}, attachments=uploads)
        assert words in await ephemeral_text(ix)
        assert bool(downloads) == downloaded  # metadata refusals never download the file
        assert await quota_used(bot, fake) == (0, 0)
        assert fake.messages(author=fake.bot_user) == []  # no public trace
        assert await bot.services.db.fetchall("SELECT id FROM generations") == []
    assert gemini.requests == []


async def test_too_many_images_in_a_reply(run_bot, fake_discord, gemini, downloads):
    fake = fake_discord
    async with run_bot(max_input_images=2) as bot:
        shown = await imagine(fake, bot, "a red fox")
        files = [("a.png", PNG), ("b.png", PNG)]
        ask = await fake.send_message(content="put these in", reply_to=shown, attachments=files)
        assert "That's 3 images; I can work from at most 2" in await text_reply(fake, ask)
        assert await quota_used(bot, fake) == (1, 0) and downloads == []
    assert len(gemini.requests) == 1  # the /imagine only


@pytest.mark.parametrize("intent,words", [(True, "has no image"), (False, "can't see that message's images")])
async def test_a_reply_to_a_message_without_a_readable_picture_is_explained(
    run_bot, fake_discord, gemini, intent, words
):
    fake = fake_discord
    async with run_bot(message_content_intent=intent) as bot:
        # Without the intent, another member's message reaches the bot empty: it cannot tell it has no image.
        text = await fake.send_message(content="what a day", author=fake.admin)
        ask = await fake.send_message(content="make it night", reply_to=text, mentions_bot=True)
        assert words in await text_reply(fake, ask)
        assert await quota_used(bot, fake) == (0, 0)
    assert gemini.requests == []


async def test_a_mention_with_nothing_to_edit_explains_how(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot():
        ask = await fake.send_message(content="hello there", mentions_bot=True)
        assert "reply to it with what to change" in await text_reply(fake, ask)
        ask = await fake.send_message(content="", mentions_bot=True, attachments=[("a.png", PNG)])
        assert "Tell me what to change" in await text_reply(fake, ask)
    assert gemini.requests == []


async def test_a_member_who_keeps_sending_unusable_images_is_stopped_before_the_download(
    run_bot, fake_discord, gemini, downloads
):
    # Issue 12.2: every refused image cost a download (and maybe a decode); after INPUT_REFUSAL_LIMIT of them
    # the member's requests with images are refused before anything is read, and say until when.
    fake = fake_discord
    fake_png = {"image": ("photo.png", b"<html>not a picture</html>", "image/png")}
    async with run_bot(input_refusal_limit=2) as bot:
        for _ in range(2):
            ix = await fake.slash("edit", {"instruction": "make it night"}, attachments=fake_png)
            assert "whatever its name says" in await ephemeral_text(ix)
        assert len(downloads) == 2
        ix = await fake.slash("edit", {"instruction": "make it night"}, attachments=fake_png)
        text = await ephemeral_text(ix)
        assert "not reading new images from you until <t:" in text and "without images still work" in text
        assert len(downloads) == 2
        # Someone else's images, and this member's requests without images, go through.
        other = fake.add_member("bob")
        ok = await fake.slash(
            "edit", {"instruction": "make it night"}, attachments={"image": ("a.png", PNG)}, user=other
        )
        await ok.wait_for_original(lambda m: m.attachments)
        await imagine(fake, bot, "a red fox")
        assert await quota_used(bot, fake) == (1, 0)
    assert [call.prompt for call in gemini.requests] == ["make it night", "a red fox"]
