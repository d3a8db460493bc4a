"""What both OpenAI-compatible kinds share: the HTTP call with Bearer auth, OpenAI's error envelope mapped into
`bot.errors`, result urls downloaded safely, data URLs decoded, and the returned picture's size checked.

Every error raised here says whether the provider may have billed the attempt (`billing.mark_billed`): a
connection that never opened was not billed, an answer the bot could not use was.
"""

from __future__ import annotations

import binascii
import email.utils
import io
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import pybase64
from PIL import Image, UnidentifiedImageError

from bot.editing.images import sniff_mime
from bot.errors import (
    OperatorError,
    PromptBlocked,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.models import Context, GeneratedImage, ImageOptions, InputImage, Usage
from bot.providers.billing import mark_billed
from bot.providers.config import ProviderConfig

log = logging.getLogger(__name__)

RESULT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
# Codes and types gateways use for a prompt or picture their safety system refused (OpenAI, Azure, OpenRouter).
POLICY_CODES = frozenset(
    {"content_policy_violation", "moderation_blocked", "content_filter", "safety_violation", "image_safety"}
)
# OpenAI-style 400/422s that say our request was wrong (not the setup): the next provider would refuse it too.
BAD_REQUEST_STATUSES = frozenset({400, 413, 422})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 3
_MAX_DETAIL = 500
# Separate from the attempt timeout so that a connection that never opened (not billed) is told apart from an
# answer that never came (maybe billed); a handshake slower than this on a working network does not happen.
CONNECT_TIMEOUT_SECONDS = 10.0
_RATIO_TOLERANCE = 0.05  # Gemini's own sizes are up to 2.8 % off their nominal ratio (864x1184 for 3:4)


def endpoint(base_url: str, path: str) -> str:
    """`{base}/v1/{path}`; a base that already ends in /v1 (as the OpenAI SDK's base_url does) is not doubled."""
    base = base_url.rstrip("/")
    return f"{base}/{path}" if base.endswith("/v1") else f"{base}/v1/{path}"


class OpenAICompatible:
    """The shared half of both kinds. The aiohttp session is the app's and is not closed here."""

    kind = ""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: ProviderConfig,
        *,
        model: str,
        attempt_timeout: float = 60.0,
        download_max_bytes: int = 30 * 1024 * 1024,
        download_timeout: float = 20.0,
    ) -> None:
        if config.api_key is None:
            raise ValueError(f"provider {config.name} has no API key")
        self._session = session
        self._api_key = config.api_key
        self.config = config
        self.name = config.name
        self.model = model
        self.attempt_timeout = attempt_timeout
        self.download_max_bytes = download_max_bytes
        self.download_timeout = download_timeout
        self._mismatches: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, base_url={self.config.base_url!r})"

    async def post(
        self, path: str, *, json_body: Any = None, body: bytes | None = None, form: aiohttp.FormData | None = None
    ) -> dict:
        """One HTTP attempt with a JSON body (`json_body`, or `body` already encoded) or a multipart `form`; the
        answer's JSON object, or an `UpstreamError` that says whether it may be billed."""
        url = endpoint(self.config.base_url, path)
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            async with self._session.post(
                url,
                json=json_body,
                data=form if form is not None else body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.attempt_timeout, sock_connect=min(CONNECT_TIMEOUT_SECONDS, self.attempt_timeout)
                ),
                allow_redirects=False,  # a redirect would carry the key to wherever it points
            ) as resp:
                status, raw, resp_headers = resp.status, await resp.read(), resp.headers
        except aiohttp.ConnectionTimeoutError:
            raise self._billed(UpstreamTimeout(f"{self.name}: no connection within the timeout"), False) from None
        except TimeoutError:
            # The request was sent and nothing came back in time: the gateway may still make (and bill) it.
            raise self._billed(
                UpstreamTimeout(f"no answer from {self.name} within {self.attempt_timeout:g}s"), True
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise self._billed(UpstreamUnavailable(f"cannot reach {self.name}: {exc.os_error}"), False) from exc
        except aiohttp.ClientError as exc:
            # The connection broke after the request went out (the key travels in a header, never in this text).
            raise self._billed(UpstreamUnavailable(f"{self.name}: {type(exc).__name__}: {exc}"), True) from exc
        log.debug(
            "%s %s answered %s (%d bytes) in %.2fs", self.name, path, status, len(raw), time.monotonic() - started
        )
        secret = self._api_key.get_secret_value().encode()
        if secret in raw:  # some gateways quote the key they refused
            raw = raw.replace(secret, b"[redacted]")
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        if status != 200 or (isinstance(payload, dict) and isinstance(payload.get("error"), dict | str)):
            raise self._billed(error_from_response(self.name, status, payload, raw, resp_headers), False)
        if not isinstance(payload, dict):
            raise self._billed(UpstreamUnavailable(f"malformed answer from {self.name}: not a JSON object"), True)
        return payload

    def prepare(
        self, prompt: str, images: tuple[InputImage, ...], options: ImageOptions | None, context: Context | None
    ) -> tuple[str, tuple[InputImage, ...], str | None, str]:
        """The prompt, images, ratio and remote model id one attempt sends."""
        if context is not None:  # a gateway keeps no model turns: a stateless edit
            prompt, images = context.stateless(images)
        ratio = options.aspect_ratio if options is not None else None
        # The chain hands over our model id already mapped to this provider's (PROVIDER_N_MODELS).
        remote = options.model if options is not None and options.model else self.config.remote_model(self.model)
        return prompt, images, ratio, remote

    async def fetch_url(self, url: str) -> bytes:
        """A result given as a url: a data URL decoded, anything else downloaded."""
        return self.decode_data_url(url) if url.startswith("data:") else await self.download(url)

    def finish(
        self,
        payload: Mapping[str, Any],
        data: bytes,
        remote: str,
        ratio: str | None,
        size: str | None,
        text: str | None = None,
    ) -> GeneratedImage:
        """The returned picture checked (type, size) with the answer's usage and model (else the one asked for)."""
        mime = self.image_bytes(data)
        self.check_size(data, ratio, size)
        usage, cost = usage_of(payload)
        model = payload.get("model")
        return GeneratedImage(
            data,
            mime,
            model if isinstance(model, str) and model else remote,
            text=text,
            usage=usage,
            provider=self.name,
            cost_usd=cost,
        )

    async def download(self, url: str) -> bytes:
        """A result url's bytes: https only (unless ALLOW_HTTP), redirects checked the same way, size-limited,
        timed out. The API key is never sent there."""
        for _ in range(_MAX_REDIRECTS + 1):
            scheme = urlsplit(url).scheme
            if scheme != "https" and not (scheme == "http" and self.config.allow_http):
                raise self._billed(UpstreamUnavailable(f"{self.name} returned a result url that is not https"), True)
            try:
                async with self._session.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=self.download_timeout)
                ) as resp:
                    if resp.status in REDIRECTS and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    if resp.status != 200:
                        raise self._billed(
                            UpstreamUnavailable(f"{self.name}'s result url answered {resp.status}"), True
                        )
                    if resp.content_length is not None and resp.content_length > self.download_max_bytes:
                        raise self._too_big()
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        data += chunk
                        if len(data) > self.download_max_bytes:
                            raise self._too_big()
                    return bytes(data)
            except TimeoutError:
                raise self._billed(
                    UpstreamTimeout(f"{self.name}'s result did not download within {self.download_timeout:g}s"), True
                ) from None
            except aiohttp.ClientError as exc:
                raise self._billed(
                    UpstreamUnavailable(f"{self.name}'s result url failed: {type(exc).__name__}"), True
                ) from exc
        raise self._billed(UpstreamUnavailable(f"{self.name}'s result url redirected too often"), True)

    def image_bytes(self, data: bytes) -> str:
        """The type of a returned picture, judged by its bytes; anything else is an unusable (billed) answer."""
        mime = sniff_mime(data)
        if mime is None or mime not in RESULT_TYPES:
            raise self._billed(UpstreamUnavailable(f"{self.name} returned something that is not an image"), True)
        return mime

    def decode_data_url(self, url: str) -> bytes:
        """`data:image/png;base64,...`: split at the first comma; the declared type is not trusted."""
        header, comma, data = url.partition(",")
        if not header.startswith("data:") or not header.endswith(";base64") or not comma:
            raise self._billed(
                UpstreamUnavailable(f"{self.name} returned an image that is not a base64 data URL"), True
            )
        return self.decode_base64(data)

    def decode_base64(self, data: str) -> bytes:
        try:
            return pybase64.b64decode(data, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise self._billed(
                UpstreamUnavailable(f"{self.name} returned image data that is not base64"), True
            ) from None

    def check_size(self, data: bytes, ratio: str | None, size: str | None) -> None:
        """Gateways may ignore the ratio or size asked for; the picture goes out anyway, and the operator reads
        which provider and request differ (once per combination, so a gateway that always does it is one line)."""
        if ratio is None and size is None:
            return
        try:
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError):
            raise self._billed(UpstreamUnavailable(f"{self.name} returned a damaged image"), True) from None
        wanted = _pixels(size)
        if wanted is not None:
            ok = wanted == (width, height)
        elif ratio is not None:
            w, _, h = ratio.partition(":")
            ok = abs((width / height) / (int(w) / int(h)) - 1) <= _RATIO_TOLERANCE
        else:
            return
        asked = size or ratio or ""
        if not ok and (asked, f"{width}x{height}") not in self._mismatches:
            self._mismatches.add((asked, f"{width}x{height}"))
            log.warning(
                "%s returned a %dx%d picture for a request of %s (ratio %s); the gateway may fix the size "
                "(see PROVIDER_%s_SIZE_MAP)",
                self.name,
                width,
                height,
                asked,
                ratio,
                self.name.upper(),
            )

    def _too_big(self) -> UpstreamError:
        limit = self.download_max_bytes // (1024 * 1024)
        return self._billed(UpstreamUnavailable(f"{self.name}'s result is larger than {limit} MB"), True)

    @staticmethod
    def _billed(exc: UpstreamError, billed: bool) -> UpstreamError:
        return mark_billed(exc, billed)


def error_from_response(
    name: str, status: int, payload: Any, raw: bytes, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """Map a failed answer in OpenAI's envelope (`{"error": {"message", "type", "param", "code"}}`, which
    OpenRouter also sends with a 200) into the bot's hierarchy."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {"message": error} if isinstance(error, str) else {}
    if status == 200:  # the status is in the body then (OpenRouter)
        in_body = error.get("code")
        status = in_body if isinstance(in_body, int) else 502
    message = str(error.get("message") or raw[:200].decode("utf-8", "replace")).strip()
    code = str(error.get("code") or error.get("type") or "")
    codes = {str(error.get("code") or "").lower(), str(error.get("type") or "").lower()}
    summary = f"{name} answered {status} {code}: {message}"[:_MAX_DETAIL]
    if status == 429:
        if "insufficient_quota" in codes:  # out of credits, not too fast: waiting will not help
            return OperatorError(f"{name} has no credit left; {summary}", status=429, reason="insufficient_quota")
        return RateLimited(summary, retry_after(headers or {}))
    if codes & POLICY_CODES or "safety system" in message.lower() or (status == 403 and "flagged" in message):
        return PromptBlocked(code or "content_policy_violation", message[:_MAX_DETAIL])
    if status in BAD_REQUEST_STATUSES:
        return OperatorError(summary, status=status, reason="bad_request")
    if status == 408 or status >= 500:
        return UpstreamUnavailable(summary)
    reasons = {401: "auth", 403: "auth", 402: "payment", 404: "not_found"}
    return OperatorError(summary, status=status, reason=reasons.get(status, code or None))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when neither says."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _header(headers, name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        if scale == 1.0:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            return max(0.0, when.timestamp() - time.time())
    return None


def usage_of(payload: Mapping[str, Any]) -> tuple[Usage, float | None]:
    """Token counts in either API's names, and `usage.cost` in USD when the gateway reports it (OpenRouter)."""
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else {}

    def count(*keys: str) -> int:
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return 0

    cost = usage.get("cost")
    return (
        Usage(
            prompt_tokens=count("prompt_tokens", "input_tokens"),
            output_tokens=count("completion_tokens", "output_tokens"),
            total_tokens=count("total_tokens"),
        ),
        float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0 else None,
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _pixels(size: str | None) -> tuple[int, int] | None:
    w, x, h = (size or "").partition("x")
    return (int(w), int(h)) if x and w.isdigit() and h.isdigit() else None
