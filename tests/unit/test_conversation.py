"""Which picture a message edits, and walking a chain of edits back: pure rules, then over the real database."""

from __future__ import annotations

import pytest

from bot.editing.conversation import History, Incoming, MessageRef, Step, source_of, walk
from bot.editing.generations import Generations, InputSource
from bot.models import ImageOptions, InputImage, RequestKind

THREAD, PARENT_CHANNEL = 500, 10


def chain(*prompts: str) -> dict[int, Step]:
    """Generations 1..n, each editing the one before."""
    return {i: Step(p, i - 1 if i > 1 else None) for i, p in enumerate(prompts, start=1)}


def fetcher(steps: dict[int, Step], calls: list[int] | None = None):
    async def fetch(generation_id: int) -> Step | None:
        if calls is not None:
            calls.append(generation_id)
        return steps.get(generation_id)

    return fetch


async def test_a_chain_is_read_back_oldest_first():
    steps = chain("a red fox", "make it night", "add a moon")
    assert await walk(3, fetcher(steps), max_depth=8) == History(("a red fox", "make it night", "add a moon"))


async def test_nothing_to_walk_from_a_fresh_picture():
    assert await walk(None, fetcher({}), max_depth=8) == History()


@pytest.mark.parametrize("depth", [1, 2, 3])
async def test_depth_limit_keeps_the_most_recent_and_says_it_cut(depth):
    steps = chain("a red fox", "make it night", "add a moon", "paint it")
    calls: list[int] = []
    history = await walk(4, fetcher(steps, calls), max_depth=depth)
    assert history.instructions == ("a red fox", "make it night", "add a moon", "paint it")[-depth:]
    assert history.truncated and not history.broken
    assert len(calls) == depth  # nothing beyond the limit is even read


async def test_exactly_the_limit_is_not_a_cut():
    history = await walk(2, fetcher(chain("a", "b")), max_depth=2)
    assert history == History(("a", "b"))


async def test_a_deleted_parent_ends_the_chain_and_is_reported():
    steps = chain("a red fox", "make it night", "add a moon")
    del steps[1]
    history = await walk(3, fetcher(steps), max_depth=8)
    assert history == History(("make it night", "add a moon"), broken=True)


async def test_a_missing_start_is_an_empty_broken_history():
    assert await walk(7, fetcher({}), max_depth=8) == History(broken=True)


# --- which picture a message is about ---------------------------------------------------------------------


async def no_picture_yet(thread_id: int, before: int) -> int | None:
    return None


async def test_a_reply_edits_the_message_it_replies_to():
    ref = MessageRef(PARENT_CHANNEL, 42)
    # even inside a thread: an explicit reply wins over "the latest picture"
    incoming = Incoming(900, THREAD, reference=ref, thread_parent_id=PARENT_CHANNEL)
    assert await source_of(incoming, no_picture_yet) == ref


async def test_the_first_message_of_a_thread_edits_its_starter():
    incoming = Incoming(900, THREAD, thread_parent_id=PARENT_CHANNEL)
    # the starter has the thread's id and lives in the parent channel
    assert await source_of(incoming, no_picture_yet) == MessageRef(PARENT_CHANNEL, THREAD)


async def test_later_thread_messages_edit_the_latest_picture_before_them():
    asked: list[tuple[int, int]] = []

    async def latest(thread_id: int, before: int) -> int | None:
        asked.append((thread_id, before))
        return 777

    incoming = Incoming(900, THREAD, thread_parent_id=PARENT_CHANNEL)
    assert await source_of(incoming, latest) == MessageRef(THREAD, 777)
    assert asked == [(THREAD, 900)]


async def test_a_plain_message_outside_a_bot_thread_points_nowhere():
    assert await source_of(Incoming(900, PARENT_CHANNEL), no_picture_yet) is None


# --- the same over the database ------------------------------------------------------------------------------


async def insert(db, prompt: str, *, parent: int | None = None, channel: int = THREAD, message: int | None = None):
    return await db.insert(
        "INSERT INTO generations (created_at, user_id, channel_id, kind, prompt, model, parent_id, status,"
        " message_id) VALUES (0, 1, ?, 'reply', ?, 'm', ?, 'delivered', ?)",
        (channel, prompt, parent, message),
    )


async def test_lineage_in_the_database_walks_the_same_way(db):
    store = Generations(db)
    first = await insert(db, "a red fox", channel=PARENT_CHANNEL, message=THREAD)
    second = await insert(db, "make it night", parent=first, message=600)
    third = await insert(db, "add a moon", parent=second, message=700)
    assert (await store.history(third, 8)).instructions == ("a red fox", "make it night", "add a moon")
    assert await store.history(third, 2) == History(("make it night", "add a moon"), truncated=True)
    starter = await store.by_message(THREAD)
    assert starter is not None and starter.id == first and starter.kind is RequestKind.REPLY
    assert starter.options == ImageOptions(model="m") and starter.shown  # the model it was made with


async def test_latest_picture_in_a_thread_skips_later_and_deleted_ones(db):
    store = Generations(db, clock=lambda: 123.0)
    await insert(db, "one", message=600)
    await insert(db, "two", message=700)
    assert await store.latest_in_channel(THREAD, 650) == 600
    assert await store.latest_in_channel(THREAD, 800) == 700
    assert await store.mark_deleted(700) and not await store.mark_deleted(700)
    assert await store.latest_in_channel(THREAD, 800) == 600
    assert await store.latest_in_channel(PARENT_CHANNEL, 800) is None
    assert not await store.mark_deleted(12345)  # not a result: nothing written


@pytest.mark.parametrize("keep", [False, True])
async def test_input_sources_keep_bytes_only_when_configured(db, keep):
    store = Generations(db, keep_input_images=keep)
    generation = await insert(db, "edit")
    png = InputImage(b"\x89PNG...", "image/png")
    await store.record_inputs(generation, [InputSource(10, 20, 30, png), InputSource(None, None, 31, png)])
    first, second = await store.inputs(generation)
    assert (first.channel_id, first.message_id, first.attachment_id) == (10, 20, 30)
    assert (second.channel_id, second.message_id, second.attachment_id) == (None, None, 31)
    assert (first.image == png) if keep else (first.image is None and second.image is None)
