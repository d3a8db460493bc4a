"""Log output through the real logging machinery: JSON lines with their fields, one request id per request across
tasks, and no secret in any form in any line (messages, exceptions, chained tracebacks, the handler's own error
path, uncaught exceptions)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import uuid
import warnings
from urllib.parse import quote

import pytest

from bot.config import Settings
from bot.ops.logs import (
    REDACTED,
    configure_logging,
    current_request_id,
    make_handler,
    request_context,
    secrets_of,
)

TOKEN = "tok-Very.Secret_123456"
# Characters that JSON, URLs and reprs each write differently.
KEY = 'kéy/with"quote\\and+plus&amp'
SECRETS = (TOKEN, KEY)


def forms(secret: str) -> set[str]:
    """The secret as is and written once or twice over as a JSON string or in a URL."""
    found = {secret}
    for _ in range(2):
        found |= {json.dumps(f)[1:-1] for f in found} | {json.dumps(f, ensure_ascii=False)[1:-1] for f in found}
        found |= {quote(f, safe="") for f in found}
    return found


def leaks(text: str) -> list[str]:
    return [form for secret in SECRETS for form in forms(secret) if form in text]


@pytest.fixture
def capture():
    """(logger, stream, handler factory): a private logger whose lines land in `stream`."""
    logger = logging.getLogger(f"test.ops.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stream = io.StringIO()

    def use(fmt: str) -> logging.Logger:
        logger.handlers.clear()
        logger.addHandler(make_handler(fmt, SECRETS, stream))
        return logger

    yield use, stream
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_every_field(capture):
    use, stream = capture
    log = use("json")
    log.info("generated %s images for %s", 2, "imagine")
    try:
        {}["missing"]
    except KeyError:
        log.exception("delivery failed")
    first, second = lines(stream)
    assert set(first) == {"ts", "level", "logger", "message", "request_id", "exc"}
    assert first["message"] == "generated 2 images for imagine" and first["level"] == "INFO"
    assert first["logger"] == log.name and first["ts"].endswith("+00:00")
    assert first["request_id"] is None and first["exc"] is None
    assert second["level"] == "ERROR" and second["exc"].startswith("Traceback (most recent call last)")
    assert "KeyError: 'missing'" in second["exc"]


async def test_one_request_id_follows_a_request_through_its_tasks(capture):
    use, stream = capture
    log = use("json")

    async def handle(name: str) -> str:
        with request_context() as rid:
            log.info("%s accepted", name)
            await asyncio.sleep(0)  # let the other request interleave
            await asyncio.create_task(worker(name))  # a task started inside carries the id
            log.info("%s delivered", name)
            return rid

    async def worker(name: str) -> None:
        await asyncio.sleep(0)
        log.info("%s generating", name)

    first, second = await asyncio.gather(handle("a"), handle("b"))
    log.info("idle")
    by_request: dict[str | None, list[str]] = {}
    for line in lines(stream):
        by_request.setdefault(line["request_id"], []).append(line["message"])
    assert first != second
    assert by_request == {
        first: ["a accepted", "a generating", "a delivered"],
        second: ["b accepted", "b generating", "b delivered"],
        None: ["idle"],
    }
    assert current_request_id() is None


def test_text_lines_show_the_request_id(capture):
    use, stream = capture
    log = use("text")
    with request_context("abc123"):
        log.warning("slow upstream")
    log.warning("outside")
    inside, outside = stream.getvalue().splitlines()
    assert f"{log.name} [abc123]: slow upstream" in inside
    assert f"{log.name}: outside" in outside and "[" not in outside.split(log.name)[1]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_reach_the_output(capture, fmt):
    use, stream = capture
    log = use(fmt)
    log.info("Authorization: Bot %s", TOKEN)
    log.info("url https://example.test/v1?key=%s", quote(KEY, safe=""))
    log.info("as a repr: %r", {"key": KEY})
    try:
        try:
            raise ConnectionError(f"refused for key={KEY}")
        except ConnectionError as inner:
            raise RuntimeError(f"while sending {TOKEN}") from inner
    except RuntimeError:
        log.exception("request failed")
    try:
        raise ValueError(json.dumps({"token": TOKEN, "key": KEY}))
    except ValueError as exc:
        log.error("bad answer", exc_info=exc)
    output = stream.getvalue()
    assert leaks(output) == [], output
    assert output.count(REDACTED) == 7
    assert "refused for key=" in output and "while sending" in output  # the rest of each line survives
    if fmt == "json":
        assert len(lines(stream)) == 5


def test_a_record_that_fails_to_format_is_dropped_without_its_arguments(capture, capsys):
    use, stream = capture
    log = use("json")
    log.info("%d tokens", TOKEN)  # wrong type: formatting raises inside the handler
    output = stream.getvalue() + capsys.readouterr().err
    assert leaks(output) == []
    assert "logging failed (TypeError)" in output


def test_every_secret_setting_is_a_secret():
    settings = Settings(_env_file=None, discord_token=TOKEN, gemini_api_key=KEY)
    assert sorted(secrets_of(settings)) == sorted(SECRETS)
    assert secrets_of(Settings(_env_file=None)) == []


@pytest.fixture
def global_logging():
    """configure_logging changes the process: put the root logger and the hooks back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    sys.excepthook, threading.excepthook = saved[2], saved[3]
    logging.captureWarnings(False)


def test_configure_from_settings_redacts_uncaught_exceptions_and_warnings(global_logging):
    stream = io.StringIO()
    settings = Settings(_env_file=None, discord_token=TOKEN, gemini_api_key=KEY, log_format="json")
    configure_logging(settings, stream=stream)
    logging.getLogger("discord.http").info("sent %s", TOKEN)
    try:
        raise OSError(f"connect failed, key {KEY}")
    except OSError:
        sys.excepthook(*sys.exc_info())  # what the interpreter calls for an exception nobody caught
    thread = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError(TOKEN)), name="worker")
    thread.start()
    thread.join()
    warnings.warn(f"deprecated call with {TOKEN}", UserWarning, stacklevel=1)
    records = lines(stream)
    assert leaks(stream.getvalue()) == []
    assert [r["logger"] for r in records] == ["discord.http", "bot.crash", "bot.crash", "py.warnings"]
    assert "OSError: connect failed, key [redacted]" in records[1]["exc"]
    assert records[2]["message"] == "uncaught exception in thread worker"
