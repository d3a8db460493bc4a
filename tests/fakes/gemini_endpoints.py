"""The fake Gemini's endpoints besides generateContent: `GET /v1beta/models[/{id}]` (paginated like the real
list) and the Batch API (create, get, list, cancel, delete). A mixin of `FakeGemini`, which owns the state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.gemini_batch import BatchJob, BatchStore
from tests.fakes.gemini_models import RETIRED, ModelSpec, page_token, read_page_token, spec_for
from tests.fakes.gemini_replies import GeminiReply, RecordedRequest, rpc_status
from tests.fakes.gemini_schema import BATCH_REQUEST, MAX_REQUEST_BYTES, Invalid, normalise

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from tests.fakes.gemini_answers import AnswerStyle

NOT_FOUND = GeminiReply.error(404, "NOT_FOUND", "Requested entity was not found.")


class ModelsAndBatches:
    specs: dict[str, ModelSpec]
    batches: BatchStore
    batch_items: list[RecordedRequest]
    batch_script: deque[GeminiReply]
    clock: Callable[[], float]

    if TYPE_CHECKING:

        def style(self) -> AnswerStyle: ...
        def _model_check(self, model: str, method: str) -> ModelSpec | GeminiReply: ...
        def _validate(self, record: RecordedRequest, raw: bytes | None) -> GeminiReply | None: ...
        def _answer(self, record: RecordedRequest, script: deque[GeminiReply]) -> GeminiReply: ...
        def _remember_signatures(self, payload: Any) -> None: ...

    # --- models ----------------------------------------------------------------------------------------------

    def _models(self, record: RecordedRequest, http: web.Request) -> GeminiReply:
        if record.kind == "models.get":
            spec = self.specs.get(record.target)
            if spec is None or record.target in RETIRED:
                return GeminiReply.model_not_found(record.target, "GET")
            return GeminiReply(body=spec.resource())
        size, offset = self._page(http)
        if offset is None:
            return GeminiReply.error(400, "INVALID_ARGUMENT", "Invalid page token.")
        specs = list(self.specs.values())
        body: dict[str, Any] = {"models": [s.resource() for s in specs[offset : offset + size]]}
        if offset + size < len(specs):
            body["nextPageToken"] = page_token(offset + size)
        return GeminiReply(body=body)

    @staticmethod
    def _page(http: web.Request) -> tuple[int, int | None]:
        """pageSize (default 50, at most 1000) and the offset a pageToken stands for (None if it is bad)."""
        try:
            size = int(http.query.get("pageSize") or 50)
        except ValueError:
            size = 50
        size = min(max(size, 1), 1000)
        token = http.query.get("pageToken")
        return size, (read_page_token(token) if token else 0)

    # --- batch -----------------------------------------------------------------------------------------------

    def _batch_create(self, record: RecordedRequest, raw: bytes) -> GeminiReply:
        assert record.model is not None
        spec = self._model_check(record.model, "batchGenerateContent")
        if isinstance(spec, GeminiReply):
            return spec
        record.spec = spec
        if len(raw) > MAX_REQUEST_BYTES:
            return GeminiReply.error(
                400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
            )
        try:
            request = normalise(record.body if record.body is not None else [], BATCH_REQUEST)
        except Invalid as exc:
            return GeminiReply.error(exc.code, exc.status, exc.message)
        record.request = request
        batch = request.get("batch") or {}
        source = batch.get("inputConfig") or {}
        if "fileName" in source:
            return GeminiReply.error(400, "INVALID_ARGUMENT", "fake Gemini: file input is not implemented, use inline")
        items = (source.get("requests") or {}).get("requests") or []
        if not items or any("request" not in item for item in items):
            return GeminiReply.error(
                400,
                "INVALID_ARGUMENT",
                "* BatchGenerateContentRequest.batch.input_config: every inline request needs a request.\n"
                if items
                else "* BatchGenerateContentRequest.batch.input_config: input_config is required.\n",
            )
        job = self.batches.create(record.model, batch.get("displayName", ""), items, record.at)
        return GeminiReply(body=job.operation())

    def _batch_call(self, record: RecordedRequest, http: web.Request) -> GeminiReply:
        if record.kind == "batches.list":
            size, offset = self._page(http)
            if offset is None:
                return GeminiReply.error(400, "INVALID_ARGUMENT", "Invalid page token.")
            for job in self.batches.jobs.values():
                self.batches.tick(job, record.at)
            jobs, following = self.batches.page(size, offset)
            body: dict[str, Any] = {"operations": [job.operation() for job in jobs]}
            if following is not None:
                body["nextPageToken"] = page_token(following)
            return GeminiReply(body=body)
        job = self.batches.find(record.target)
        if job is None:
            return NOT_FOUND
        if record.kind == "batches.cancel":
            self.batches.cancel(job)
            return GeminiReply(body={})
        if record.kind == "batches.delete":
            del self.batches.jobs[job.name]
            return GeminiReply(body={})
        self.batches.tick(job, record.at)
        return GeminiReply(body=job.operation())

    def _complete_batch(self, job: BatchJob) -> list[dict[str, Any]]:
        """Answer each inline request as generateContent would (without rate limit or Flex), in input order."""
        results = []
        for item in job.items:
            record = RecordedRequest(
                method="POST",
                path=f"/v1beta/models/{job.model}:generateContent",
                query={},
                headers={},
                body=item["request"],
                size=0,
                at=self.clock(),
                model=job.model,
                kind="batch-item",
                style=self.style(),
                spec=self.specs.get(job.model, spec_for(job.model)),
            )
            self.batch_items.append(record)
            reply = self._validate(record, None) or self._answer(record, self.batch_script)
            payload = reply.body(record) if callable(reply.body) else reply.body
            if isinstance(payload, GeminiReply):
                reply, payload = payload, payload.body
            record.status = reply.status
            entry: dict[str, Any] = (
                {"response": payload} if reply.status == 200 else {"error": rpc_status(reply, record)}
            )
            record.response = payload
            if reply.status == 200:
                self._remember_signatures(payload)
            if "metadata" in item:
                entry["metadata"] = item["metadata"]
            results.append(entry)
        return results
