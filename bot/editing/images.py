"""Input and output image handling on bytes: type sniffing, validation, conversion, fitting under upload limits.

Input images are trusted by their bytes, never by their file name or declared content type. PNG, JPEG and WebP
go upstream as they are and are never decoded (their structure is checked); GIF and BMP must be decoded to be
converted, so they get a lower pixel limit, are shrunk while decoding where the format allows it (`draft`,
`reduce`) and are converted at most `max_side` pixels long. Every limit is judged from the header, before any
pixel is decoded. The work runs in `ImageWorkers`, a bounded pool, so at most that many images are decoded (and
held decoded in memory) at once, whatever the number of requests.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from PIL import Image, UnidentifiedImageError

from bot.config import DEFAULTS
from bot.errors import ImageRefused, InvalidRequest
from bot.models import InputImage

log = logging.getLogger(__name__)

# Google's limit for a whole generateContent request; inline data is base64 (4/3 larger) plus JSON around it.
UPSTREAM_REQUEST_LIMIT = 20 * 1024 * 1024
_REQUEST_OVERHEAD = 64 * 1024

PASSTHROUGH = {"image/png", "image/jpeg", "image/webp"}  # what Gemini takes as is
CONVERTIBLE = {"image/gif", "image/bmp"}  # converted to PNG first

P = ParamSpec("P")
T = TypeVar("T")


class ImageWorkers:
    """A bounded pool for image work (judging inputs, re-encoding results): `run` waits for a free worker, so
    the number of images decoded at once, and the memory they take, does not grow with the number of requests."""

    def __init__(self, workers: int = DEFAULTS.image_workers) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="images")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def sniff_mime(data: bytes) -> str | None:
    """The real type from the first bytes (magic numbers), whatever the file claims to be."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:2] == b"BM":
        return "image/bmp"
    return None


def check_declared_size(size: int, max_bytes: int, name: str = "The image") -> None:
    """Refuse an attachment by its metadata, before downloading it."""
    if size > max_bytes:
        raise ImageRefused(f"{name} is {_mb(size)}; the limit is {_mb(max_bytes)}. Please use a smaller file.")


def prepare_input(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_converted_pixels: int = DEFAULTS.max_converted_input_pixels,
    max_side: int = DEFAULTS.converted_input_max_side,
    name: str = "The image",
) -> InputImage:
    """Validate one input image and return what goes upstream: png/jpeg/webp unchanged (never decoded), gif/bmp
    as PNG of their first frame, at most `max_side` pixels long."""
    check_declared_size(len(data), max_bytes, name)
    mime = sniff_mime(data)
    if mime is None:
        raise ImageRefused(f"{name} is not a PNG, JPEG, WebP, GIF or BMP image (whatever its name says).")
    if mime in PASSTHROUGH:
        _check_structure(data, max_pixels, name)
        return InputImage(data=data, mime_type=mime)
    limit = min(max_pixels, max_converted_pixels)
    kind = mime.removeprefix("image/").upper()
    with _open_bounded(data, limit, name, f" for a {kind}, which has to be converted") as image:
        return InputImage(data=_convert(image, max_side, name), mime_type="image/png")


def _convert(image: Image.Image, max_side: int, name: str) -> bytes:
    """The first frame as PNG, shrunk to `max_side`. `thumbnail` shrinks while decoding where the format allows
    (JPEG's `draft`, `reduce` by whole factors); a palette image is resized as it is decoded (nearest
    neighbour, one byte per pixel) and expanded to RGBA only once it is small."""
    try:
        image.seek(0)
        image.thumbnail((max_side, max_side))
        mode = "RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB"
        out = io.BytesIO()
        image.convert(mode).save(out, "PNG")
    except Exception as exc:  # truncated or corrupt pixel data shows only while decoding
        raise ImageRefused(f"{name} could not be read as an image: the file is damaged.") from exc
    return out.getvalue()


def _open_bounded(data: bytes, max_pixels: int, name: str, why: str = "") -> Image.Image:
    """The image with only its header read, refused if it states more than `max_pixels` pixels."""
    too_big = f"{name} has too many pixels; the limit is {max_pixels:,} pixels{why}. Please use a smaller image."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own guard, at twice its default limit
        raise ImageRefused(too_big) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRefused(f"{name} could not be read as an image: the file is damaged.") from exc
    # The header states the size before any pixel is decoded, so a bomb is refused without inflating it.
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageRefused(too_big.replace("has too many pixels", f"is {width}×{height} pixels"))
    return image


def _check_structure(data: bytes, max_pixels: int, name: str) -> None:
    """Size from the header, then structure and checksums, without decoding (or keeping) any pixel."""
    image = _open_bounded(data, max_pixels, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.verify()
    except Exception as exc:  # PIL raises a zoo of types for broken files
        raise ImageRefused(f"{name} could not be read as an image: the file is damaged.") from exc
    finally:
        image.close()


def check_request_size(prompt: str, images: tuple[InputImage, ...], *, extra_bytes: int = 0) -> None:
    """The upstream refuses requests over 20 MB; say so before sending rather than after. `extra_bytes`: what
    else goes in the body (earlier turns of a multi-turn edit, already encoded)."""
    encoded = sum((len(i.data) + 2) // 3 * 4 for i in images)
    size = len(prompt.encode()) + encoded + extra_bytes + _REQUEST_OVERHEAD
    if size > UPSTREAM_REQUEST_LIMIT:
        raise ImageRefused(
            f"Together the images are too large for the image model ({_mb(size)} encoded; the limit is "
            f"{_mb(UPSTREAM_REQUEST_LIMIT)}). Use fewer or smaller images."
        )


def fit_to_limit(data: bytes, mime_type: str, limit: int) -> tuple[bytes, str]:
    """Re-encode an image that is larger than a channel's upload limit: JPEG at falling quality, then smaller.
    Without Huffman optimisation: it saves ~5 % of the bytes but triples each try's time (a 4K picture: 0.6 s
    instead of 0.17 s per quality; bench/overhead.py leg 4)."""
    if len(data) <= limit:
        return data, mime_type
    with Image.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    scale = 1.0
    while True:
        frame = (
            image
            if scale == 1.0
            else image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        )
        for quality in (92, 85, 75, 60):
            out = io.BytesIO()
            frame.save(out, "JPEG", quality=quality)
            if out.tell() <= limit:
                log.info(
                    "re-encoded a %d-byte image to %d bytes (JPEG q%d, scale %.2f)",
                    len(data),
                    out.tell(),
                    quality,
                    scale,
                )
                return out.getvalue(), "image/jpeg"
        scale *= 0.75
        if frame.width <= 16:
            raise InvalidRequest("The image could not be made small enough to upload here.")


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
