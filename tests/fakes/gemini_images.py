"""Real image bytes for the fake Gemini and for tests: valid PNGs built by hand, JPEGs through Pillow.

Answers have the real pixel size of the model, ratio and imageSize (a 4K answer really is 4096 pixels wide); they
are flat colours, so a 4K JPEG weighs about 250 KB and costs ~80 ms once (cached). `weighted_png` makes a PNG of a
chosen weight for upload-limit tests.
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from functools import lru_cache

from tests.fakes.gemini_models import FLASH_25_SIZES

# What gemini-2.5-flash-image returns for each aspect ratio (Google's image-generation guide).
OUTPUT_SIZES = FLASH_25_SIZES


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(
    width: int, height: int, *, color: tuple[int, int, int] = (40, 90, 160), noise: bool = False, seed: int = 0
) -> bytes:
    """A valid RGB PNG. `noise=True` fills it with random pixels stored uncompressed, so its size is about
    3 * width * height bytes (what a detailed generated picture weighs)."""
    if noise:
        rng = random.Random(seed)
        rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
        level = 0
    else:
        rows = (b"\x00" + bytes(color) * width) * height
        level = 6
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, level))
        + _chunk(b"IEND", b"")
    )


def png_of_size(n_bytes: int, *, seed: int = 0, width: int = 1024) -> bytes:
    """A noisy PNG of at least `n_bytes` (and at most one row more), e.g. 1.5 MB for benchmarks."""
    return png_bytes(width, max(1, math.ceil(n_bytes / (1 + 3 * width))), noise=True, seed=seed)


@lru_cache(maxsize=32)
def default_png(aspect_ratio: str = "1:1") -> bytes:
    """The flat PNG the fake returns when nothing else is scripted, at the real output size of the ratio."""
    width, height = OUTPUT_SIZES.get(aspect_ratio, OUTPUT_SIZES["1:1"])
    return png_bytes(width, height)


@lru_cache(maxsize=64)
def jpeg_bytes(width: int = 64, height: int = 64, *, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=85)
    return buf.getvalue()


@lru_cache(maxsize=32)
def flat_png(width: int, height: int, color: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    return png_bytes(width, height, color=color)


@lru_cache(maxsize=8)
def weighted_png(width: int, height: int, n_bytes: int, *, seed: int = 0) -> bytes:
    """A valid width x height PNG that weighs about `n_bytes` (never less): random rows on top (incompressible),
    one flat colour below. For tests of upload limits with a 4K answer."""
    rng = random.Random(seed)
    noisy = min(height, math.ceil(n_bytes / (3 * width + 1)))
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(noisy))
    rows += (b"\x00" + bytes((40, 90, 160)) * width) * (height - noisy)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 1)) + _chunk(b"IEND", b"")
    )


def picture(width: int, height: int, image_format: str, *, weight: int | None = None) -> bytes:
    """An answer picture: "png" or "jpeg" bytes of that pixel size; a PNG of about `weight` bytes if given."""
    if image_format == "jpeg":
        return jpeg_bytes(width, height, color=(40, 90, 160))
    if weight:
        return weighted_png(width, height, weight)
    return flat_png(width, height)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG or JPEG, read by Pillow (a test oracle independent of the writer above)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size
