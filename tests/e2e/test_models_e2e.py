"""Models, sizes and credits end to end (issue 11): the real bot between the fake Discord and the strict fake
Gemini, which knows each model's sizes, ratios and signatures and answers as Gemini 3 does."""

from __future__ import annotations

import base64
import logging

import pytest

from tests.e2e.edit_helpers import ephemeral_text, footer, generations, imagine, result_reply
from tests.fakes.gemini import GeminiReply
from tests.fakes.gemini_images import image_size

PRO, LITE, DEFAULT = "gemini-3-pro-image", "gemini-3.1-flash-lite-image", "gemini-nano-banana-2.1"
MIB = 1024 * 1024


def answer_of(call) -> dict:
    """The model's answer (candidates[0].content) exactly as the fake sent it."""
    return call.response["candidates"][0]["content"]


def signatures(content: dict) -> list[str]:
    return [part["thoughtSignature"] for part in content["parts"] if "thoughtSignature" in part]


async def entries(bot) -> list[tuple[int, str]]:
    assert await bot.services.pipeline.drain(within=5)
    await bot.services.quota.drain()
    rows = await bot.services.db.fetchall("SELECT credits, state FROM quota_entries ORDER BY id")
    return [(row[0], row[1]) for row in rows]


async def test_the_default_model_and_size_are_on_the_wire_and_the_real_cost_is_kept(run_bot, fake_discord, gemini):
    async with run_bot() as bot:
        shown = await imagine(fake_discord, bot, "a red fox")
        (call,) = gemini.served
        assert call.path == f"/v1beta/models/{DEFAULT}:generateContent"
        assert call.config["imageConfig"] == {"imageSize": "1K"}
        assert shown.content.startswith("1 credit · 9 of 10 left today")
        assert footer(shown).startswith(f"Nano Banana 2.1 · 1K · {DEFAULT}")

        (row,) = await generations(bot)
        assert (row["model"], row["size"], row["credits"], row["model_version"]) == (DEFAULT, "1K", 1, DEFAULT)
        # The real cost is Google's token counts at the price table: the picture at $0.0336 per 1120 image tokens
        # (reference: "Model lineup"), words and thinking at the text rate, the prompt at the input rate.
        usage = call.response["usageMetadata"]
        spec = bot.services.registry.get(DEFAULT)
        image = usage["candidatesTokensDetails"][0]["tokenCount"]
        words = usage["candidatesTokenCount"] - image + usage["thoughtsTokenCount"]
        expected = (
            image * 0.0336 / 1120 + words * spec.text_rate / 1e6 + usage["promptTokenCount"] * spec.input_rate / 1e6
        )
        assert row["cost_micros"] == round(expected * 1e6)
        assert (row["image_tokens"], row["thinking_tokens"]) == (image, usage["thoughtsTokenCount"])
        spend = await bot.services.quota.spend(fake_discord.guild.id)
        assert (spend.images, round(spend.cost_usd, 6)) == (1, round(expected, 6))


async def test_the_choices_name_each_model_with_its_price(run_bot, fake_discord):
    async with run_bot(gemini_models=f"{PRO},{LITE}"):
        command = fake_discord.find_command("imagine")
        assert command is not None
        options = {option["name"]: option for option in command["options"]}
        assert [c["name"] for c in options["model"]["choices"]] == [
            "Nano Banana 2.1 · 1–4 credits",
            "Nano Banana Pro · 4–8 credits",
            "Nano Banana 2 Lite · 1 credit",
        ]
        assert [c["value"] for c in options["size"]["choices"]] == ["1K", "2K", "4K"]
        assert len(options["aspect_ratio"]["choices"]) == 14  # the 2.1 family's ratios


async def test_pro_at_2k_and_16_9_is_asked_as_such_and_charged_its_credits(run_bot, fake_discord, gemini):
    async with run_bot(gemini_models=PRO) as bot:
        shown = await imagine(fake_discord, bot, "a lighthouse", model=PRO, size="2K", aspect_ratio="16:9")
        (call,) = gemini.served
        assert call.model == PRO and call.config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
        assert image_size(shown.attachments[0].data) == (2752, 1536)  # what Pro makes at 2K, 16:9
        assert shown.content.startswith("4 credits · 6 of 10 left today")
        assert footer(shown).startswith(f"Nano Banana Pro · 2K · {PRO}")
        assert await entries(bot) == [(4, "committed")]


async def test_a_reply_edit_of_a_pro_result_sends_its_answer_back_with_the_exact_signatures(
    run_bot, fake_discord, gemini
):
    fake = fake_discord
    async with run_bot(gemini_models=PRO) as bot:
        shown = await imagine(fake, bot, "a lighthouse", model=PRO, size="2K")
        ask = await fake.send_message(content="make it night", reply_to=shown)
        result = await result_reply(fake, bot, ask)

        first, edit = gemini.served
        answer = answer_of(first)
        assert signatures(answer) and all(gemini.signature_issued(s) for s in signatures(answer))
        # user, the model's own turn exactly as received (thoughts, drafts and signatures), the new instruction.
        assert edit.contents == [
            {"role": "user", "parts": [{"text": "a lighthouse"}]},
            answer,
            {"role": "user", "parts": [{"text": "make it night"}]},
        ]
        assert edit.returned_signatures == signatures(answer)
        assert edit.images == []  # the picture is in the model's turn: not sent again as an input
        assert edit.model == PRO and edit.image_size == "2K"  # the edit keeps the original's model and size
        assert "🧠" in footer(result) and "edit 1 of a chain" in footer(result)
        assert result.content.startswith("4 credits · 2 of 10 left today")


@pytest.mark.parametrize(
    ("first", "settings"),
    [
        pytest.param(GeminiReply.image(signed=False), {}, id="unsigned-answer"),
        pytest.param(GeminiReply.image(), {"edit_history_max_bytes": 1000}, id="over-the-byte-budget"),
        pytest.param(GeminiReply.image(), {"gemini_model": "gemini-2.5-flash-image"}, id="model-without-memory"),
    ],
)
async def test_without_a_usable_signed_answer_the_picture_goes_as_a_fresh_image(
    run_bot, fake_discord, gemini, first, settings
):
    fake = fake_discord
    gemini.enqueue(first)
    async with run_bot(**settings) as bot:
        shown = await imagine(fake, bot, "a red fox")
        ask = await fake.send_message(content="make it night", reply_to=shown)
        await result_reply(fake, bot, ask)
        edit = gemini.served[1]
        assert edit.model_turns == [] and edit.status == 200  # never a model turn without its signature
        assert edit.images == [("image/jpeg" if shown.attachments[0].filename.endswith(".jpg") else "image/png",
                                shown.attachments[0].data)]  # fmt: skip


async def test_reroll_and_edit_keep_the_originals_model_size_and_shape(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    async with run_bot(gemini_models=PRO) as bot:
        shown = await imagine(fake, bot, "a lighthouse", model=PRO, size="2K", aspect_ratio="3:2")
        reroll = await fake.click(shown, "gib:reroll:1", user=bob)
        await reroll.wait_for_original(lambda m: m.attachments)
        edit = await fake.click(shown, "gib:edit:1")
        await edit.wait_for_modal()
        submit = await fake.submit_modal(edit, {"instruction": "add a boat"})
        await submit.wait_for_original(lambda m: m.attachments)
        assert await bot.services.pipeline.drain(within=5)
        again, edited = gemini.served[1:]
        assert (again.model, again.image_size, again.aspect_ratio) == (PRO, "2K", "3:2")
        assert (edited.model, edited.image_size) == (PRO, "2K") and edited.model_turns == [answer_of(gemini.served[0])]
        status = await bot.services.quota.status(bob.id, fake.guild.id)
        assert status.used == 4  # the presser paid Pro's price


async def test_jpeg_declared_as_png_is_delivered_as_a_jpg(run_bot, fake_discord, gemini):
    gemini.jpeg_as_png = True
    async with run_bot() as bot:
        shown = await imagine(fake_discord, bot, "a lighthouse")
        (call,) = gemini.served
        declared = [p["inlineData"]["mimeType"] for p in answer_of(call)["parts"] if not p.get("thought")]
        assert declared == ["image/png"]  # Google said PNG ...
        (attachment,) = shown.attachments
        assert attachment.data.startswith(b"\xff\xd8\xff")  # ... the bytes are a JPEG
        assert attachment.filename.endswith(".jpg") and attachment.content_type == "image/jpeg"
        assert shown.embed["image"]["url"] == f"attachment://{attachment.filename}"
        (row,) = await generations(bot)
        assert row["mime_type"] == "image/jpeg"


async def test_a_404_is_answered_once_as_the_operators_problem(run_bot, fake_discord, gemini, caplog):
    gemini.new_project = True  # Google no longer serves 2.5 Flash Image to projects that never used it
    with caplog.at_level(logging.INFO, logger="bot"):
        async with run_bot(gemini_model="gemini-2.5-flash-image", gemini_max_attempts=3) as bot:
            ix = await fake_discord.slash("imagine", {"prompt": "a red fox"})
            told = await ix.wait_for_followup(lambda m: "operator" in m.content)
            assert told.ephemeral and "isn't available" in told.content and "quota was not charged" in told.content
            assert await bot.services.pipeline.drain(within=5)
            status = await bot.services.quota.status(fake_discord.member.id, fake_discord.guild.id)
            assert (status.used, status.reserved) == (0, 0)
            spend = await bot.services.quota.spend(fake_discord.guild.id)
            assert (spend.images, spend.cost_usd) == (0, 0)  # a 404 is not billed
    (request,) = gemini.requests  # no retry
    assert request.status == 404 and request.model == "gemini-2.5-flash-image"
    (line,) = [r.getMessage() for r in caplog.records if "OPERATOR ACTION NEEDED" in r.getMessage()]
    assert "gemini-2.5-flash-image" in line and "gemini-nano-banana-2.1" in line


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param(
            {"model": LITE, "size": "4K"}, "Nano Banana 2 Lite can't make 4K pictures; it makes 1K.", id="lite-4k"
        ),
        pytest.param({"model": PRO, "aspect_ratio": "4:1"}, "Nano Banana Pro can't make 4:1 pictures", id="pro-4:1"),
    ],
)
async def test_a_combination_the_model_lacks_is_refused_locally(run_bot, fake_discord, gemini, options, words):
    async with run_bot(gemini_models=f"{PRO},{LITE}") as bot:
        ix = await fake_discord.slash("imagine", {"prompt": "a red fox", **options})
        text = await ephemeral_text(ix)
        assert words in text and "nothing was charged" in text
        assert await generations(bot) == [] and await entries(bot) == []
    assert gemini.requests == []


async def test_credits_are_charged_per_the_table_and_refunded_exactly_on_failure(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot(gemini_models=PRO, daily_quota=10) as bot:
        shown = await imagine(fake, bot, "a castle", model=PRO, size="4K")
        assert shown.content.startswith("8 credits · 2 of 10 left today")

        refused = await fake.slash("imagine", {"prompt": "another", "model": PRO, "size": "4K"})
        assert "costs 8 credits and you have 2 of your 10 left" in await ephemeral_text(refused)
        assert len(gemini.requests) == 1

        gemini.enqueue(*[GeminiReply.overloaded()] * 3)
        failed = await fake.slash("imagine", {"prompt": "a cat", "size": "2K"})  # Nano Banana 2.1 at 2K: 2 credits
        told = await failed.wait_for_followup(lambda m: "overloaded" in m.content)
        assert "quota was not charged" in told.content
        assert await entries(bot) == [(8, "committed"), (2, "refunded")]
        status = await bot.services.quota.status(fake.member.id, fake.guild.id)
        assert (status.used, status.reserved, status.refunded, status.left) == (8, 0, 2, 2)


async def test_a_4k_rerender_button_survives_a_restart_and_edits_with_the_models_memory(run_bot, fake_discord, gemini):
    fake = fake_discord
    async with run_bot() as bot:
        shown = await imagine(fake, bot, "a red fox", aspect_ratio="16:9")
        assert shown.custom_ids[-2:] == ["gib:render:2K:1", "gib:render:4K:1"]

    async with run_bot() as bot:  # a new process: nothing in memory, the same database
        press = await fake.click(shown, "gib:render:4K:1")
        result = await press.wait_for_original(lambda m: m.attachments)
        first, render = gemini.served
        assert (render.model, render.image_size, render.aspect_ratio) == (DEFAULT, "4K", "16:9")
        assert render.model_turns == [answer_of(first)] and render.images == []
        assert image_size(result.attachments[0].data) == (5504, 3072)
        assert result.content.startswith("4 credits · 5 of 10 left today")  # 2.1 at 4K
        assert "a red fox" in result.embed["description"] and "Re-rendered at 4K" in result.embed["description"]
        assert result.custom_ids == ["gib:reroll:2", "gib:edit:2", "gib:delete:2"]  # nothing larger than 4K
        rows = await generations(bot)
        assert [(r["kind"], r["parent_id"], r["size"], r["credits"]) for r in rows] == [
            ("imagine", None, "1K", 1),
            ("render", 1, "4K", 4),
        ]


async def test_a_4k_picture_over_the_upload_limit_is_reencoded_and_says_so(run_bot, fake_discord, gemini):
    gemini.png_weight = 12 * MIB  # a detailed 4K PNG: more than a server without boosts takes (10 MiB)
    async with run_bot() as bot:
        shown = await imagine(fake_discord, bot, "a detailed city", size="4K")
        (attachment,) = shown.attachments
        assert len(attachment.data) <= 10 * MIB and attachment.filename.endswith(".jpg")
        (original,) = [p for p in answer_of(gemini.served[0])["parts"] if not p.get("thought") and "inlineData" in p]
        weight = len(base64.b64decode(original["inlineData"]["data"])) / MIB
        assert weight > 12
        assert shown.content.endswith(
            f"📉 The original (4K PNG, {weight:.1f} MB) is over this channel's 10.0 MB upload limit, so this is a "
            f"{len(attachment.data) / MIB:.1f} MB JPEG of it."
        )


async def test_servers_choose_defaults_and_role_tiers_unlock_pro_and_4k(run_bot, fake_discord, gemini):
    fake = fake_discord
    vip = fake.add_role("VIP")
    bob = fake.add_member("bob", roles=[vip])

    async def admin(command: str, **options) -> str:
        ix = await fake.slash(f"models-admin {command}", options, user=fake.admin)
        callback = await ix.wait_for_callback()
        return callback.data["content"]

    async with run_bot(gemini_models=PRO) as bot:
        assert "Everyone here may use Nano Banana 2.1 up to 2K" in await admin(
            "access", max_size="2K", models="Nano Banana 2.1"
        )
        assert "may also use Nano Banana Pro up to 4K" in await admin("access", max_size="4K", models=PRO, role=vip)

        refused = await fake.slash("imagine", {"prompt": "a castle", "model": PRO})
        text = await ephemeral_text(refused)
        assert "This server doesn't let you use Nano Banana Pro" in text and "Nano Banana 2.1 (1K, 2K)" in text
        refused = await fake.slash("imagine", {"prompt": "a castle", "size": "4K"})
        assert "doesn't let you use Nano Banana 2.1 at 4K" in await ephemeral_text(refused)
        assert gemini.requests == []

        ix = await fake.slash("imagine", {"prompt": "a castle", "model": PRO, "size": "4K"}, user=bob)
        shown = await ix.wait_for_original(lambda m: m.attachments)
        assert shown.content.startswith("8 credits") and gemini.served[-1].model == PRO

        assert "isn't something everyone here may use" not in await admin("default", size="2K")
        assert "is not something everyone here may use" in await admin("default", model=PRO)
        await imagine(fake, bot, "a cat")
        assert gemini.served[-1].model == DEFAULT and gemini.served[-1].image_size == "2K"

        ix = await fake.slash("models", user=fake.member)
        (embed,) = (await ix.wait_for_callback()).data["embeds"]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert "Not available to you here." in fields[f"Nano Banana Pro ({PRO})"]
        assert (
            "1K: 1 credit ($0.034) · 2K: 2 credits ($0.050) · ~~4K: 4 credits ($0.113)~~"
            in fields[f"Nano Banana 2.1 ({DEFAULT})"]
        )
        log = await bot.services.quota.audit_log(fake.guild.id)
        assert [entry.action for entry in log][:3] == ["set_model_default", "set_model_access", "set_model_access"]
