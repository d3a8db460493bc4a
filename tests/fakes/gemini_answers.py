"""How the fake Gemini builds a 200 body: the request it answers (`RecordedRequest`), the server-wide answer
switches (`AnswerStyle`), picture parts with thoughts and signatures, and usageMetadata as Google counts it."""

from __future__ import annotations

import base64
import io
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_images import picture
from tests.fakes.gemini_models import DEFAULT_MODEL, ModelSpec, nearest_ratio, spec_for
from tests.fakes.gemini_schema import decode_bytes

THOUGHT_TEXT = "**Planning the picture**\n\nI'm working out the composition, the light and the palette first."
# Verdict scripting for text models: a function of the request, or {substring of the prompt: answer}.
TextAnswers = Callable[["RecordedRequest"], Any] | dict[str, Any] | None


@dataclass
class AnswerStyle:
    """Switches of the fake that shape every default answer (the server copies its own into each request)."""

    image_format: str | None = None  # "png" / "jpeg"; None: the model's own (2.5 PNG, Gemini 3 JPEG)
    jpeg_as_png: bool = False  # JPEG bytes declared as image/png
    png_weight: int | None = None  # answers are PNGs of about this many bytes (upload-limit tests)
    thought_images: int | None = None  # draft images before a thinking model's answer (None: 1)
    model_versions: dict[str, str] = field(default_factory=dict)  # modelVersion per requested id (default: the id)
    text_answers: TextAnswers = None


@dataclass
class RecordedRequest:
    """One request as it reached the fake, and what the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON (None if it was not JSON)
    size: int
    at: float  # the fake's clock at arrival
    model: str | None = None
    status: int | None = None
    # The body with every field name in lowerCamel, once it passed validation.
    request: dict[str, Any] | None = None
    # generateContent, batchGenerateContent, batch-item, models.list, models.get, batches.get/list/cancel/delete
    kind: str = ""
    target: str = ""  # the {model} or {id} of the path
    response: Any = None  # the JSON the fake answered (None for non-JSON answers)
    style: AnswerStyle | None = None
    spec: ModelSpec | None = None

    @property
    def contents(self) -> list[dict[str, Any]]:
        source = self.request or self.body
        return (source.get("contents") or []) if isinstance(source, dict) else []

    @property
    def config(self) -> dict[str, Any]:
        source = self.request or self.body
        return (source.get("generationConfig") or {}) if isinstance(source, dict) else {}

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The parts of the last user turn (the whole request when it is a single turn)."""
        users = [c for c in self.contents if c.get("role", "user") in ("user", "")]
        return (users[-1] if users else self.contents[-1] if self.contents else {}).get("parts") or []

    @property
    def prompt(self) -> str:
        return "".join(part.get("text", "") for part in self.parts)

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """(mime type, decoded bytes) of every inline image of the last user turn."""
        blobs = [part.get("inlineData") for part in self.parts]
        return [(blob["mimeType"], decode_bytes(blob["data"])) for blob in blobs if blob]

    @property
    def aspect_ratio(self) -> str | None:
        return (self.config.get("imageConfig") or {}).get("aspectRatio")

    @property
    def image_size(self) -> str | None:
        return (self.config.get("imageConfig") or {}).get("imageSize")

    @property
    def service_tier(self) -> str | None:
        source = self.request or self.body
        return source.get("serviceTier") if isinstance(source, dict) else None

    @property
    def model_turns(self) -> list[dict[str, Any]]:
        return [c for c in self.contents if c.get("role") == "model"]

    @property
    def returned_signatures(self) -> list[str]:
        """Every thoughtSignature the request carried in its model turns, as sent, in order."""
        return [p["thoughtSignature"] for c in self.model_turns for p in c["parts"] if "thoughtSignature" in p]


def new_signature() -> str:
    """An opaque signature like Google's: standard base64 of random bytes, unique per answer."""
    return base64.b64encode(b"\x12\x0bfake-gemini" + secrets.token_bytes(96)).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def spec_of(request: RecordedRequest) -> ModelSpec:
    return request.spec or spec_for(request.model)


def answer_ratio(request: RecordedRequest, spec: ModelSpec) -> str:
    """The requested ratio; omitted: the first input image's (nearest listed), else 1:1."""
    if request.aspect_ratio:
        return request.aspect_ratio
    if request.images:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(request.images[0][1])) as image:
                return nearest_ratio(image.width, image.height, spec.ratios)
        except (UnidentifiedImageError, OSError, ValueError):
            pass
    return "1:1"


def picture_parts(
    request: RecordedRequest,
    *,
    data: bytes | None,
    mime_type: str | None,
    text: str | None,
    thoughts: int | None,
    signed: bool | None,
) -> list[dict[str, Any]]:
    """Thought summary and drafts (thinking models), optional text, then the picture, signed as Gemini 3 signs."""
    spec, style = spec_of(request), request.style or AnswerStyle()
    width, height = spec.pixels(answer_ratio(request, spec), request.image_size)
    if data is None:
        image_format = "png" if style.png_weight else style.image_format or spec.output_format
        image_format = "jpeg" if style.jpeg_as_png else image_format
        data = picture(width, height, image_format, weight=style.png_weight)
        declared = "image/png" if style.jpeg_as_png else f"image/{image_format}"
    else:
        declared = "image/png"
    declared = mime_type or declared
    drafts = thoughts if thoughts is not None else (1 if style.thought_images is None else style.thought_images)
    drafts = drafts if (spec.thinks or thoughts) else 0
    signed = signed if signed is not None else bool(spec.thinks or thoughts)
    parts: list[dict[str, Any]] = []
    if spec.thinks or thoughts:
        parts.append({"text": THOUGHT_TEXT, "thought": True})
    draft = picture(max(16, width // 8), max(16, height // 8), "jpeg")
    parts += [{"inlineData": {"mimeType": "image/jpeg", "data": b64(draft)}, "thought": True} for _ in range(drafts)]
    if text is not None:
        parts.append({"text": text})
    parts.append({"inlineData": {"mimeType": declared, "data": b64(data)}})
    if signed:
        # The image carries a signature, and so does the first non-thought text part when it comes before it.
        first = next(i for i, part in enumerate(parts) if not part.get("thought"))
        parts[first]["thoughtSignature"] = new_signature()
        parts[-1].setdefault("thoughtSignature", new_signature())
    return parts


def thinking_parts(request: RecordedRequest, text: str) -> list[dict[str, Any]]:
    """A words-only answer: thinking image models think first and sign their first text part."""
    spec = spec_of(request)
    if spec.image and spec.thinks:
        return [{"text": THOUGHT_TEXT, "thought": True}, {"text": text, "thoughtSignature": new_signature()}]
    return [{"text": text}]


def candidate(parts: list[dict[str, Any]], reason: str = "STOP") -> dict[str, Any]:
    return {"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": 0}


def response(
    request: RecordedRequest,
    candidates: list[dict],
    *,
    model: str | None = None,
    text: str | None = None,
    output_tokens: int | None = None,
) -> dict:
    """A 200 body with usageMetadata as the real API counts it: image tokens per model and size, ~4 characters
    per text token, input images at the model's rate (history images again), thinking tokens apart."""
    spec = spec_of(request)
    style = request.style or AnswerStyle()
    parts = [p for c in candidates for p in (c.get("content") or {}).get("parts") or []]
    answer = [p for p in parts if not p.get("thought")]
    images = sum(1 for p in answer if "inlineData" in p)
    image_tokens = spec.tokens_for(request.image_size) * images if spec.image else 0
    if images and not image_tokens:
        image_tokens = 1120 * images
    words = text if text is not None else "".join(p.get("text", "") for p in answer)
    text_tokens = len(words) // 4
    output = image_tokens + text_tokens if output_tokens is None else output_tokens
    thought_chars = sum(len(p.get("text", "")) for p in parts if p.get("thought"))
    thoughts = (180 + thought_chars // 4) if (spec.thinks and output_tokens is None) or thought_chars else 0
    prompt_text = sum(len(p.get("text", "")) for c in request.contents for p in c.get("parts", []))
    input_images = sum(1 for c in request.contents for p in c.get("parts", []) if "inlineData" in p)
    text_in = max(1, prompt_text // 4)
    details = [{"modality": "TEXT", "tokenCount": text_in}]
    if input_images:
        details.append({"modality": "IMAGE", "tokenCount": spec.input_image_tokens * input_images})
    prompt_tokens = text_in + spec.input_image_tokens * input_images
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt_tokens + output + thoughts,
        "promptTokensDetails": details,
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if image_tokens:
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
        if text_tokens:
            usage["candidatesTokensDetails"].append({"modality": "TEXT", "tokenCount": text_tokens})
    if request.kind != "batch-item":
        usage["serviceTier"] = request.service_tier or "standard"
    requested = model or request.model or DEFAULT_MODEL
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": style.model_versions.get(requested, requested),
        "responseId": uuid.uuid4().hex[:22],
    }
