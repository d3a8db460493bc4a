"""The AI second opinion: a Gemini text model judges prompts that the local tier allowed.

Optional (`MODERATION_AI_MODEL`, empty = off). One `generateContent` call per prompt not seen before, asking for
a structured JSON answer through `responseSchema` — {category, confidence, reason} — with a short timeout
(`MODERATION_AI_TIMEOUT_SECONDS`). Only the text is sent, and the input images of an edit when
`MODERATION_AI_IMAGES=true`. Verdicts are cached by normalised prompt (a rephrasing with extra spaces, invisible
characters or look-alike letters costs nothing), errors are not. When the model cannot answer (timeout, HTTP
error, an answer that is not the JSON asked for), `MODERATION_AI_ON_ERROR` decides: `allow` (default: the local
tier already passed the prompt) or `block`.

Every call's cost is counted from `usageMetadata` (input tokens x input rate + output tokens x output rate, the
rates are settings) in `spent_usd`, and handed to `on_cost` with the server it was for, so that it counts in
spend like a generation (`bot.services` hands it to the quota ledger). Appeals of this tier's blocks are
re-checked by a second instance on `MODERATION_APPEAL_MODEL` with `APPEAL_SYSTEM` (`bot.moderation.appeals`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr

from bot.config import DEFAULTS
from bot.models import InputImage
from bot.moderation.filter import CATEGORIES, Verdict
from bot.moderation.text import normalise

log = logging.getLogger(__name__)

API_VERSION = "v1beta"
NONE = "none"
AI_UNAVAILABLE = "ai_unavailable"  # the category of a block under MODERATION_AI_ON_ERROR=block
LABELS = (NONE, *CATEGORIES)
MAX_REASON = 200
# The JSON answer asked for, as google-genai sends it for the same `response_schema` (checked in the tests).
RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "category": {"type": "STRING", "enum": list(LABELS)},
        "confidence": {"type": "NUMBER"},
        "reason": {"type": "STRING"},
    },
    "required": ["category", "confidence", "reason"],
    "property_ordering": ["category", "confidence", "reason"],
}
SYSTEM = (
    "You are the content moderator of a Discord bot that turns prompts into images. Judge only whether the image "
    "the prompt asks for would fall into one of these categories, in any language, however it is spelled or "
    "euphemised: csam (any sexual or sexualised depiction of minors), sexual (explicit sexual content, nudity), "
    "gore (graphic injury, mutilation, torture, dead bodies in detail), hate (slurs, dehumanising a group of "
    "people, glorifying extremist figures, groups or symbols), real_people_sexual (a real, named person in a "
    "sexual or nude depiction). Answer 'none' for everything else, including art, history, medicine, education, "
    "religious symbols in their religious context, idioms and ordinary violence in fiction. Give your confidence "
    "from 0 to 1 and a short reason in English, never repeating explicit words."
)
APPEAL_SYSTEM = (
    SYSTEM + " This prompt was blocked and its author appealed: read it charitably and answer 'none' unless the "
    "harmful reading is clearly the intended one."
)


@dataclass(frozen=True, slots=True)
class AICall:
    """One call to the model, for the cost ledger."""

    model: str
    guild_id: int | None  # the server the prompt came from (None: DMs, the CLI)
    prompt_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class AIJudgement:
    category: str  # NONE or one of `bot.moderation.CATEGORIES`
    confidence: float
    reason: str
    cached: bool = False
    error: str = ""  # why the model gave no answer; the verdict then follows ON_ERROR

    @property
    def harmful(self) -> bool:
        return self.category != NONE


class AIModerator:
    """A Gemini text model as a second opinion. The aiohttp session is the app's and is not closed here."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        model: str,
        *,
        base_url: str = DEFAULTS.gemini_base_url,
        timeout: float = DEFAULTS.moderation_ai_timeout_seconds,
        on_error: Literal["allow", "block"] = DEFAULTS.moderation_ai_on_error,
        images: bool = DEFAULTS.moderation_ai_images,
        min_confidence: float = DEFAULTS.moderation_ai_min_confidence,
        cache_size: int = DEFAULTS.moderation_ai_cache_size,
        input_usd_per_mtok: float = DEFAULTS.moderation_ai_input_usd_per_mtok,
        output_usd_per_mtok: float = DEFAULTS.moderation_ai_output_usd_per_mtok,
        system: str = SYSTEM,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.model = model.removeprefix("models/")
        self.url = f"{base_url.rstrip('/')}/{API_VERSION}/models/{self.model}:generateContent"
        self.timeout = timeout
        self.on_error = on_error
        self.images = images
        self.min_confidence = min_confidence
        self.cache_size = cache_size
        self.rates = (input_usd_per_mtok / 1e6, output_usd_per_mtok / 1e6)
        self.system = system
        self._cache: OrderedDict[str, AIJudgement] = OrderedDict()
        self.spent_usd = 0.0
        self.calls = 0
        self.on_cost: Callable[[AICall], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return f"AIModerator(model={self.model!r}, on_error={self.on_error!r})"

    async def judge(self, text: str, images: Sequence[InputImage] = (), *, guild_id: int | None = None) -> Verdict:
        """The second opinion as a `Verdict` of tier "ai" (allowed, or blocked with the model's reason)."""
        return self.verdict(await self.ask(text, images, guild_id=guild_id))

    def verdict(self, judgement: AIJudgement) -> Verdict:
        if judgement.error:
            if self.on_error == "block":
                why = f"the AI second opinion could not judge this prompt ({judgement.error}), so it is held back"
                return Verdict(False, AI_UNAVAILABLE, None, None, why, tier="ai", rule="on error: block")
            return Verdict(True, explanation=f"AI second opinion unavailable ({judgement.error})", tier="ai")
        if judgement.harmful and judgement.confidence >= self.min_confidence:
            # The model's own short reason: what the member reads, and the audit log's detail.
            why = judgement.reason or f"judged {judgement.category}"
            rule = f"{self.model}, confidence {judgement.confidence:.2f}"
            return Verdict(False, judgement.category, None, None, why, tier="ai", rule=rule)
        return Verdict(True, explanation=f"AI second opinion: {judgement.reason or 'no concern'}", tier="ai")

    async def ask(self, text: str, images: Sequence[InputImage] = (), *, guild_id: int | None = None) -> AIJudgement:
        """The model's judgement of `text` (and of `images` when allowed), from the cache when seen before;
        `guild_id` is whose spend the call counts in."""
        sent = tuple(images) if self.images else ()
        key = cache_key(text, sent)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return AIJudgement(cached.category, cached.confidence, cached.reason, cached=True)
        try:
            judgement = await asyncio.wait_for(self._call(text, sent, guild_id), self.timeout)
        except TimeoutError:
            return AIJudgement(NONE, 0.0, "", error=f"no answer within {self.timeout:g}s")
        except _NoAnswer as exc:
            return AIJudgement(NONE, 0.0, "", error=str(exc))
        self.remember(key, judgement)
        return judgement

    def remember(self, key: str, judgement: AIJudgement) -> None:
        """Put a verdict in the cache (an overturned appeal's), keyed like `cache_key`."""
        self._cache[key] = judgement
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _call(self, text: str, images: Sequence[InputImage], guild_id: int | None) -> AIJudgement:
        body = build_request(text, images, self.system)
        headers = {"x-goog-api-key": self._api_key.get_secret_value(), "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            async with self._session.post(self.url, json=body, headers=headers) as resp:
                status, raw = resp.status, await resp.read()
        except aiohttp.ClientError as exc:
            raise _NoAnswer(f"cannot reach Gemini: {type(exc).__name__}") from exc
        log.debug("moderation model %s answered %s in %.2fs", self.model, status, time.monotonic() - started)
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        if status != 200 or not isinstance(payload, dict):
            raise _NoAnswer(f"HTTP {status}")
        await self._count(payload.get("usageMetadata"), guild_id)
        return parse_response(payload)

    async def _count(self, usage: object, guild_id: int | None) -> None:
        usage = usage if isinstance(usage, dict) else {}
        prompt = _int(usage.get("promptTokenCount"))
        output = _int(usage.get("candidatesTokenCount")) + _int(usage.get("thoughtsTokenCount"))
        cost = prompt * self.rates[0] + output * self.rates[1]
        self.calls += 1
        self.spent_usd += cost
        if self.on_cost is not None:
            try:
                await self.on_cost(AICall(self.model, guild_id, prompt, output, cost))
            except Exception:  # a broken ledger must not change the verdict
                log.warning("recording the moderation model's cost failed", exc_info=True)


class _NoAnswer(Exception):
    """The model gave no usable judgement; the message says why (never the prompt or the key)."""


def cache_key(text: str, images: Sequence[InputImage] = ()) -> str:
    """The normalised prompt, and a digest of the images sent with it."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(hashlib.sha256(image.data).digest())
    return normalise(text) + ("\x00" + digest.hexdigest() if images else "")


def build_request(text: str, images: Sequence[InputImage] = (), system: str = SYSTEM) -> dict[str, Any]:
    """The generateContent body, shaped as google-genai shapes the same call (`response_schema`, JSON)."""
    parts: list[dict[str, Any]] = [{"text": f"Prompt to judge:\n{text}"}]
    parts += (
        {"inlineData": {"mimeType": image.mime_type, "data": base64.b64encode(image.data).decode()}} for image in images
    )
    return {
        "contents": [{"parts": parts, "role": "user"}],
        "systemInstruction": {"parts": [{"text": system}], "role": "user"},
        "generationConfig": {
            "temperature": 0.0,
            "maxOutputTokens": 256,
            "responseMimeType": "application/json",
            "responseSchema": RESPONSE_SCHEMA,
        },
    }


def parse_response(payload: dict[str, Any]) -> AIJudgement:
    """The JSON answer inside a generateContent response; `_NoAnswer` when there is none."""
    feedback = payload.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise _NoAnswer(f"Google refused the prompt ({feedback['blockReason']})")
    try:
        parts = payload["candidates"][0]["content"]["parts"]
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
        answer = json.loads(text)
        category = str(answer["category"]).strip().lower()
        confidence = float(answer["confidence"])
        reason = " ".join(str(answer.get("reason", "")).split())
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise _NoAnswer("the answer was not the JSON asked for") from None
    if category not in LABELS:
        raise _NoAnswer(f"unknown category {category[:40]!r}")
    reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
    return AIJudgement(category, min(max(confidence, 0.0), 1.0), reason)


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0
