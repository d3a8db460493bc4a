"""The `relax_jobs` table, and the only code with SQL on it: one row per relax request that got a reservation,
with what it takes to resume it after a restart (the request, its quota entry, its generation, and the Batch job
once there is one). A row is alive until `end`; the next start resumes every live row. What privacy needs of the
table (`bot.ops.privacy`): a member's rows exported, their ended rows deleted when they are forgotten, and every
ended row deleted by the retention pass."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.models import ImageOptions, ImageRequest, RequestKind
from bot.storage.db import Database, Tx
from bot.storage.rows import dict_rows

log = logging.getLogger(__name__)

Stage = Literal["queued", "flex", "submitting", "batch"]
_COLUMNS = (
    "id, key, generation_id, entry_id, request_json, model, stage, flex_attempts, batch_name, batch_at, created_at"
)


@dataclass(frozen=True, slots=True)
class RelaxJob:
    """A relax request as stored. `entry_id` is its open quota reservation."""

    id: int
    key: str
    generation_id: int
    entry_id: int
    request: ImageRequest
    model: str
    stage: Stage
    flex_attempts: int  # Flex calls made so far
    batch_name: str | None  # "batches/..." once a Batch job holds it
    batch_at: float | None  # when that job was submitted (unix seconds)
    created_at: float


def request_to_json(request: ImageRequest) -> str:
    """What is needed to send the planned request again (relax requests carry no images and no history)."""
    return json.dumps(
        {
            "user_id": request.user_id,
            "channel_id": request.channel_id,
            "guild_id": request.guild_id,
            "prompt": request.prompt,
            "kind": request.kind.value,
            "options": request.options.as_json(),
            "role_ids": list(request.role_ids),
        }
    )


def request_from_json(text: str) -> ImageRequest:
    data = json.loads(text)
    options = ImageOptions.from_json(data.get("options") or {})
    return ImageRequest(
        user_id=int(data["user_id"]),
        channel_id=int(data["channel_id"]),
        guild_id=data.get("guild_id"),
        prompt=str(data["prompt"]),
        kind=RequestKind(data.get("kind") or RequestKind.IMAGINE.value),
        options=options if options.tier != "standard" else dataclasses.replace(options, tier="flex"),
        role_ids=tuple(int(r) for r in data.get("role_ids") or ()),
    )


class RelaxJobs:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def add(self, key: str, generation_id: int, entry_id: int, request: ImageRequest, model: str) -> RelaxJob:
        now = self.clock()
        job_id = await self.db.insert(
            "INSERT INTO relax_jobs (key, generation_id, entry_id, user_id, guild_id, channel_id, request_json,"
            " model, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                key,
                generation_id,
                entry_id,
                request.user_id,
                request.guild_id,
                request.channel_id,
                request_to_json(request),
                model,
                now,
            ),
        )
        return RelaxJob(job_id, key, generation_id, entry_id, request, model, "queued", 0, None, None, now)

    async def flex_attempt(self, job_id: int, attempts: int) -> None:
        """A Flex call is about to be made, the `attempts`-th."""
        await self.db.execute(
            "UPDATE relax_jobs SET stage = 'flex', flex_attempts = ? WHERE id = ?", (attempts, job_id)
        )

    async def submitting(self, job_id: int) -> None:
        """A Batch job is about to be created: a restart before `batch_submitted` looks for it first."""
        await self.db.execute("UPDATE relax_jobs SET stage = 'submitting' WHERE id = ?", (job_id,))

    async def batch_submitted(self, job_id: int, name: str, at: float) -> None:
        await self.db.execute(
            "UPDATE relax_jobs SET stage = 'batch', batch_name = ?, batch_at = ? WHERE id = ?", (name, at, job_id)
        )

    async def end(self, job_id: int, outcome: str) -> None:
        """The job is over ('image', or the error's class name): no later start resumes it."""
        await self.db.execute(
            "UPDATE relax_jobs SET ended_at = ?, outcome = ? WHERE id = ? AND ended_at IS NULL",
            (self.clock(), outcome[:100], job_id),
        )

    async def alive(self) -> list[RelaxJob]:
        """Every job no run has ended, oldest first: what a start resumes."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM relax_jobs WHERE ended_at IS NULL ORDER BY created_at, id"
        )
        jobs = []
        for row in rows:
            try:
                jobs.append(_job(row))
            except (ValueError, KeyError, TypeError):
                log.exception("relax job %s cannot be read back; it is ended", row["id"])
                await self.end(row["id"], "unreadable")
        return jobs

    async def outcome(self, key: str) -> tuple[bool, str | None] | None:
        """(ended, outcome) of the job with `key`, None when there is none."""
        row = await self.db.fetchone("SELECT ended_at, outcome FROM relax_jobs WHERE key = ?", (key,))
        return None if row is None else (row["ended_at"] is not None, row["outcome"])


def _job(row: Any) -> RelaxJob:
    return RelaxJob(
        id=row["id"],
        key=row["key"],
        generation_id=row["generation_id"],
        entry_id=row["entry_id"],
        request=request_from_json(row["request_json"]),
        model=row["model"],
        stage=row["stage"],
        flex_attempts=row["flex_attempts"],
        batch_name=row["batch_name"],
        batch_at=row["batch_at"],
        created_at=row["created_at"],
    )


# --- privacy (`bot.ops.privacy` runs these inside its transaction) -----------------------------------------------


async def export_member(tx: Tx, user_id: int) -> dict[str, list[dict[str, Any]]]:
    return {"relax_jobs": await dict_rows(tx, "SELECT * FROM relax_jobs WHERE user_id = ? ORDER BY id", (user_id,))}


async def forget_member(tx: Tx, user_id: int) -> int:
    """Delete the member's ended relax jobs (their request, prompt included). A live one stays until it ends: the
    picture it still owes them needs the request; the first retention pass after it ended deletes it."""
    return await tx.execute("DELETE FROM relax_jobs WHERE user_id = ? AND ended_at IS NOT NULL", (user_id,))


async def delete_ended(tx: Tx) -> int:
    """Delete the relax jobs that have ended: nothing needs them (the request's record is in `generations`)."""
    return await tx.execute("DELETE FROM relax_jobs WHERE ended_at IS NOT NULL")
