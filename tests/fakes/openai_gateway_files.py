"""The gateway's `url` results: pictures kept under signed, blob-storage-like URLs on the fake's own server (plain
http on 127.0.0.1), each fetch recorded as a `Download`, with switches for an expired link, a lying
Content-Type and a slow transfer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.openai_gateway_replies import Download
from tests.fakes.openai_gateway_schema import sniff

PATH = "/files/"


@dataclass
class StoredFile:
    data: bytes
    signature: str
    status: int  # what a fetch answers (403: the link expired)
    delay: float
    content_type: str


class FileStore:
    def __init__(self, clock: Callable[[], float], pause: Callable[[float], Awaitable[None]]) -> None:
        self.clock = clock
        self.pause = pause
        self.files: dict[str, StoredFile] = {}
        self.downloads: list[Download] = []

    def put(self, base: str, data: bytes, *, status: int, delay: float, content_type: str | None) -> str:
        """Keeps `data` and answers its URL under `base`."""
        token, signature = secrets.token_hex(8), secrets.token_hex(16)
        kind = sniff(data) or "application/octet-stream"
        name = token + {"image/png": ".png", "image/jpeg": ".jpg"}.get(kind, "")
        self.files[name] = StoredFile(data, signature, status, delay, content_type or kind)
        # Signed like a blob-storage URL: a client must keep the query string.
        return f"{base}{PATH}{name}?se=2099-01-01T00%3A00%3A00Z&sp=r&sig={signature}"

    async def serve(self, http: web.Request) -> web.StreamResponse:
        record = Download(
            path=http.path,
            headers={k.lower(): v for k, v in http.headers.items() if k.lower() != "authorization"},
            authorization_sent="Authorization" in http.headers,
            at=self.clock(),
        )
        self.downloads.append(record)
        stored = self.files.get(http.path.removeprefix(PATH))
        try:
            if http.method != "GET" or stored is None or http.query.get("sig") != stored.signature:
                record.status = 403 if stored is not None else 404
                return _blob_error(record.status)
            await self.pause(stored.delay)
            record.status = stored.status
            if stored.status != 200:
                return _blob_error(stored.status)
            return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})
        except asyncio.CancelledError:
            record.cancelled = True
            raise


def _blob_error(status: int) -> web.Response:
    """What blob storage answers for a missing, expired or unsigned url."""
    code = {404: "BlobNotFound", 403: "AuthenticationFailed"}.get(status, "InternalError")
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
    return web.Response(status=status, body=body.encode(), content_type="application/xml")
