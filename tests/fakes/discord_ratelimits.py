"""Discord's rate limits in the fake: per-route buckets, the global limit, 429s shaped as Discord sends them,
and the count of invalid requests that gets an IP banned by Cloudflare.

Discord documents the mechanism, not the numbers: the defaults of `RateLimits` are the commonly observed figures
(/work/shared/reference/discord-e2e.md, "Discord's rate limits"). Windows are fixed, as Discord's are: a bucket
opens with its first request and refills all at once `per` seconds later. They run on real time (discord.py
sleeps for real), shrunk by `time_factor`, never on the fake's `advance()` clock.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.fakes.discord_limits import ApiError

# Interaction callbacks have no bucket at all; they and interaction webhooks are exempt from the global limit.
CALLBACK_PREFIX = "POST /interactions/"
_INTERACTION_WEBHOOK_ROUTES = (
    "POST /webhooks/{application_id}/{token}",
    "GET /webhooks/{application_id}/{token}/messages/{message_id}",
    "PATCH /webhooks/{application_id}/{token}/messages/{message_id}",
    "DELETE /webhooks/{application_id}/{token}/messages/{message_id}",
)
_MAJOR = ("channel_id", "guild_id", "token")  # what discord.py (and Discord) key a bucket by, besides its hash


@dataclass(frozen=True)
class Window:
    limit: int
    per: float  # seconds, before `time_factor`


@dataclass(frozen=True)
class RateLimits:
    """The fake's rate limits. `FakeDiscord(rate_limits=RateLimits(time_factor=0.1))` keeps the counts and
    shrinks every window tenfold; `rate_limits=None` turns them off."""

    message_create: Window = Window(5, 5.0)  # per channel
    message_edit: Window = Window(5, 5.0)  # per channel
    message_delete: Window = Window(5, 1.0)  # per channel
    interaction_webhook: Window = Window(5, 2.0)  # per token: followups, @original and followup edits/deletes
    other_routes: Window = Window(50, 1.0)  # every other route, per route and channel/guild
    global_limit: Window = Window(50, 1.0)  # per bot, all routes but interaction callbacks and webhooks
    invalid_requests: Window = Window(10_000, 600.0)  # 401, 403 and 429 answers before Cloudflare bans the IP
    ban_seconds: float = 3600.0
    time_factor: float = 1.0

    def bucket(self, route: str) -> tuple[str, Window] | None:
        """The bucket's name and window for a route of the fake ("POST /channels/{channel_id}/messages")."""
        if route.startswith(CALLBACK_PREFIX):
            return None
        named = {
            "POST /channels/{channel_id}/messages": ("message_create", self.message_create),
            "PATCH /channels/{channel_id}/messages/{message_id}": ("message_edit", self.message_edit),
            "DELETE /channels/{channel_id}/messages/{message_id}": ("message_delete", self.message_delete),
        }
        if route in named:
            return named[route]
        if route in _INTERACTION_WEBHOOK_ROUTES:
            return "interaction_webhook", self.interaction_webhook
        return route, self.other_routes


class TooManyRequests(ApiError):
    """A 429 as Discord's edge sends it (`Via`, `Retry-After`, `X-RateLimit-Scope`), or Cloudflare's ban."""

    def __init__(
        self, retry_after: float, *, scope: str, headers: Mapping[str, str] | None = None, banned: bool = False
    ) -> None:
        message = "You are being rate limited." if not banned else "error code: 1015"
        super().__init__(429, 0 if not banned else 1015, message, retry_after=round(retry_after, 3))
        self.is_global = scope == "global"
        self.banned = banned  # Cloudflare answers text without `Via`: discord.py raises instead of retrying
        self.headers = {
            **(headers or {}),
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": scope,
        }
        if self.is_global:
            self.headers["X-RateLimit-Global"] = "true"
        if not banned:
            self.headers["Via"] = "1.1 google"  # discord.py retries only what came through Discord's edge

    def body(self) -> dict[str, object]:
        return {**super().body(), "global": self.is_global}


@dataclass
class _Bucket:
    resets_at: float = 0.0
    used: int = 0


@dataclass
class RateLimiter:
    limits: RateLimits | None
    invalid_total: int = 0  # every 401, 403 and 429 the fake answered
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _global: _Bucket = field(default_factory=_Bucket)
    _invalid_at: deque[float] = field(default_factory=deque)
    _banned_until: float = 0.0

    def configure(self, limits: RateLimits | None) -> None:
        """New limits from now on, with fresh buckets (the count of invalid requests stays)."""
        self.limits = limits
        self._buckets.clear()
        self._global = _Bucket()
        self._invalid_at.clear()
        self._banned_until = 0.0

    def admit(self, route: str, params: Mapping[str, str]) -> dict[str, str]:
        """Count a request against its buckets: the X-RateLimit headers of its answer, or `TooManyRequests`."""
        limits = self.limits
        if limits is None:
            return {}
        now = time.monotonic()
        if now < self._banned_until:
            raise TooManyRequests(self._banned_until - now, scope="global", banned=True)
        found = limits.bucket(route)
        if found is None:
            return {}
        name, window = found
        major = next((params[key] for key in _MAJOR if key in params), "")
        bucket = self._buckets.setdefault((name, major), _Bucket())
        per = window.per * limits.time_factor
        if now >= bucket.resets_at:
            bucket.resets_at, bucket.used = now + per, 0
        reset_after = math.ceil((bucket.resets_at - now) * 1000) / 1000  # never early: discord.py trusts it
        headers = {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(max(0, window.limit - bucket.used - 1)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.md5(name.encode()).hexdigest(),  # noqa: S324  (an id, not a secret)
        }
        if bucket.used >= window.limit:
            raise TooManyRequests(reset_after, scope="user", headers={**headers, "X-RateLimit-Remaining": "0"})
        if route not in _INTERACTION_WEBHOOK_ROUTES:
            self._take_global(now, limits)
        bucket.used += 1
        return headers

    def _take_global(self, now: float, limits: RateLimits) -> None:
        if now >= self._global.resets_at:
            self._global.resets_at, self._global.used = now + limits.global_limit.per * limits.time_factor, 0
        if self._global.used >= limits.global_limit.limit:
            raise TooManyRequests(self._global.resets_at - now, scope="global")
        self._global.used += 1

    def answered(self, status: int) -> None:
        """Count an invalid request (401, 403, 429); too many in the window and Cloudflare bans the IP."""
        if status not in (401, 403, 429):
            return
        self.invalid_total += 1
        limits = self.limits
        if limits is None:
            return
        now = time.monotonic()
        self._invalid_at.append(now)
        window = limits.invalid_requests
        while self._invalid_at and self._invalid_at[0] <= now - window.per * limits.time_factor:
            self._invalid_at.popleft()
        if len(self._invalid_at) >= window.limit:
            self._banned_until = now + limits.ban_seconds * limits.time_factor
            self._invalid_at.clear()
