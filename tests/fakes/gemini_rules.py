"""What each model accepts, checked after the body parsed (`gemini_schema`): roles and parts, input types and
count, image sizes and aspect ratios per model, thinking, JSON mode, and the thought signatures of model turns.

Messages follow captured Google answers where we have them (the signature message, "Multiple candidates",
"This model only works in thinking mode", "Corrupted thought signature."); the others name the field the way
Google's field errors do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.gemini_models import SKIP_SIGNATURE, ModelSpec
from tests.fakes.gemini_schema import (
    GEMINI3_EXTRA_MIME_TYPES,
    INPUT_MIME_TYPES,
    PART_DATA,
    Invalid,
    decode_bytes,
    normalise,
)

JSON_MIME_TYPES = ("application/json", "text/x.enum")
_SKIP_BYTES = (decode_bytes(SKIP_SIGNATURE), SKIP_SIGNATURE.encode())


def validate_request(
    body: Any, spec: ModelSpec, *, known_signature: Callable[[bytes], bool] = lambda _sig: False
) -> dict[str, Any]:
    """The normalised request, or `Invalid` with what Google would answer for `spec`'s model.

    `known_signature(decoded)` says whether a thoughtSignature found in a model turn is one the fake issued."""
    request = normalise(body)
    contents = request.get("contents") or []
    if not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified\n")
    mime_types = INPUT_MIME_TYPES + (GEMINI3_EXTRA_MIME_TYPES if spec.heic else ())
    images = 0
    for ci, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model", ""):
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
            if part.get("thought"):
                continue  # draft images sent back with their turn are neither inputs nor signed
            images += 1
            if role == "model" and spec.thinks:
                _check_signature(part, ci, pi, known_signature)
    if spec.image and images > spec.max_images:
        raise Invalid(
            f"* GenerateContentRequest.contents: too many images: models/{spec.id} accepts at most "
            f"{spec.max_images} input images, got {images}.\n"
        )
    _check_config(request.get("generationConfig", {}), spec)
    return request


def _check_signature(part: dict[str, Any], ci: int, pi: int, known: Callable[[bytes], bool]) -> None:
    signature = part.get("thoughtSignature")
    if signature is None:
        # Google counts positions from 1 (captured: "content position 2, part position 1" for [user, model]).
        where = f"content position {ci + 1}, part position {pi + 1}"
        raise Invalid(f"Image part is missing a thought_signature in {where}.")
    if signature == SKIP_SIGNATURE:
        return
    decoded = decode_bytes(signature)
    if decoded not in _SKIP_BYTES and not known(decoded):
        raise Invalid("Corrupted thought signature.")


def _check_config(config: dict[str, Any], spec: ModelSpec) -> None:
    model = spec.id
    if config.get("candidateCount", 1) > 1:
        raise Invalid(f"Multiple candidates is not enabled for models/{model}")
    modalities = config.get("responseModalities") or []
    if not spec.image and "IMAGE" in modalities:
        raise Invalid("Model does not support the requested response modalities: image")
    thinking = config.get("thinkingConfig", {})
    if spec.thinks and spec.image and thinking.get("thinkingBudget") == 0:
        raise Invalid("Budget 0 is invalid. This model only works in thinking mode.")
    if ("responseSchema" in config or "responseJsonSchema" in config) and config.get(
        "responseMimeType"
    ) not in JSON_MIME_TYPES:
        raise Invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be one of "
            f"{list(JSON_MIME_TYPES)} when response_schema is set.\n"
        )
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise Invalid(
            "* GenerateContentRequest.generation_config: only one of response_schema and "
            "response_json_schema may be set.\n"
        )
    image_config = config.get("imageConfig")
    if image_config is None:
        return
    if not spec.image:
        raise Invalid(f"Image config is not supported for models/{model}.")
    ratio = image_config.get("aspectRatio")
    if ratio is not None and ratio not in spec.ratios:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.image_config.aspect_ratio: unsupported value {ratio!r} "
            f"for models/{model}\n"
        )
    size = image_config.get("imageSize")
    if size is not None and not spec.sizes:
        raise Invalid(f"Image size is not supported for models/{model}.")
    if size is not None and size not in spec.sizes:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.image_config.image_size: unsupported value {size!r} "
            f"for models/{model}\n"
        )
