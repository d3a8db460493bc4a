"""Export, forget and retention against a real migrated SQLite database filled by the real core: the member's
words and inputs are gone from every table, today's limits still hold, the spend is intact."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from bot.editing.generations import Generations, InputSource
from bot.errors import QuotaExceeded
from bot.models import ImageRequest, InputImage, RequestKind, as_relax
from bot.ops.privacy import ANONYMOUS, apply_retention, export_member, forget_member
from bot.ops.usage import usage_report
from bot.relax import RelaxJobs
from tests.unit.ops_day import (
    ALICE,
    BOB,
    SERVER,
    TODAY,
    TZ,
    YESTERDAY,
    Clock,
    Core,
    dump,
    local,
    open_core,
    png,
    scripted_day,
)

NOW = local(TODAY, 18)
WINDOW = 600.0  # MODERATION_COOLDOWN_WINDOW_SECONDS
ADMIN = 999
# Everything Alice ever typed in the scripted day and below.
ALICE_WORDS = ("a fox", "private dragon", "make the fox blue", "nude woman", "gory fox", "castle of Alice")
INPUT_BYTES = png()


async def alices_extras(core: Core) -> dict[str, int]:
    """Grants, an edit with a kept input image that Bob then edits further, a refund, two blocks (one inside the
    cool-down window)."""
    core.clock.now = local(YESTERDAY, 16)
    await core.ledger.grant(SERVER, ALICE, 2, actor_id=ADMIN)
    core.clock.now = local(TODAY, 8)
    await core.ledger.grant(SERVER, ALICE, 1, actor_id=ADMIN)
    first_fox = core.delivered[1]  # "a fox, take 0"
    image = InputImage(INPUT_BYTES, "image/png")
    edit = await core.ask(
        ALICE, SERVER, "make the fox blue", at=local(TODAY, 15), kind=RequestKind.EDIT, parent_id=first_fox
    )
    await Generations(core.db, keep_input_images=True).record_inputs(
        edit.generation_id, [InputSource(5000 + ALICE, 777, 888, image)]
    )
    reply = await core.ask(
        BOB, SERVER, "add a hat", at=local(TODAY, 16), kind=RequestKind.REPLY, parent_id=edit.generation_id
    )
    await core.ask(ALICE, SERVER, "a slow castle of Alice", at=local(TODAY, 16, 30))
    await core.ask(ALICE, SERVER, "nude woman on a beach", at=local(TODAY, 9, 30))
    await core.ask(ALICE, SERVER, "a gory fox", at=NOW - 60)
    await core.ledger.drain()
    core.clock.now = NOW
    return {"edit": edit.generation_id, "reply": reply.generation_id}


@pytest.fixture
async def day(db):
    """The scripted day and Alice's extras, on each engine (conftest's `db`)."""
    core = await open_core(db, Clock(NOW))
    await scripted_day(core)
    ids = await alices_extras(core)
    row = await db.fetchone("SELECT message_id FROM generations WHERE id = ?", (ids["edit"],))
    ids["edit_message"] = row[0]
    yield core, ids
    await core.ledger.drain()


def mentions(rows: dict[str, list[dict]], words: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (table, word)
        for table, items in rows.items()
        for row in items
        for value in row.values()
        for word in words
        if isinstance(value, str) and word in value
    ]


async def test_export_holds_everything_about_the_member_and_nothing_else(day):
    core, ids = day
    exported = await export_member(core.db, ALICE)
    json.dumps(exported)  # JSON-able as it is
    prompts = [g["prompt"] for g in exported["generations"]]
    assert "a private dragon" in prompts and "make the fox blue" in prompts and "a slow castle of Alice" in prompts
    assert {g["user_id"] for g in exported["generations"]} == {ALICE}
    everything = await dump(core.db)
    assert len(exported["generations"]) == sum(1 for g in everything["generations"] if g["user_id"] == ALICE)
    assert len(exported["quota_entries"]) == sum(1 for e in everything["quota_entries"] if e["user_id"] == ALICE)
    (kept,) = exported["generation_inputs"]
    assert kept["generation_id"] == ids["edit"] and kept["attachment_id"] == 888
    assert kept["data"] == {"base64": base64.b64encode(INPUT_BYTES).decode()}
    assert [g["day"] for g in exported["quota_grants"]] == [YESTERDAY, TODAY]
    assert {m["text"] for m in exported["moderation_log"]} == {
        "nude woman on a beach",
        "a gory fox",
    }
    assert {a["action"] for a in exported["quota_admin_actions"]} == {"grant"}


async def test_forget_removes_the_words_and_keeps_the_counts(day):
    core, ids = day
    before_status = await core.ledger.status(ALICE, SERVER)
    before_dm = await core.ledger.status(ALICE, None)
    before_spend = (await core.ledger.spend(SERVER), await core.ledger.spend(None))
    before_week = await usage_report(core.db, guild_id=SERVER, days=7, timezone=TZ, now=NOW)
    before = await dump(core.db)
    assert mentions(before, ALICE_WORDS)

    report = await forget_member(core.db, ALICE, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    after = await dump(core.db)

    # Not a word of hers is left anywhere, and none of her inputs.
    assert mentions(after, ALICE_WORDS) == []
    assert after["generation_inputs"] == []
    assert report.inputs == 1 and report.generations == len([g for g in before["generations"] if g["user_id"] == ALICE])
    assert not [g for g in after["generations"] if g["user_id"] == ALICE]
    # Her id stays only where today's limits need it: today's ledger entries (spent ones count toward her credits,
    # refunded ones toward her upstream attempts), today's grant, the block inside the cool-down window (without
    # its text), and the admin's own records (her limit override: none was set here).
    holders = {
        table: len([r for r in rows if ALICE in (r.get("user_id"), r.get("guild_key"))])
        for table, rows in after.items()
    }
    held_today = [e for e in after["quota_entries"] if e["user_id"] == ALICE]
    assert {(e["day"], e["state"]) for e in held_today} == {(TODAY, "committed"), (TODAY, "refunded")}
    assert len(held_today) == report.ledger_kept_today
    spent_today = sum(e["credits"] for e in held_today if e["state"] == "committed")
    assert spent_today == before_status.used + before_dm.used
    assert [g["day"] for g in after["quota_grants"] if g["user_id"] == ALICE] == [TODAY]
    assert [(m["text"], m["category"]) for m in after["moderation_log"] if m["user_id"] == ALICE] == [("", "gore")]
    assert {t: n for t, n in holders.items() if n} == {
        "quota_entries": len(held_today),
        "quota_grants": 1,
        "moderation_log": 1,
        "quota_audit": 2,  # the admin's grants to her: the server's record
        "quota_forgotten": 1,  # up to which entry her id is kept today, for the retention pass to finish
    }

    # Today's limits hold: the same numbers, and a limit at her usage still refuses her.
    assert (before_status.refunded, before_status.attempts) == (1, 6)
    assert await core.ledger.status(ALICE, SERVER) == before_status
    assert await core.ledger.status(ALICE, None) == before_dm
    await core.ledger.set_user_limit(SERVER, ALICE, before_status.used - before_status.granted, actor_id=ADMIN)
    with pytest.raises(QuotaExceeded):
        await core.ledger.reserve(ImageRequest(user_id=ALICE, channel_id=1, prompt="again", guild_id=SERVER))

    # The spend is intact, by model too.
    assert (await core.ledger.spend(SERVER), await core.ledger.spend(None)) == before_spend
    after_week = await usage_report(core.db, guild_id=SERVER, days=7, timezone=TZ, now=NOW)
    assert (after_week.images, after_week.cost_usd, after_week.by_model) == (
        before_week.images,
        before_week.cost_usd,
        before_week.by_model,
    )
    assert after_week.refunds == before_week.refunds and after_week.blocks == before_week.blocks
    # Yesterday's image is no longer hers; today's still count for her until the day ends.
    assert {m.user_id: m.credits for m in after_week.busiest}[ALICE] == before_status.used


async def test_a_forgotten_picture_cannot_be_edited_or_rerolled(day):
    core, ids = day
    generations = Generations(core.db)
    assert (await generations.by_message(ids["edit_message"])).prompt == "make the fox blue"
    history = await generations.history(ids["reply"], 8)
    assert history.instructions == ("a fox, take 0", "make the fox blue", "add a hat")

    await forget_member(core.db, ALICE, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)

    assert await generations.by_message(ids["edit_message"]) is None  # what a Reroll or a reply looks up
    bob = await generations.get(ids["reply"])
    assert bob.prompt == "add a hat" and bob.parent_id is None  # Bob's picture is his; her words left its chain
    assert (await generations.history(ids["reply"], 8)).instructions == ("add a hat",)


async def test_forget_is_for_members_only(day):
    core, _ = day
    with pytest.raises(ValueError):
        await forget_member(core.db, ANONYMOUS, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)


async def test_retention_redacts_old_prompts_and_finishes_forgetting(day):
    core, ids = day
    # Nothing is older than 2 days: nothing changes.
    nothing = await apply_retention(
        core.db, prompt_retention_days=2, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW
    )
    assert nothing.prompts_redacted == 0
    # One day: yesterday's 15:00 prompt is 27 hours old.
    done = await apply_retention(core.db, prompt_retention_days=1, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    rows = (await dump(core.db))["generations"]
    assert done.prompts_redacted == 1
    assert [g["prompt"] for g in rows if g["created_at"] < NOW - 86_400] == [""]
    assert all(g["prompt"] for g in rows if g["created_at"] >= NOW - 86_400)
    # 0 keeps prompts forever.
    kept = await apply_retention(
        core.db, prompt_retention_days=0, today=TODAY, now=NOW + 10**8, cooldown_window_seconds=WINDOW
    )
    assert kept.prompts_redacted == 0

    # Forget Alice today; on the next day the ids kept for today's limit go too, and nobody else's.
    await forget_member(core.db, ALICE, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    bob_entries = [e for e in (await dump(core.db))["quota_entries"] if e["user_id"] == BOB]
    tomorrow = "2026-03-11"
    later = await apply_retention(
        core.db, prompt_retention_days=0, today=tomorrow, now=local(tomorrow, 9), cooldown_window_seconds=WINDOW
    )
    after = await dump(core.db)
    assert later.ledger_anonymised > 0 and later.moderation_anonymised == 1
    assert not [e for e in after["quota_entries"] if e["user_id"] == ALICE]
    assert not [m for m in after["moderation_log"] if m["user_id"] == ALICE]
    assert after["quota_forgotten"] == []
    assert [e for e in after["quota_entries"] if e["user_id"] == BOB] == bob_entries


async def test_retention_drops_old_stored_inputs(db):
    try:
        core = await open_core(db, Clock(NOW))
        delivery = await core.ask(ALICE, SERVER, "a fox", at=local(YESTERDAY, 9))
        image = InputImage(INPUT_BYTES, "image/png")
        await Generations(db, keep_input_images=True).record_inputs(
            delivery.generation_id, [InputSource(1, 2, 3, image)]
        )
        await core.ledger.drain()
        result = await apply_retention(
            db, prompt_retention_days=1, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW
        )
        (row,) = (await dump(db))["generation_inputs"]
    finally:
        await core.ledger.drain()
    assert result.inputs_dropped == 1
    assert row["data"] is None and row["attachment_id"] == 3  # the bytes go; where they came from stays


async def test_what_a_member_does_after_forgetting_is_theirs_again(day):
    core, _ = day
    await forget_member(core.db, ALICE, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    later = await core.ask(ALICE, SERVER, "a fox after forgetting", at=NOW + 60)
    await core.ledger.drain()
    tomorrow = "2026-03-11"
    await apply_retention(
        core.db, prompt_retention_days=0, today=tomorrow, now=local(tomorrow, 9), cooldown_window_seconds=WINDOW
    )
    after = await dump(core.db)
    # The entries kept for yesterday's limit went; the new request and its entry are still hers.
    assert [e["generation_id"] for e in after["quota_entries"] if e["user_id"] == ALICE] == [later.generation_id]
    assert [g["prompt"] for g in after["generations"] if g["user_id"] == ALICE] == ["a fox after forgetting"]
    assert after["quota_forgotten"] == []


async def test_relax_jobs_are_exported_forgotten_once_ended_and_swept_by_retention(db):
    jobs = RelaxJobs(db, clock=lambda: NOW)
    request = as_relax(ImageRequest(user_id=ALICE, channel_id=1, guild_id=SERVER, prompt="a private relax fox"))
    ended = await jobs.add("1", 1, 1, request, "gemini-nano-banana-2.1")
    await jobs.end(ended.id, "image")
    waiting = await jobs.add("2", 2, 2, request, "gemini-nano-banana-2.1")
    bobs = dataclasses.replace(request, user_id=BOB, prompt="bob's owl")
    await jobs.add("3", 3, 3, bobs, "gemini-nano-banana-2.1")

    exported = await export_member(db, ALICE)
    assert [row["key"] for row in exported["relax_jobs"]] == ["1", "2"]
    assert "a private relax fox" in exported["relax_jobs"][0]["request_json"]
    report = await forget_member(db, ALICE, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    assert report.relax_jobs_deleted == 1
    # The waiting one still owes Alice her picture, so it keeps its request until it ends.
    assert [job.key for job in await jobs.alive()] == ["2", "3"]
    await jobs.end(waiting.id, "image")
    swept = await apply_retention(db, prompt_retention_days=0, today=TODAY, now=NOW, cooldown_window_seconds=WINDOW)
    assert swept.relax_jobs_deleted == 1
    rows = await db.fetchall("SELECT key, request_json FROM relax_jobs")
    assert [row["key"] for row in rows] == ["3"] and "a private relax fox" not in rows[0]["request_json"]
