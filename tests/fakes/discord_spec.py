"""Discord's published API spec as JSON Schema: the fake Discord checks every request body the bot sends.

The spec (github.com/discord/discord-api-spec, MIT) is not committed here; the npm package `discord-api-spec`
ships it as zod schemas plus a route table, and `discord_openapi/dump.mjs` turns that into one JSON file. This
module installs the pinned packages (`npm ci`) and runs the dump once per machine, under a cache directory keyed
by the pinned files, then compiles a validator per route on first use.

Without node, npm or the registry, validation is skipped with a warning, except when CI=true: there the fake
refuses to start, so a CI run cannot silently lose the check.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError, relevance  # type: ignore[import-untyped]

from tests.fakes.discord_limits import ApiError

log = logging.getLogger(__name__)

PINNED = Path(__file__).with_name("discord_openapi")  # dump.mjs, package.json, package-lock.json
_PINNED_FILES = ("dump.mjs", "package.json", "package-lock.json")
_PASSED_MEMORY = 4096  # bodies remembered as valid
_RETRY_AFTER_FAILURE = 600  # seconds before another test run tries npm again
_NPM_OPTIONS = ("--no-audit", "--no-fund", "--ignore-scripts", "--fetch-retries=1", "--fetch-retry-mintimeout=1000")
_SNOWFLAKE = {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
# Discord's error codes for what JSON Schema reports (discord-api-docs, "Error Messages" / form errors).
_CODES = {
    "maxLength": ("BASE_TYPE_MAX_LENGTH", "Must be {limit} or fewer in length."),
    "maxItems": ("BASE_TYPE_MAX_LENGTH", "Must be {limit} or fewer in length."),
    "minLength": ("BASE_TYPE_MIN_LENGTH", "Must be {limit} or more in length."),
    "minItems": ("BASE_TYPE_MIN_LENGTH", "Must be {limit} or more in length."),
    "required": ("BASE_TYPE_REQUIRED", "This field is required"),
    "const": ("BASE_TYPE_CHOICES", "Value must be one of {limit}."),
    "enum": ("BASE_TYPE_CHOICES", "Value must be one of {limit}."),
    "maximum": ("NUMBER_TYPE_MAX", "int value should be less than or equal to {limit}."),
    "minimum": ("NUMBER_TYPE_MIN", "int value should be greater than or equal to {limit}."),
    "pattern": ("STRING_TYPE_REGEX", "String value did not match validation regex."),
    "type": ("BASE_TYPE_CONVERT", "Value is not of type {limit}."),
}


class SpecUnavailable(RuntimeError):
    """node, npm or the npm registry could not produce the spec."""


@dataclass
class _Route:
    method: str
    template: str  # as in the spec: "/channels/{channel_id}/messages"
    pattern: re.Pattern[str]
    literals: int  # more literal segments win: ".../messages/@original" over ".../messages/{message_id}"
    schema: dict[str, Any] | bool | None  # None: the route takes no body; True: the spec's type is not translated
    validator: jsonschema.protocols.Validator | None = None


class Spec:
    """The request bodies of Discord's API; `check` raises Discord's 400 for a body the spec refuses."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.source: dict[str, str] = document["source"]
        self._defs = _corrected(document["$defs"])
        self._routes: dict[tuple[str, int], list[_Route]] = {}
        self._passed: set[tuple[str, str, str]] = set()
        for key, schema in document["routes"].items():
            method, template = key.split(" ", 1)
            segments = template.strip("/").split("/")
            regex = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
            literals = sum(not s.startswith("{") for s in segments)
            route = _Route(method, template, re.compile(f"/{regex}"), literals, schema)
            self._routes.setdefault((method, len(segments)), []).append(route)
        for candidates in self._routes.values():
            candidates.sort(key=lambda r: -r.literals)

    def route(self, method: str, path: str) -> _Route | None:
        """The spec's route for a request path (without the /api/v10 prefix)."""
        candidates = self._routes.get((method, len(path.strip("/").split("/"))), [])
        return next((r for r in candidates if r.pattern.fullmatch(path)), None)

    def check(self, method: str, path: str, body: Any) -> None:
        """Raise `ApiError` (400, 50035) when `body` breaks the spec of `method path`; no body is never checked."""
        route = self.route(method, path)
        if route is None:
            raise SpecViolation(404, 0, f"{method} {path} is not in Discord's API spec")
        if body is None or route.schema is True:
            return
        if not isinstance(route.schema, dict):
            raise SpecViolation(400, 50035, f"{method} {route.template} takes no body")
        key = (method, route.template, json.dumps(body, sort_keys=True))
        if key in self._passed:  # a bot syncs the same commands in every test: 20 ms each to validate
            return
        if route.validator is None:  # compiled once per route, on first use
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": self._defs}
            schema.update(route.schema)
            route.validator = jsonschema.Draft202012Validator(schema)
        error = max(route.validator.iter_errors(body), key=relevance, default=None)
        if error is not None:
            raise _invalid_form_body(error)
        if len(self._passed) >= _PASSED_MEMORY:
            self._passed.clear()
        self._passed.add(key)


def _corrected(defs: dict[str, Any]) -> dict[str, Any]:
    """Where the zod translation is stricter than Discord, Discord's own behaviour (the fake must not refuse
    what Discord accepts)."""
    defs = dict(defs)
    # The spec types snowflakes as strings; Discord also takes integers, which discord.py sends (a reply's
    # message_reference, a DM's recipient_id).
    defs["SnowflakeType"] = {"anyOf": [_SNOWFLAKE, {"type": "integer", "minimum": 0}]}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            node = {key: walk(value) for key, value in node.items()}
            if node.get("format") == "date-time":
                # The OpenAPI spec says RFC 3339; zod's regex allows only "Z", not "+00:00" (discord.py's form).
                node["pattern"] = _RFC3339
            return node
        return [walk(item) for item in node] if isinstance(node, list) else node

    return {name: walk(schema) for name, schema in defs.items()}


class SpecViolation(ApiError):
    """A request Discord's API spec refuses (the fake answers it as Discord would, and fails the test)."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None, *, where: str = "",
        reason: str = "",
    ) -> None:  # fmt: skip
        super().__init__(status, code, message, errors)
        self.where, self.reason = where, reason or message


def _explain(error: ValidationError) -> tuple[ValidationError, str, str]:
    """The error to report and Discord's (code, message) for it; a union ("anyOf") is explained by the branch
    the body meant: the one whose `type` discriminator matched, else the list of allowed types."""
    if error.validator == "anyOf" and error.context:
        discriminators = [e for e in error.context if e.validator == "const" and list(e.relative_path) == ["type"]]
        ruled_out = {e.relative_schema_path[0] for e in discriminators}
        ruled_out |= {e.relative_schema_path[0] for e in error.context if e.validator == "type" and not e.relative_path}
        meant = [e for e in error.context if e.relative_schema_path[0] not in ruled_out]
        if meant:
            return _explain(min(meant, key=relevance))  # the deepest: what the body got furthest with
        if discriminators:
            allowed = ", ".join(str(v) for v in sorted({e.validator_value for e in discriminators}))
            type_error = discriminators[0]
            return type_error, "UNION_TYPE_CHOICES", f'Value of field "type" must be one of ({allowed}).'
        types = [e.validator_value for e in error.context if e.validator == "type"]
        if types:
            return error, "BASE_TYPE_CONVERT", f"Value must be of type {' or '.join(map(str, types))}."
    code, template = _CODES.get(str(error.validator), ("SCHEMA_INVALID", "{message}"))
    return error, code, template.format(limit=error.validator_value, message=error.message)


def _invalid_form_body(error: ValidationError) -> SpecViolation:
    error, code, message = _explain(error)
    if error.validator == "required":
        missing = re.match(r"'([^']+)' is a required property", error.message)
        path = [*error.absolute_path, missing.group(1) if missing else "?"]
    else:
        path = list(error.absolute_path)
    detail: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        detail = {str(key): detail}
    where = ".".join(str(key) for key in path) or "(body)"
    return SpecViolation(400, 50035, "Invalid Form Body", detail, where=where, reason=message[:300])


def load() -> Spec:
    """The spec, built on first use on this machine; raises `SpecUnavailable` when it cannot be built."""
    result = _load()
    if isinstance(result, SpecUnavailable):
        raise result
    return result


@functools.cache  # a failure too: one attempt per test process, not one per fake
def _load() -> Spec | SpecUnavailable:
    try:
        path = _build(_cache_dir())
    except SpecUnavailable as exc:
        return exc
    return Spec(json.loads(path.read_text()))


def forget() -> None:
    """Load again at the next use (a test that changes the environment the spec is built in)."""
    _load.cache_clear()
    _warn_once.cache_clear()


def spec_or_skip() -> Spec | None:
    """The spec, or None after a loud warning; under CI=true a missing spec is an error, never a skip."""
    try:
        return load()
    except SpecUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise SpecUnavailable(f"CI=true and Discord's API spec is unavailable: {exc}") from exc
        _warn_once(str(exc))
        return None


@functools.cache
def _warn_once(reason: str) -> None:
    warnings.warn(f"the fake Discord does NOT validate requests against Discord's API spec: {reason}", stacklevel=3)


def _cache_dir() -> Path:
    digest = hashlib.sha256()
    for name in _PINNED_FILES:
        digest.update((PINNED / name).read_bytes())
    version = json.loads((PINNED / "package.json").read_text())["dependencies"]["discord-api-spec"]
    key = f"discord-api-spec-{version}-{digest.hexdigest()[:12]}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    with contextlib.suppress(OSError):
        (base / "fake-discord").mkdir(parents=True, exist_ok=True)
        if os.access(base / "fake-discord", os.W_OK):
            return base / "fake-discord" / key
    return Path(tempfile.gettempdir()) / "fake-discord" / key


def _build(directory: Path) -> Path:
    out, failed = directory / "spec.json", directory / "failed"
    if out.exists():
        return out
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SpecUnavailable("node and npm are needed to build it (apt-get install nodejs npm)")
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory / ".lock"):  # test processes of several worktrees may start at once
        if out.exists():
            return out
        with contextlib.suppress(OSError):  # an unreachable registry costs a minute: not again at every run
            if time.time() - failed.stat().st_mtime < _RETRY_AFTER_FAILURE:
                raise SpecUnavailable(f"{failed.read_text()} (failed under {_RETRY_AFTER_FAILURE} s ago: {failed})")
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PINNED / name, directory / name)
        log.warning("building Discord's API spec for the fake Discord in %s (once per machine)", directory)
        try:
            _run([npm, "ci", "--prefix", str(directory), *_NPM_OPTIONS], 300)
            _run([node, str(PINNED / "dump.mjs"), str(directory), str(out)], 120)
        except SpecUnavailable as exc:
            failed.write_text(str(exc))
            raise
        failed.unlink(missing_ok=True)
    return out


def _run(command: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpecUnavailable(f"{Path(command[0]).name} failed: {exc}") from exc
    if done.returncode != 0:
        head = (done.stderr or done.stdout).strip().splitlines()[:4]  # npm puts the cause first
        raise SpecUnavailable(f"{Path(command[0]).name} {command[1]} exited {done.returncode}: " + " | ".join(head))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
