"""Batch jobs of the fake Gemini: `POST /v1beta/models/{model}:batchGenerateContent` (inline requests), polled
with `GET /v1beta/batches/{id}`, cancelled with `POST /v1beta/batches/{id}:cancel`.

A job is a long-running Operation: `metadata.state` is `BATCH_STATE_*` (the SDK renames them `JOB_STATE_*`),
`done: true` once it ends; a succeeded job carries its inline results, in input order, both where the REST
reference puts them (`response.inlinedResponses.inlinedResponses[]`) and where google-genai reads them
(`metadata.output.inlinedResponses.inlinedResponses[]`). Each result is `{response | error, metadata}`.

Jobs move when a test says so (`advance`) or with the fake's clock: `timing=(pending_s, running_s)` scaled by
`factor`; a job still pending or running after `expire_after` seconds (48 h) expires with no results.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
EXPIRED = "BATCH_STATE_EXPIRED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, EXPIRED)
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_ALPHABET = string.ascii_lowercase + string.digits


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def state_name(state: str) -> str:
    """ "running" / "RUNNING" / "BATCH_STATE_RUNNING" -> "BATCH_STATE_RUNNING"."""
    state = state.upper()
    return state if state.startswith("BATCH_STATE_") else "BATCH_STATE_" + state


@dataclass
class BatchJob:
    name: str  # "batches/<id>"
    model: str
    display_name: str
    items: list[dict[str, Any]]  # [{"request": {...}, "metadata": {...}}], normalised
    created_at: float  # the fake's clock
    state: str = PENDING
    create_time: str = field(default_factory=_now)
    update_time: str = field(default_factory=_now)
    end_time: str | None = None
    results: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None  # google.rpc.Status of a failed job
    cancel_requested: bool = False

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def keys(self) -> list[Any]:
        return [(item.get("metadata") or {}).get("key") for item in self.items]

    def operation(self) -> dict[str, Any]:
        """The Operation JSON of `GET /v1beta/batches/{id}` (and of the create call)."""
        count = len(self.items)
        stats: dict[str, str] = {"requestCount": str(count)}
        if self.results is not None:
            failed = sum(1 for r in self.results if "error" in r)
            stats.update(successfulRequestCount=str(count - failed), failedRequestCount=str(failed))
        elif not self.done:
            stats["pendingRequestCount"] = str(count)
        metadata: dict[str, Any] = {
            "@type": _TYPES + "GenerateContentBatch",
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": self.create_time,
            "updateTime": self.update_time,
            "batchStats": stats,
            "state": self.state,
            "name": self.name,
        }
        if self.end_time:
            metadata["endTime"] = self.end_time
        operation: dict[str, Any] = {"name": self.name, "metadata": metadata}
        if self.done:
            operation["done"] = True
        if self.results is not None:
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": self.results}}
            operation["response"] = {
                "@type": _TYPES + "GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": [dict(r) for r in self.results]},
            }
        if self.error is not None:
            operation["error"] = self.error
        return operation


class BatchStore:
    """The fake's batch jobs. `complete(job)` computes the results of a job that succeeds (the server answers
    each inline request as it would a generateContent)."""

    def __init__(
        self,
        complete: Callable[[BatchJob], list[dict[str, Any]]],
        *,
        timing: tuple[float, float] | None = None,
        factor: float = 1.0,
        expire_after: float = 48 * 3600.0,
    ) -> None:
        self.complete = complete
        self.timing = timing
        self.factor = factor
        self.expire_after = expire_after
        self.jobs: dict[str, BatchJob] = {}

    def create(self, model: str, display_name: str, items: list[dict[str, Any]], now: float) -> BatchJob:
        name = "batches/" + "".join(secrets.choice(_ALPHABET) for _ in range(36))
        job = BatchJob(name=name, model=model, display_name=display_name, items=items, created_at=now)
        self.jobs[name] = job
        return job

    def find(self, name: str) -> BatchJob | None:
        """By "batches/<id>", "<id>", or the position in creation order (an int; -1 = the latest)."""
        if isinstance(name, int):
            jobs = list(self.jobs.values())
            return jobs[name] if -len(jobs) <= name < len(jobs) else None
        return self.jobs.get(name if name.startswith("batches/") else f"batches/{name}")

    def tick(self, job: BatchJob, now: float) -> None:
        """Move `job` along the clock."""
        if job.done:
            return
        elapsed = (now - job.created_at) * self.factor
        finish = sum(self.timing) if self.timing else None
        if finish is not None and elapsed >= finish and finish < self.expire_after:
            self.advance(job, SUCCEEDED)
        elif elapsed >= self.expire_after:
            self.advance(job, EXPIRED)
        elif self.timing and elapsed >= self.timing[0] and job.state == PENDING:
            self.advance(job, RUNNING)

    def advance(self, job: BatchJob, state: str, *, message: str = "Batch failed: internal error.") -> BatchJob:
        """Put `job` into `state` (a terminal job stays as it is)."""
        state = state_name(state)
        if job.done:
            return job
        job.state = state
        job.update_time = _now()
        if state in TERMINAL:
            job.end_time = job.update_time
        if state == SUCCEEDED:
            job.results = self.complete(job)
        elif state == FAILED:
            job.error = {"code": 13, "message": message}
        return job

    def cancel(self, job: BatchJob) -> None:
        job.cancel_requested = True
        self.advance(job, CANCELLED)

    def page(self, size: int, offset: int) -> tuple[list[BatchJob], int | None]:
        jobs = list(self.jobs.values())
        chunk = jobs[offset : offset + size]
        return chunk, (offset + size if offset + size < len(jobs) else None)
