"""Strict validation of what OpenAI-compatible gateways accept: Images API generations (JSON) and edits
(multipart), and chat completions with image output (OpenRouter / Vercel AI Gateway / LiteLLM style).

Error texts follow OpenAI's own where they are known (missing parameter, unknown parameter, bad enum value,
unsupported upload mimetype, JSON that does not parse). Every check here is one the real services make; where a
check exists only because the fake cannot do something (fetch an http image URL, stream), the message says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_images import OUTPUT_SIZES

RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1")
# Gemini's 1K output size for each ratio; the four extreme ratios of the newer models are approximations.
RATIO_SIZES: dict[str, tuple[int, int]] = {
    **OUTPUT_SIZES,
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}
INPUT_TYPES = ("image/png", "image/jpeg", "image/webp")
QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")
RESPONSE_FORMATS = ("url", "b64_json")
SIZE_MODES = ("exact", "fixed", "ratio", "nearest")
MAX_PROMPT = 32000
_WXH = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
_RATIO = re.compile(r"^([1-9][0-9]?):([1-9][0-9]?)$")

IMAGE_PARAMS = (
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "response_format",
    "style",
    "user",
    "background",
    "moderation",
    "output_format",
    "output_compression",
)
EDIT_PARAMS = tuple(p for p in IMAGE_PARAMS if p not in ("style", "moderation")) + ("input_fidelity",)


class Invalid(Exception):
    """A request the gateway refuses: HTTP status and the fields of OpenAI's error envelope."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type: str = "invalid_request_error",  # noqa: A002  (the envelope's field name)
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.type = type


@dataclass
class InputImage:
    """One image that arrived with a request: a multipart file or a data URL of a chat message."""

    field: str  # "image", "image[]", "mask" or "messages[0].content[1]"
    filename: str | None
    content_type: str  # as declared by the client
    data: bytes

    @property
    def sniffed(self) -> str | None:
        return sniff(self.data)


@dataclass(frozen=True)
class ImageRules:
    """What one gateway's Images API takes (they differ)."""

    max_n: int = 1
    size_mode: str = "exact"  # see SIZE_MODES and `output_size`
    sizes: tuple[str, ...] | None = None  # the only `size` values taken, if the gateway has a list
    default_format: str = "b64_json"  # response_format when the request has none
    extra: tuple[str, ...] = ()  # the gateway's own extra parameters
    max_images: int = 14


@dataclass
class ImageCall:
    """A valid Images API request, with the defaults applied."""

    model: str
    prompt: str
    n: int
    size: str | None
    response_format: str
    quality: str | None
    params: dict[str, Any] = field(default_factory=dict)
    images: list[InputImage] = field(default_factory=list)
    mask: InputImage | None = None


def sniff(data: bytes) -> str | None:
    """The image type the bytes really are (by magic number), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def missing(name: str) -> Invalid:
    return Invalid(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def bad_value(name: str, value: Any, allowed: tuple[str, ...]) -> Invalid:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f" and '{allowed[-1]}'" if len(allowed) > 1 else allowed[0]
    return Invalid(f"Invalid value: '{value}'. Supported values are: {listed}.", param=name, code="invalid_value")


def unknown(name: str) -> Invalid:
    return Invalid(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def _prompt(value: Any) -> str:
    if value is None:
        raise missing("prompt")
    if not isinstance(value, str):
        raise Invalid("Invalid type for 'prompt': expected a string.", param="prompt", code="invalid_type")
    if not value.strip():
        raise Invalid("Invalid 'prompt': empty string.", param="prompt", code="empty_string")
    if len(value) > MAX_PROMPT:
        raise Invalid(
            f"Invalid 'prompt': string too long. Expected a string with maximum length {MAX_PROMPT}, but got a "
            f"string with length {len(value)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    return value


def _n(value: Any, max_n: int) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("Invalid type for 'n': expected an integer.", param="n", code="invalid_type")
    if value < 1:
        raise Invalid(
            f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param="n",
            code="integer_below_min_value",
        )
    if value > max_n:
        raise Invalid(
            f"Invalid 'n': integer above maximum value. Expected a value <= {max_n}, but got {value} instead.",
            param="n",
            code="integer_above_max_value",
        )
    return value


def check_size(value: Any, mode: str, sizes: tuple[str, ...] | None) -> str | None:
    """The `size` parameter as the gateway's mode accepts it: exact `WxH`, an aspect ratio, or both."""
    if value is None or value == "auto":
        return None
    if not isinstance(value, str):
        raise Invalid("Invalid type for 'size': expected a string.", param="size", code="invalid_type")
    wxh, ratio = _WXH.match(value), _RATIO.match(value)
    if sizes is not None and value not in sizes:
        raise bad_value("size", value, ("auto", *sizes))
    if mode == "ratio" and value not in RATIOS:
        raise bad_value("size", value, ("auto", *RATIOS))
    if mode == "exact" and not wxh:
        raise Invalid(
            f"Invalid size '{value}': expected WIDTHxHEIGHT such as 1024x1024.", param="size", code="invalid_value"
        )
    if not (wxh or ratio) or (ratio and value not in RATIOS):
        raise Invalid(f"Invalid size '{value}'.", param="size", code="invalid_value")
    if wxh and not all(64 <= int(x) <= 4096 for x in wxh.groups()):
        raise Invalid(
            f"Invalid size '{value}': each side must be between 64 and 4096 pixels.", param="size", code="invalid_value"
        )
    return value


def nearest_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height (what a gateway fronting Gemini picks for a pixel size)."""
    target = width / height
    return min(RATIOS, key=lambda r: abs(_ratio_value(r) - target) / target)


def _ratio_value(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)


def output_size(
    size: str | None, mode: str, fixed: tuple[int, int], first_input: tuple[int, int] | None
) -> tuple[int, int]:
    """The size of the picture the gateway makes for an Images API request."""
    if mode == "fixed":
        return fixed
    if size is None:
        if mode == "exact" or first_input is None:
            return (1024, 1024)
        return RATIO_SIZES[nearest_ratio(*first_input)]
    if mode == "exact":
        w, h = size.split("x")
        return int(w), int(h)
    if ":" in size:
        return RATIO_SIZES[size]
    w, h = size.split("x")
    return RATIO_SIZES[nearest_ratio(int(w), int(h))]


def validate_generation(body: Any, rules: ImageRules) -> ImageCall:
    if not isinstance(body, dict):
        raise Invalid("Invalid request body: expected a JSON object.")
    for name in body:
        if name not in IMAGE_PARAMS and name not in rules.extra:
            raise unknown(name)
    return _image_call(body, rules)


def validate_edit(fields: list[tuple[str, str]], files: list[InputImage], rules: ImageRules) -> ImageCall:
    params: dict[str, Any] = {}
    for name, value in fields:
        if name in ("image", "image[]", "mask"):
            raise Invalid(f"Invalid '{name}': expected a file upload, got a text field.", param=name)
        if name not in EDIT_PARAMS and name not in rules.extra:
            raise unknown(name)
        if name in params:
            raise Invalid(f"Duplicate parameter: '{name}'.", param=name, code="duplicate_parameter")
        params[name] = int(value) if name == "n" and value.isdigit() else value  # form fields are all text
    single = [f for f in files if f.field == "image"]
    several = [f for f in files if f.field == "image[]"]
    masks = [f for f in files if f.field == "mask"]
    for f in files:
        if f.field not in ("image", "image[]", "mask"):
            raise unknown(f.field)
    if len(single) > 1 or (single and several) or len(masks) > 1:
        raise Invalid("Send one 'image' file, or several as repeated 'image[]' parts.", param="image")
    images = single or several
    if not images:
        raise missing("image")
    if len(images) > rules.max_images:
        raise Invalid(
            f"Invalid 'image': array too long. Expected an array with maximum length {rules.max_images}, but got an "
            f"array with length {len(images)} instead.",
            param="image",
            code="array_above_max_length",
        )
    for f in images + masks:
        kind = f.field.rstrip("[]")
        if f.content_type not in INPUT_TYPES:
            raise Invalid(
                f"Invalid file '{kind}': unsupported mimetype ('{f.content_type}'). Supported file formats are "
                "'image/jpeg', 'image/png', and 'image/webp'.",
                param=kind,
                code="unsupported_file_mimetype",
            )
        if sniff(f.data) not in INPUT_TYPES:
            raise Invalid(
                f"Invalid image file or mode for {kind} {files.index(f) + 1}, please check your image file.",
                param=kind,
                code="invalid_image_file",
            )
    call = _image_call(params, rules)
    call.images = images
    call.mask = masks[0] if masks else None
    return call


def _image_call(params: dict[str, Any], rules: ImageRules) -> ImageCall:
    model = params.get("model")
    if not model or not isinstance(model, str):
        raise Invalid("You must provide a model parameter.", param="model", code="missing_required_parameter")
    prompt = _prompt(params.get("prompt"))
    n = _n(params.get("n"), rules.max_n)
    response_format = params.get("response_format") or rules.default_format
    if response_format not in RESPONSE_FORMATS:
        raise bad_value("response_format", response_format, RESPONSE_FORMATS)
    quality = params.get("quality")
    if quality is not None and quality not in QUALITIES:
        raise bad_value("quality", quality, QUALITIES)
    size = check_size(params.get("size"), rules.size_mode, rules.sizes)
    return ImageCall(model, prompt, n, size, response_format, quality, params)


def image_tokens(model: str) -> int:
    """Output tokens per picture as Gemini bills them (Pro 1120 at 1K/2K, the Flash models 1290)."""
    return 1120 if "pro" in model else 1290


def prompt_tokens(prompt: str, images: int) -> int:
    return max(1, len(prompt) // 4) + 258 * images
