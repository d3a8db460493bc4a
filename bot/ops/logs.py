"""Log output: text for people, JSON lines for machines (`LOG_FORMAT`), a request id on every line of a request,
and secrets redacted from the final line.

The request id lives in a `ContextVar`: `with request_context():` at a door sets it, and every line logged while
that request runs carries it, including lines from tasks created inside the block (asyncio copies the context
into each new task). discord.py runs each event in a task of its own, so one event's id never leaks into another.

Redaction runs on the finished line, after the message was formatted and the traceback appended, so a secret
inside an exception's message, a repr, a URL or a chained traceback is replaced all the same. Each secret is
searched in the forms it takes in a line: as is, JSON-escaped, percent-encoded and repr-escaped. The handler's own
error path (a record that fails to format) writes a fixed line instead of the record, since the standard one
prints the record's arguments to stderr unredacted. Every `SecretStr` in the settings is a secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr

REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(request_tag)s: %(message)s"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """Short enough to read in a line, long enough (48 random bits) not to repeat within a log's life."""
    return uuid.uuid4().hex[:12]


def current_request_id() -> str | None:
    return request_id.get()


@contextmanager
def request_context(rid: str | None = None) -> Iterator[str]:
    """Every line logged inside the block (and in tasks started inside it) carries this request id."""
    value = rid or new_request_id()
    token = request_id.set(value)
    try:
        yield value
    finally:
        request_id.reset(token)


def secrets_of(settings: BaseModel) -> list[str]:
    """Every `SecretStr` value of a settings object."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append(value.get_secret_value())
    return found


# The ways a secret gets written inside a line: JSON strings (both escapings), URLs, reprs.
_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: quote(s, safe=""),
    quote_plus,
    lambda s: repr(s)[1:-1],
)
ENCODING_DEPTH = 3  # e.g. a JSON body quoted in an exception's repr, inside a JSON log line


class Redactor:
    """Replaces each secret, in every form it can take inside a log line, by `[redacted]`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            layer = {secret}
            for _ in range(ENCODING_DEPTH):
                forms |= layer
                layer = {encode(form) for form in layer for encode in _ENCODINGS} - forms
            forms |= layer
        # Longest first, so a secret that contains another is replaced whole. Case-insensitive, because
        # percent-encoding may come back with lower-case hex; redacting a case variant too is harmless.
        ordered = sorted((f for f in forms if f), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text


def _request_id_of(record: logging.LogRecord) -> str | None:
    # `extra={"request_id": ...}` wins; otherwise the request being handled where the line was logged.
    return getattr(record, "request_id", None) or current_request_id()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, exc (the formatted traceback).
    `redact` runs on the message and the traceback before they are JSON-encoded (the handler redacts the final
    line again): a secret escaped in a message becomes escaped twice in the line, and both must be caught."""

    def __init__(self, redact: Callable[[str], str] = str) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        exc = None
        if record.exc_info:
            exc = self.formatException(record.exc_info)
        elif record.exc_text:
            exc = record.exc_text
        if record.stack_info:
            exc = (exc + "\n" if exc else "") + self.formatStack(record.stack_info)
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
            "request_id": _request_id_of(record),
            "exc": None if exc is None else self.redact(exc),
        }
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with ` [request id]` after the logger's name while a request is handled."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        rid = _request_id_of(record)
        record.request_tag = f" [{rid}]" if rid else ""
        return super().format(record)


class RedactingHandler(logging.StreamHandler[IO[str]]):
    """A stream handler whose every output, including its own error report, went through the redactor."""

    def __init__(self, redactor: Redactor, formatter: logging.Formatter, stream: IO[str] | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.redactor = redactor
        self.setFormatter(formatter)

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter caches the unredacted traceback on the record; don't leave it for another handler.
        cached = record.exc_text
        try:
            return self.redactor(super().format(record))
        finally:
            record.exc_text = cached

    def handleError(self, record: logging.LogRecord) -> None:
        # The standard version prints the record's message and arguments: exactly what may hold a secret.
        kind = type(sys.exc_info()[1]).__name__
        try:
            self.stream.write(f"logging failed ({kind}) for a record of {record.name!r}; the line was dropped\n")
            self.flush()
        except Exception:
            pass


def make_handler(fmt: str = "text", secrets: Iterable[str] = (), stream: IO[str] | None = None) -> RedactingHandler:
    redactor = Redactor(secrets)
    formatter: logging.Formatter = JsonFormatter(redactor) if fmt == "json" else TextFormatter()
    return RedactingHandler(redactor, formatter, stream)


def configure_logging(
    settings: Any | None = None,
    *,
    level: str = "INFO",
    fmt: str = "text",
    stream: IO[str] | None = None,
    extra_secrets: Iterable[str] = (),
) -> RedactingHandler:
    """Route every log line of the process through one redacting handler; settings, when given, decide the level,
    the format and the secrets. Uncaught exceptions and warnings go through it too (they would otherwise be
    printed to stderr as they are)."""
    secrets = list(extra_secrets)
    if settings is not None:
        secrets += secrets_of(settings)
        level = settings.log_level
        fmt = getattr(settings, "log_format", fmt)
    handler = make_handler(fmt, secrets, stream)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    _route_uncaught_exceptions()
    return handler


def _route_uncaught_exceptions() -> None:
    crash_log = logging.getLogger("bot.crash")

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        crash_log.critical("uncaught exception", exc_info=(kind, exc, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            crash_log.critical(
                "uncaught exception in thread %s",
                args.thread.name if args.thread else "?",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
