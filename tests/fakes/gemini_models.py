"""The model lineup the fake Gemini serves (late 2026), per the reference's "Model lineup" table.

The fake keeps its own table on purpose: borrowing the bot's constants would make the fake agree with the bot
by construction and check nothing. Output pixel sizes follow Google's image-generation guide: 2.5 Flash Image
has one size per ratio; Gemini 3 image models scale a 1K base by 0.5 / 1 / 2 / 4 for 512 / 1K / 2K / 4K.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from typing import Any

RATIOS_10 = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
RATIOS_14 = RATIOS_10 + ("1:4", "4:1", "1:8", "8:1")

# gemini-2.5-flash-image: one size per ratio.
FLASH_25_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
# Gemini 3 image models at 1K; 2K and 4K are exact multiples, 512 half.
GEMINI3_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}
SIZE_SCALE = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}

RETIRED = ("gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview", "gemini-2.5-flash-image-preview")
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's documented bypass value for foreign model turns


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts and how it answers."""

    id: str
    display_name: str
    image: bool = True  # makes pictures (False: a text model)
    sizes: tuple[str, ...] = ()  # accepted `imageSize` values; () = the field is refused
    ratios: tuple[str, ...] = RATIOS_10
    max_images: int = 3  # inline images per request, every turn counted
    thinks: bool = False  # thought parts, thoughtsTokenCount, signatures on image models
    image_tokens: dict[str, int] = field(default_factory=dict)  # per imageSize ("" when none is sent)
    input_image_tokens: int = 258  # prompt tokens per input image
    heic: bool = False  # accepts image/heic and image/heif inputs
    legacy: bool = False  # served only to projects that used it before ("new project" mode: 404)
    output_format: str = "png"  # what it answers when nothing else is asked: png or jpeg
    input_token_limit: int = 32_768
    output_token_limit: int = 32_768
    description: str = ""

    @property
    def default_size(self) -> str:
        return "1K" if self.sizes else ""

    def tokens_for(self, size: str | None) -> int:
        return self.image_tokens.get(size or self.default_size, 0)

    def pixels(self, ratio: str, size: str | None) -> tuple[int, int]:
        """Width and height of an answer at this ratio and imageSize."""
        if not self.sizes:
            return FLASH_25_SIZES.get(ratio, FLASH_25_SIZES["1:1"])
        width, height = GEMINI3_1K.get(ratio, GEMINI3_1K["1:1"])
        scale = SIZE_SCALE[size or self.default_size]
        return int(width * scale), int(height * scale)

    def resource(self) -> dict[str, Any]:
        """The `Model` resource as `GET /v1beta/models/{id}` returns it."""
        methods = ["generateContent", "countTokens", "batchGenerateContent"]
        body: dict[str, Any] = {
            "name": f"models/{self.id}",
            "version": "001" if not self.legacy else "2.0",
            "displayName": self.display_name,
            "description": self.description or self.display_name,
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": methods,
            "temperature": 1,
            "topP": 0.95,
            "maxTemperature": 2,
        }
        if self.thinks:
            body["thinking"] = True
        return body


_G3 = {"thinks": True, "output_format": "jpeg", "input_image_tokens": 560, "input_token_limit": 65_536}
LINEUP: tuple[ModelSpec, ...] = (
    ModelSpec(
        "gemini-nano-banana-2.1",
        "Nano Banana 2.1",
        sizes=("1K", "2K", "4K"),
        ratios=RATIOS_14,
        max_images=14,
        image_tokens={"1K": 1120, "2K": 1680, "4K": 3768},  # $30/M: 0.0336 / 0.0504 / ~0.113 (disputed)
        **_G3,
    ),
    ModelSpec(
        "gemini-3-pro-image",
        "Nano Banana Pro",
        sizes=("1K", "2K", "4K"),
        ratios=RATIOS_10,
        max_images=14,
        image_tokens={"1K": 1120, "2K": 1120, "4K": 2000},
        heic=True,
        **_G3,
    ),
    ModelSpec(
        "gemini-3.1-flash-lite-image",
        "Nano Banana 2 Lite",
        sizes=("1K",),
        ratios=RATIOS_10,
        max_images=10,
        image_tokens={"1K": 1120},
        **_G3,
    ),
    ModelSpec(
        "gemini-3.1-flash-image",
        "Nano Banana 2",
        sizes=("512", "1K", "2K", "4K"),
        ratios=RATIOS_14,
        max_images=14,
        image_tokens={"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},  # $60/M: 0.045 / 0.067 / 0.101 / 0.151
        **_G3,
    ),
    ModelSpec(
        "gemini-2.5-flash-image",
        "Nano Banana",
        max_images=3,
        image_tokens={"": 1290},
        legacy=True,
    ),
    # Text models (the moderation AI tier): answer words, or JSON under responseMimeType application/json.
    ModelSpec("gemini-2.5-flash", "Gemini 2.5 Flash", image=False, thinks=True, input_token_limit=1_048_576),
    ModelSpec("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", image=False, input_token_limit=1_048_576),
    ModelSpec("gemini-3-flash", "Gemini 3 Flash", image=False, thinks=True, input_token_limit=1_048_576),
    ModelSpec("gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", image=False, thinks=True, input_token_limit=1_048_576),
)
SPECS: dict[str, ModelSpec] = {spec.id: spec for spec in LINEUP}
IMAGE_MODELS = tuple(spec.id for spec in LINEUP if spec.image)
TEXT_MODELS = tuple(spec.id for spec in LINEUP if not spec.image)
DEFAULT_MODEL = "gemini-2.5-flash-image"


def spec_for(model: str | None, served: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec of `model`; an id the lineup does not know answers like a plain image model without sizes."""
    table = served if served is not None else SPECS
    if model in table:
        return table[model]
    if model in SPECS:
        return SPECS[model]
    return replace(SPECS[DEFAULT_MODEL], id=model or DEFAULT_MODEL, display_name=model or DEFAULT_MODEL, legacy=False)


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The listed ratio closest to width:height (how Gemini picks the output ratio of an edit)."""

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(w / h - width / height)

    return min(ratios, key=distance)


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def read_page_token(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    head, _, number = text.partition(":")
    return int(number) if head == "offset" and number.isdigit() else None
