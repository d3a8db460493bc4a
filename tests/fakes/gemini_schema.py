"""The shape of generateContent and batchGenerateContent bodies, checked the way Google's front end parses them.

Proto3 JSON rules apply: field names may be lowerCamel or snake_case (the SDK itself sends `mime_type` inside
`inlineData`), `null` means "not set", bytes are standard or URL-safe base64 with or without padding, and an
unknown field anywhere is a 400 "Unknown name". Error texts follow captured Google answers where we have them.
What each model accepts (sizes, ratios, signatures, ...) is checked afterwards by `gemini_rules`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

MAX_REQUEST_BYTES = 20 * 1024 * 1024
INPUT_MIME_TYPES = ("image/png", "image/jpeg", "image/webp")
GEMINI3_EXTRA_MIME_TYPES = ("image/heic", "image/heif")
HARM_CATEGORIES = tuple(
    "HARM_CATEGORY_" + c
    for c in ("HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT", "DANGEROUS_CONTENT", "CIVIC_INTEGRITY")
)
THRESHOLDS = ("BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF")
MODALITIES = ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO")
# The wire names are lower case: the SDK sends "flex", and answers report `usageMetadata.serviceTier: "standard"`.
SERVICE_TIERS = ("unspecified", "standard", "flex", "priority")
THINKING_LEVELS = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
# google.ai.generativelanguage Schema.type; the SDK sends upper case, hand-written schemas often lower case.
SCHEMA_TYPES = ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
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


# A spec is None (anything), a type name, ("enum", values), ("ienum", values) (case-insensitive), ("list", spec),
# ("map", spec) (string keys, values of spec) or ("obj", {camelName: spec}).
def _obj(**fields: Any) -> tuple[str, dict[str, Any]]:
    return ("obj", fields)


def _list(spec: Any) -> tuple[str, Any]:
    return ("list", spec)


def _enum(*values: str) -> tuple[str, tuple[str, ...]]:
    return ("enum", values)


# Gemini's OpenAPI-subset Schema, recursive: the inner specs are filled in below.
_SCHEMA_FIELDS: dict[str, Any] = {}
SCHEMA = ("obj", _SCHEMA_FIELDS)
_SCHEMA_FIELDS.update(
    type=("ienum", SCHEMA_TYPES),
    format="str",
    title="str",
    description="str",
    nullable="bool",
    enum=_list("str"),
    maxItems="int64",
    minItems="int64",
    properties=("map", SCHEMA),
    required=_list("str"),
    minProperties="int64",
    maxProperties="int64",
    minLength="int64",
    maxLength="int64",
    pattern="str",
    example=None,
    anyOf=_list(SCHEMA),
    propertyOrdering=_list("str"),
    default=None,
    items=SCHEMA,
    minimum="num",
    maximum="num",
)
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
    responseSchema=SCHEMA,
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
    thinkingConfig=_obj(includeThoughts="bool", thinkingBudget="int", thinkingLevel=_enum(*THINKING_LEVELS)),
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
    serviceTier=_enum(*SERVICE_TIERS),
    store="bool",
)
# POST /v1beta/models/{model}:batchGenerateContent, inline requests only (a `fileName` names an uploaded file).
BATCH_REQUEST = _obj(
    batch=_obj(
        model="str",
        displayName="str",
        inputConfig=_obj(
            requests=_obj(requests=_list(_obj(request=REQUEST, metadata=None))),
            fileName="str",
        ),
        priority="int64",
        webhookConfig=None,
    )
)
_PROTO_TYPES = {
    "str": "TYPE_STRING",
    "int": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "num": "TYPE_FLOAT",
    "bool": "TYPE_BOOL",
}
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
    if kind in ("enum", "ienum"):
        if not isinstance(value, str) or (value.upper() if kind == "ienum" else value) not in inner:
            raise Invalid(f"Invalid value at '{path}' (TYPE_ENUM), {json.dumps(value)}")
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise Invalid(
                f"Invalid JSON payload received. Proto field is not repeating, cannot start list at '{path}'."
            )
        return [normalise(item, inner, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise Invalid(f"Invalid value at '{path}' (TYPE_MESSAGE), {json.dumps(value)[:80]}")
        return {key: normalise(item, inner, f"{path}[{key}]") for key, item in value.items() if item is not None}
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
        # proto3 JSON writes int64 as a string and reads either.
        "int64": (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and value.lstrip("-").isdigit()),
        "num": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise Invalid(f"Invalid value at '{path}' ({_PROTO_TYPES[kind]}), {json.dumps(value)[:80]}")
    return value
