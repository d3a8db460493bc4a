"""Strict validation of a generateContent request body, the way Google's front end parses it.

Proto3 JSON rules apply: field names may be lowerCamel or snake_case (the SDK itself sends `mime_type` inside
`inlineData`), `null` means "not set", bytes are standard or URL-safe base64 with or without padding, and an
unknown field anywhere is a 400 "Unknown name". Error texts follow captured Google answers where we have them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from bot.models import ASPECT_RATIOS

MAX_REQUEST_BYTES = 20 * 1024 * 1024
IMAGE_SIZES = ("1K", "2K", "4K")
INPUT_MIME_TYPES = ("image/png", "image/jpeg", "image/webp")
GEMINI3_EXTRA_MIME_TYPES = ("image/heic", "image/heif")
HARM_CATEGORIES = tuple(
    "HARM_CATEGORY_" + c
    for c in ("HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT", "DANGEROUS_CONTENT", "CIVIC_INTEGRITY")
)
THRESHOLDS = ("BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF")
MODALITIES = ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO")
PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)


class Invalid(Exception):
    """A request Google would refuse; carries the HTTP code, status and message of its answer."""

    def __init__(self, message: str, code: int = 400, status: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


# A spec is None (anything), a type name, ("enum", values), ("list", spec) or ("obj", {camelName: spec}).
def _obj(**fields: Any) -> tuple[str, dict[str, Any]]:
    return ("obj", fields)


def _list(spec: Any) -> tuple[str, Any]:
    return ("list", spec)


def _enum(*values: str) -> tuple[str, tuple[str, ...]]:
    return ("enum", values)


_BLOB = _obj(mimeType="str", data="bytes", displayName="str")
_PART = _obj(
    text="str",
    inlineData=_BLOB,
    fileData=None,
    functionCall=None,
    functionResponse=None,
    executableCode=None,
    codeExecutionResult=None,
    thought="bool",
    thoughtSignature="bytes",
    videoMetadata=None,
    mediaResolution=None,
    partMetadata=None,
)
_CONTENT = _obj(role="str", parts=_list(_PART))
_GENERATION_CONFIG = _obj(
    stopSequences=_list("str"),
    responseMimeType="str",
    responseSchema=None,
    responseJsonSchema=None,
    candidateCount="int",
    maxOutputTokens="int",
    temperature="num",
    topP="num",
    topK="int",
    seed="int",
    presencePenalty="num",
    frequencyPenalty="num",
    responseLogprobs="bool",
    logprobs="int",
    enableEnhancedCivicAnswers="bool",
    responseModalities=_list(_enum(*MODALITIES)),
    speechConfig=None,
    thinkingConfig=None,
    imageConfig=_obj(aspectRatio="str", imageSize="str"),
    mediaResolution=None,
)
REQUEST = _obj(
    model="str",
    contents=_list(_CONTENT),
    generationConfig=_GENERATION_CONFIG,
    safetySettings=_list(_obj(category=_enum(*HARM_CATEGORIES), threshold=_enum(*THRESHOLDS), method=None)),
    systemInstruction=_CONTENT,
    tools=None,
    toolConfig=None,
    cachedContent="str",
    serviceTier=None,
    store="bool",
)
_PROTO_TYPES = {"str": "TYPE_STRING", "int": "TYPE_INT32", "num": "TYPE_FLOAT", "bool": "TYPE_BOOL"}
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def decode_bytes(value: str) -> bytes:
    """Decode proto3 JSON bytes (standard or URL-safe alphabet, padding optional); ValueError if invalid."""
    if not _BASE64.match(value):
        raise ValueError("bad base64 alphabet")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def normalise(value: Any, spec: Any = REQUEST, path: str = "") -> Any:
    """Check `value` against `spec` and return it with every field name in lowerCamel and nulls dropped."""
    if spec is None or value is None:
        return value
    if isinstance(spec, str):
        return _scalar(value, spec, path)
    kind, inner = spec
    if kind == "enum":
        if value not in inner:
            raise Invalid(f"Invalid value at '{path}' (TYPE_ENUM), {json.dumps(value)}")
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise Invalid(
                f"Invalid JSON payload received. Proto field is not repeating, cannot start list at '{path}'."
            )
        return [normalise(item, inner, f"{path}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at '{path}' (TYPE_MESSAGE), {json.dumps(value)[:80]}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(key)
        if name not in inner:
            where = f" at '{path}'" if path else ""
            raise Invalid(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')
        if item is not None:
            out[name] = normalise(item, inner[name], f"{path}.{snake(name)}" if path else snake(name))
    return out


def _scalar(value: Any, kind: str, path: str) -> Any:
    if kind == "bytes":
        try:
            if not isinstance(value, str):
                raise ValueError
            decode_bytes(value)
        except ValueError:
            raise Invalid(
                f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {json.dumps(str(value)[:40])}"
            ) from None
        return value
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "num": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise Invalid(f"Invalid value at '{path}' ({_PROTO_TYPES[kind]}), {json.dumps(value)[:80]}")
    return value


def validate_request(body: Any, model: str) -> dict[str, Any]:
    """The normalised request, or `Invalid` with what Google would answer."""
    request = normalise(body)
    contents = request.get("contents") or []
    if not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified\n")
    gemini3 = model.startswith("gemini-3")
    mime_types = INPUT_MIME_TYPES + (GEMINI3_EXTRA_MIME_TYPES if gemini3 else ())
    for ci, content in enumerate(contents):
        if content.get("role", "user") not in ("user", "model", ""):
            raise Invalid("Please use a valid role: user, model.")
        if not content.get("parts"):
            raise Invalid(f"* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty.\n")
        for pi, part in enumerate(content["parts"]):
            set_fields = [name for name in PART_DATA if name in part]
            if not set_fields:
                raise Invalid(
                    f"* GenerateContentRequest.contents[{ci}].parts[{pi}].data: required oneof field 'data' must "
                    "have one initialized field\n"
                )
            if len(set_fields) > 1:
                raise Invalid(
                    f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{set_fields[1]}'."
                )
            blob = part.get("inlineData")
            if blob is None:
                continue
            if blob.get("mimeType") not in mime_types:
                raise Invalid(f"Unsupported MIME type: {blob.get('mimeType', '')}")
            if gemini3 and content.get("role") == "model" and "thoughtSignature" not in part:
                raise Invalid(
                    f"Image part is missing a thought_signature in content position {ci + 1}, part position "
                    f"{pi + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures"
                )
    config = request.get("generationConfig", {})
    if config.get("candidateCount", 1) > 1:
        raise Invalid(f"Multiple candidates is not enabled for models/{model}")
    image_config = config.get("imageConfig", {})
    ratio = image_config.get("aspectRatio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.image_config.aspect_ratio: unsupported value {ratio!r}\n"
        )
    size = image_config.get("imageSize")
    if size is not None and not gemini3:
        raise Invalid(f"Image size is not supported for models/{model}.")
    if size is not None and size not in IMAGE_SIZES:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.image_config.image_size: unsupported value {size!r}\n"
        )
    return request
