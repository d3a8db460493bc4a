"""Gemini's Batch API over REST, for the relax lane: submit inline generateContent requests, ask how the job
stands, cancel it (shared/reference/gemini-api.md, "Relax lane").

    POST /v1beta/models/{model}:batchGenerateContent   {"batch": {"displayName", "inputConfig": {"requests":
                                                         {"requests": [{"request": ..., "metadata": {"key"}}]}}}}
    GET  /v1beta/batches/{id}                           an Operation: metadata.state BATCH_STATE_*, done, response
    POST /v1beta/batches/{id}:cancel

Jobs are billed at half the standard price and Google aims to finish them within 24 hours. Like the rest of the
providers, this module only speaks the wire and maps failures into `bot.errors`; polling and persistence belong
to `bot.relax`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.config import DEFAULTS
from bot.errors import UpstreamError, UpstreamUnavailable
from bot.providers.gemini import API_VERSION, error_envelope, error_from_response, send

log = logging.getLogger(__name__)

# The states of a job without their prefix: the wire says BATCH_STATE_*, google-genai renames them JOB_STATE_*.
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
# google.rpc.Code (what a failed inline request carries) -> the HTTP status Google maps it to.
_HTTP_OF_RPC = {3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 10: 409, 13: 500, 14: 503, 16: 401}
_STATUS_OF_RPC = {
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}
# Polling and cancelling are small JSON calls; only the submission carries pictures.
CALL_TIMEOUT_SECONDS = 30.0
# Looking for a job by its display name (after a crash during its submission) reads at most this many jobs.
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 10


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """How a job stands. `results` are its inline results in input order (`{response | error, metadata}`), once
    it succeeded; `error` is the google.rpc.Status of a failed job."""

    name: str
    state: str  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED (or a state added later)
    done: bool
    results: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] | None = None

    def result_for(self, key: str) -> dict[str, Any] | None:
        """The result of the inline request submitted with metadata.key `key` (the only one, if none matches)."""
        for result in self.results:
            if _dict(result.get("metadata")).get("key") == key:
                return result
        return self.results[0] if len(self.results) == 1 else None


class GeminiBatches:
    """Batch jobs on Google's endpoint. The aiohttp session is the app's and is not closed here."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULTS.gemini_base_url,
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"GeminiBatches(base_url={self.base_url!r})"

    async def create(self, model: str, requests: Sequence[tuple[str, dict[str, Any]]], display_name: str) -> str:
        """Submit (key, generateContent body) pairs to `model` as one job; returns its name ("batches/...")."""
        body = {
            "batch": {
                "displayName": display_name,
                "inputConfig": {
                    "requests": {
                        "requests": [{"request": request, "metadata": {"key": key}} for key, request in requests]
                    }
                },
            }
        }
        model = model.removeprefix("models/")
        url = f"{self.base_url}/{API_VERSION}/models/{model}:batchGenerateContent"
        payload = await self._call("POST", url, json.dumps(body).encode(), model=model)
        name = _dict(payload).get("name")
        if not isinstance(name, str) or not name.startswith("batches/"):
            raise UpstreamUnavailable("malformed answer from Gemini: the new batch job has no name")
        return name

    async def find(
        self, display_name: str, *, page_size: int = LIST_PAGE_SIZE, max_pages: int = LIST_MAX_PAGES
    ) -> str | None:
        """The name of a job submitted with `display_name` (the newest, if several), looking through at most
        `max_pages` pages of the project's jobs; None when there is none."""
        url = f"{self.base_url}/{API_VERSION}/batches?pageSize={page_size}"
        found: str | None = None
        token: str | None = None
        for _ in range(max_pages):
            page = _dict(await self._call("GET", url + (f"&pageToken={token}" if token else ""), None))
            for operation in page.get("operations") or []:
                metadata = _dict(_dict(operation).get("metadata"))
                if metadata.get("displayName") == display_name and isinstance(operation.get("name"), str):
                    found = operation["name"]  # keep looking: a later one is newer
            token = page.get("nextPageToken") if isinstance(page.get("nextPageToken"), str) else None
            if not token:
                break
        return found

    async def get(self, name: str) -> BatchStatus:
        payload = await self._call("GET", self._job_url(name), None)
        return parse_operation(payload, name)

    async def cancel(self, name: str) -> None:
        await self._call("POST", self._job_url(name) + ":cancel", b"{}")

    def _job_url(self, name: str) -> str:
        job = name.removeprefix("batches/")
        if not job or "/" in job or ":" in job:
            raise ValueError(f"not a batch job name: {name!r}")
        return f"{self.base_url}/{API_VERSION}/batches/{job}"

    async def _call(self, method: str, url: str, body: bytes | None, *, model: str = "") -> Any:
        """The JSON of a 200. A job's Operation may carry the job's own `error` (it failed): that is an answer,
        not a failure of the call. `model`: the model a 404 would be about (else a 404 is about a job)."""
        headers = {"x-goog-api-key": self._api_key.get_secret_value(), "Content-Type": "application/json"}
        status, raw = await send(self._session, self._api_key, method, url, body, headers, within=self.timeout)
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        if status != 200:
            raise error_from_response(status, error_envelope(payload), raw, model=model)
        return payload


def parse_operation(payload: Any, name: str) -> BatchStatus:
    """The Operation JSON of a job into a `BatchStatus`; results are read where the REST reference puts them
    (`response.inlinedResponses.inlinedResponses`), else where google-genai reads them (`metadata.output`)."""
    if not isinstance(payload, dict):
        raise UpstreamUnavailable("malformed answer from Gemini: a batch job is not an object")
    metadata = _dict(payload.get("metadata"))
    state = str(metadata.get("state") or "STATE_UNSPECIFIED")
    state = state.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    inlined = _dict(_dict(payload.get("response")).get("inlinedResponses")).get("inlinedResponses")
    if inlined is None:
        inlined = _dict(_dict(metadata.get("output")).get("inlinedResponses")).get("inlinedResponses")
    results = tuple(r for r in inlined if isinstance(r, dict)) if isinstance(inlined, list) else ()
    done = payload.get("done") is True or state in TERMINAL_STATES
    error = payload.get("error") if isinstance(payload.get("error"), dict) else None
    return BatchStatus(str(payload.get("name") or name), state, done, results, error)


def rpc_error(status: Any) -> UpstreamError:
    """A failed inline request's google.rpc.Status as the error the same failure of generateContent would be."""
    status = _dict(status)
    code = status.get("code")
    rpc = code if isinstance(code, int) else 13
    http = _HTTP_OF_RPC.get(rpc, 500)
    envelope = {"code": http, "status": _STATUS_OF_RPC.get(rpc, ""), "message": str(status.get("message") or "")}
    envelope["details"] = status.get("details") or []
    return error_from_response(http, envelope)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
