"""The `generations`, `generation_inputs` and `generation_turns` tables, and the only code with SQL on them: the
pipeline records each request's start and ending here (model, size, real cost, the model's answer as received);
the editing doors read results back (a result by its message, the latest result in a thread, a chain's
instructions, depth and kept answers, where each input image came from, so a Reroll can fetch it again); the
usage report reads failures; privacy exports, forgets and redacts (`bot.ops.privacy` runs
those three inside one transaction over every owner's tables, so they take its transaction)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.config import DEFAULTS
from bot.editing.conversation import History, Step, StoredTurn, as_turns, choose_turns, walk
from bot.models import GeneratedImage, GenerationStatus, ImageOptions, ImageRequest, InputImage, RequestKind, Turn
from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import anonymise, dict_rows

log = logging.getLogger(__name__)

ANONYMOUS = 0  # the user id of rows that belong to no one any more (the CLI's requests use it as well)

# Columns that say nothing about who asked or what: kept when a member's generation is forgotten. The rest is
# blanked (by allow-list, so a column added later, a raw model answer say, is blanked without being named here).
KEPT_WHEN_FORGOTTEN = frozenset(
    {
        "id",
        "created_at",
        "finished_at",
        "guild_id",
        "kind",
        "model",
        "input_images",
        "status",
        "error_kind",
        "prompt_tokens",
        "output_tokens",
        "total_tokens",
        "queued_ms",
        "upstream_ms",
        "mime_type",
        "image_bytes",
        "deleted_at",
        "provider",
        "model_version",
        "size",
        "credits",
        "cost_micros",
        "image_tokens",
        "thinking_tokens",
    }
)

_COLUMNS = (
    "id, user_id, guild_id, channel_id, kind, prompt, model, options_json, input_images, parent_id, status,"
    " message_id, deleted_at, model_version, provider"
)


@dataclass(frozen=True, slots=True)
class Generation:
    id: int
    user_id: int
    guild_id: int | None
    channel_id: int
    kind: RequestKind
    prompt: str
    options: ImageOptions  # with the model and size it was made with (older rows: the model only)
    input_count: int
    parent_id: int | None
    status: GenerationStatus
    message_id: int | None  # the Discord message that shows the result
    deleted: bool  # that message was deleted
    model_version: str | None = None  # the model that really answered
    provider: str | None = None  # the configured provider that made it (or whose error ended it)

    @property
    def shown(self) -> bool:
        """Delivered and still on Discord: the only kind of result that can be edited or rerolled."""
        return self.status is GenerationStatus.DELIVERED and self.message_id is not None and not self.deleted

    @property
    def prompt_gone(self) -> bool:
        """Its words are no longer kept: its author had themselves forgotten, or it passed PROMPT_RETENTION_DAYS."""
        return not self.prompt


@dataclass(frozen=True, slots=True)
class InputSource:
    """One input image of a request and where it came from: an attachment of a Discord message (fetchable
    again), or of a slash command (no message: gone once its URL expires)."""

    channel_id: int | None
    message_id: int | None
    attachment_id: int | None
    image: InputImage | None  # None when read back without kept bytes


class Generations:
    def __init__(
        self,
        db: Database,
        *,
        keep_input_images: bool = DEFAULTS.keep_input_images,
        max_turn_bytes: int = DEFAULTS.edit_history_max_bytes,
        clock: Callable[[], float] = time.time,
    ):
        self.db = db
        self.keep_input_images = keep_input_images
        # An answer larger than this could never be sent back within the budget, so it is not kept.
        self.max_turn_bytes = max_turn_bytes
        self.clock = clock

    # --- the pipeline's side: one row per request that got a reservation -----------------------------------

    async def start(self, request: ImageRequest, model: str) -> tuple[int, int]:
        """Record a request as it starts (its options name the model and size chosen for it; `model` is used
        when they do not); returns its id and how many edits deep it is (0 when its parent is unknown, which then
        is not recorded either)."""
        depth = 0
        if request.parent_id is not None and await self.db.fetchone(
            "SELECT 1 FROM generations WHERE id=?", (request.parent_id,)
        ):
            depth = await self.depth(request.parent_id) + 1
        generation_id = await self.db.insert(
            "INSERT INTO generations (created_at, user_id, guild_id, channel_id, kind, prompt, model, size,"
            " options_json, input_images, parent_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.clock(),
                request.user_id,
                request.guild_id,
                request.channel_id,
                request.kind.value,
                request.prompt,
                request.options.model or model,
                request.options.size,
                json.dumps(request.options.as_json()),
                len(request.images),
                request.parent_id if depth else None,
            ),
        )
        return generation_id, depth

    async def delivered(
        self,
        generation_id: int,
        image: GeneratedImage,
        *,
        message_id: int | None,
        queued_ms: float | None,
        upstream_ms: float | None,
        cost_usd: float | None = None,
        credits: int | None = None,
        model: str | None = None,
    ) -> None:
        """The result reached its user: its usage, real cost, the model that answered and the provider that made
        it (`image.provider`), and (for signed answers of `model`, under the byte budget) the answer as received,
        for later multi-turn edits."""
        usage = image.usage
        answer = None
        if image.content is not None and model:
            # Megabytes of JSON for a large picture: serialised off the event loop.
            answer = await asyncio.to_thread(json.dumps, image.content, separators=(",", ":"))
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE generations SET status='delivered', finished_at=?, prompt_tokens=?, output_tokens=?,"
                " total_tokens=?, image_tokens=?, thinking_tokens=?, queued_ms=?, upstream_ms=?, mime_type=?,"
                " image_bytes=?, message_id=?, model_version=?, cost_micros=?, credits=?, provider=? WHERE id=?",
                (
                    self.clock(),
                    usage.prompt_tokens,
                    usage.output_tokens,
                    usage.total_tokens,
                    usage.image_tokens,
                    usage.thinking_tokens,
                    queued_ms,
                    upstream_ms,
                    image.mime_type,
                    len(image.data),
                    message_id,
                    image.model,
                    None if cost_usd is None else round(cost_usd * 1_000_000),
                    credits,
                    image.provider or None,
                    generation_id,
                ),
            )
            if answer is not None and len(answer) <= self.max_turn_bytes:
                await tx.execute(
                    "INSERT INTO generation_turns (generation_id, model, content) VALUES (?,?,?)"
                    " ON CONFLICT (generation_id) DO UPDATE SET model = excluded.model, content = excluded.content",
                    (generation_id, model, answer),
                )

    async def turns(self, generation_id: int, model: str, max_turns: int, max_bytes: int) -> tuple[Turn, ...]:
        """The kept answers to send back with an edit of `generation_id` made by `model`: the newest steps of its
        chain from the same model, within `max_turns` and `max_bytes`, oldest first (empty: send the picture as
        a fresh image). See `bot.editing.conversation.choose_turns`."""
        if max_turns <= 0:
            return ()
        rows = await self.db.fetchall(
            "WITH RECURSIVE chain(id, parent_id, n) AS ("
            " SELECT id, parent_id, 0 FROM generations WHERE id=?"
            " UNION ALL SELECT g.id, g.parent_id, n+1 FROM generations g JOIN chain c ON g.id=c.parent_id"
            " WHERE n < ?)"
            " SELECT c.id, g.prompt, t.model, COALESCE(LENGTH(t.content), 0) FROM chain c"
            " JOIN generations g ON g.id=c.id LEFT JOIN generation_turns t ON t.generation_id=c.id ORDER BY c.n",
            (generation_id, max_turns - 1),
        )
        chosen = choose_turns([StoredTurn(*row) for row in rows], model, max_turns, max_bytes)
        if not chosen:
            return ()
        ids = [step.generation_id for step in chosen]
        found = await self.db.fetchall(
            f"SELECT generation_id, content FROM generation_turns WHERE generation_id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return as_turns(chosen, {row[0]: row[1] for row in found})

    async def failed(
        self,
        generation_id: int,
        error_kind: str,
        detail: str,
        *,
        queued_ms: float | None,
        provider: str | None = None,
    ) -> None:
        """The request ended without a delivery; `provider`: whose error ended it, when it was one provider's."""
        await self.db.execute(
            "UPDATE generations SET status='failed', finished_at=?, error_kind=?, error_detail=?, queued_ms=?,"
            " provider=? WHERE id=?",
            (self.clock(), error_kind, detail[:500], queued_ms, provider, generation_id),
        )

    async def depth(self, generation_id: int) -> int:
        """How many edits deep a generation is: the number of ancestors on its parent chain."""
        row = await self.db.fetchone(
            "WITH RECURSIVE chain(id, parent_id, n) AS ("
            " SELECT id, parent_id, 0 FROM generations WHERE id=?"
            " UNION ALL SELECT g.id, g.parent_id, n+1 FROM generations g JOIN chain c ON g.id=c.parent_id"
            " WHERE n < 10000) SELECT MAX(n) FROM chain",
            (generation_id,),
        )
        return int(row[0] or 0) if row else 0

    # --- the editing doors' side ------------------------------------------------------------------------

    async def get(self, generation_id: int) -> Generation | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM generations WHERE id=?", (generation_id,))
        return _generation(row) if row else None

    async def by_message(self, message_id: int) -> Generation | None:
        """The result a Discord message shows, if it shows one."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM generations WHERE message_id=? AND status='delivered' ORDER BY id DESC LIMIT 1",
            (message_id,),
        )
        return _generation(row) if row else None

    async def latest_in_channel(self, channel_id: int, before_message_id: int) -> int | None:
        """The message id of the newest result still shown in a channel (or thread) before a given message."""
        row = await self.db.fetchone(
            "SELECT message_id FROM generations WHERE channel_id=? AND message_id<? AND status='delivered'"
            " AND deleted_at IS NULL ORDER BY message_id DESC LIMIT 1",
            (channel_id, before_message_id),
        )
        return int(row[0]) if row else None

    async def mark_deleted(self, message_id: int) -> bool:
        """Note that a result's message is gone; False when the message showed no result. Called for every
        deleted message the bot hears of, so the common case is a read that finds nothing."""
        found = await self.db.fetchone(
            "SELECT 1 FROM generations WHERE message_id=? AND deleted_at IS NULL", (message_id,)
        )
        if found is None:
            return False
        await self.db.execute(
            "UPDATE generations SET deleted_at=? WHERE message_id=? AND deleted_at IS NULL", (self.clock(), message_id)
        )
        return True

    async def history(self, generation_id: int | None, max_depth: int) -> History:
        """The instructions that made `generation_id` (its own last), oldest first, at most `max_depth`."""
        return await walk(generation_id, self._step, max_depth)

    async def _step(self, generation_id: int) -> Step | None:
        row = await self.db.fetchone("SELECT prompt, parent_id FROM generations WHERE id=?", (generation_id,))
        return Step(row[0], row[1]) if row else None

    async def record_inputs(self, generation_id: int, sources: Sequence[InputSource]) -> None:
        """Remember where the inputs came from; their bytes only when the operator keeps input images."""
        rows = [
            (
                generation_id,
                position,
                source.channel_id,
                source.message_id,
                source.attachment_id,
                source.image.mime_type if source.image else "application/octet-stream",
                source.image.data if source.image and self.keep_input_images else None,
            )
            for position, source in enumerate(sources)
        ]
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO generation_inputs (generation_id, position, channel_id, message_id, attachment_id,"
                " mime_type, data) VALUES (?,?,?,?,?,?,?) ON CONFLICT (generation_id, position) DO UPDATE SET"
                " channel_id = excluded.channel_id, message_id = excluded.message_id,"
                " attachment_id = excluded.attachment_id, mime_type = excluded.mime_type, data = excluded.data",
                rows,
            )

    async def inputs(self, generation_id: int) -> list[InputSource]:
        rows = await self.db.fetchall(
            "SELECT channel_id, message_id, attachment_id, mime_type, data FROM generation_inputs"
            " WHERE generation_id=? ORDER BY position",
            (generation_id,),
        )
        return [
            InputSource(row[0], row[1], row[2], InputImage(bytes(row[4]), row[3]) if row[4] is not None else None)
            for row in rows
        ]


def _generation(row: Any) -> Generation:
    options = ImageOptions.from_json(json.loads(row["options_json"] or "{}"))
    if options.model is None:  # rows from before models could be chosen name it only in their own column
        options = ImageOptions(options.aspect_ratio, row["model"], options.size, options.tier)
    return Generation(
        id=row["id"],
        user_id=row["user_id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        kind=RequestKind(row["kind"]),
        prompt=row["prompt"],
        options=options,
        input_count=row["input_images"],
        parent_id=row["parent_id"],
        status=GenerationStatus(row["status"]),
        message_id=row["message_id"],
        deleted=row["deleted_at"] is not None,
        model_version=row["model_version"],
        provider=row["provider"],
    )


# --- what the usage report reads ------------------------------------------------------------------------------


async def failure_counts(db: Database, guild_id: int | None, start: float, end: float) -> list[tuple[str, int]]:
    """(error class, count) of the requests that failed in [start, end), for one server or all (None)."""
    scope, params = ("", (start, end)) if guild_id is None else (" AND guild_id = ?", (start, end, guild_id))
    rows = await db.fetchall(
        "SELECT COALESCE(error_kind, 'unknown'), COUNT(*) FROM generations WHERE status = 'failed'"
        f" AND created_at >= ? AND created_at < ?{scope} GROUP BY COALESCE(error_kind, 'unknown')"
        " ORDER BY COUNT(*) DESC, COALESCE(error_kind, 'unknown')",
        params,
    )
    return [(row[0], int(row[1])) for row in rows]


# --- privacy: run inside the caller's transaction (`tx`) ----------------------------------------------------------


async def export_member(tx: Tx, user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every generation of a member, its input records and the model's answers kept for it, all columns (a
    column added later too)."""
    return {
        "generations": await dict_rows(tx, "SELECT * FROM generations WHERE user_id = ? ORDER BY id", (user_id,)),
        "generation_inputs": await dict_rows(
            tx,
            "SELECT i.* FROM generation_inputs i JOIN generations g ON g.id = i.generation_id"
            " WHERE g.user_id = ? ORDER BY i.generation_id, i.position",
            (user_id,),
        ),
        "generation_turns": await dict_rows(
            tx,
            "SELECT t.* FROM generation_turns t JOIN generations g ON g.id = t.generation_id"
            " WHERE g.user_id = ? ORDER BY t.generation_id",
            (user_id,),
        ),
    }


async def forget_member(tx: Tx, dialect: Dialect, user_id: int, now: float) -> tuple[int, int]:
    """A member's generations become anonymous rows (model, kind, status, tokens and timings stay: they are the
    server's spend by model); their input records and the model's answers kept for them go. The message id goes
    too, so a Reroll or reply on the picture finds nothing to act on, and other members' edits of it lose it as a
    parent (their history no longer carries the member's words). Returns (generations anonymised, input records
    deleted)."""
    mine = "SELECT id FROM generations WHERE user_id = ?"
    inputs = await tx.execute(f"DELETE FROM generation_inputs WHERE generation_id IN ({mine})", (user_id,))
    await tx.execute(f"DELETE FROM generation_turns WHERE generation_id IN ({mine})", (user_id,))
    await tx.execute(f"UPDATE generations SET parent_id = NULL WHERE parent_id IN ({mine})", (user_id,))
    generations = await anonymise(tx, dialect, "generations", KEPT_WHEN_FORGOTTEN, "user_id = ?", (user_id,))
    await tx.execute(
        "UPDATE generations SET user_id = ?, deleted_at = COALESCE(deleted_at, ?) WHERE user_id = ?",
        (ANONYMOUS, now, user_id),
    )
    return generations, inputs


async def redact_older_than(tx: Tx, cutoff: float) -> tuple[int, int]:
    """Blank the prompts (and drop kept input bytes and the model's kept answers, which may repeat the prompt) of
    generations made before `cutoff`; returns how many prompts and input images."""
    prompts = await tx.execute("UPDATE generations SET prompt = '' WHERE created_at < ? AND prompt != ''", (cutoff,))
    older = "SELECT id FROM generations WHERE created_at < ?"
    inputs = await tx.execute(
        f"UPDATE generation_inputs SET data = NULL WHERE data IS NOT NULL AND generation_id IN ({older})", (cutoff,)
    )
    await tx.execute(f"DELETE FROM generation_turns WHERE generation_id IN ({older})", (cutoff,))
    return prompts, inputs
