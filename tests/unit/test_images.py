from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from bot.editing.images import check_request_size, fit_to_limit, prepare_input, sniff_mime
from bot.errors import InvalidRequest
from bot.models import InputImage

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 50_000_000}


def encode(fmt: str, size=(64, 48), mode="RGB", color=(200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt)
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A real PNG whose header claims width x height pixels of zeros, compressed to a few KB."""
    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 2000, 9)  # a valid deflate stream; truncated data is fine
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_supported_types_pass_through_byte_for_byte(fmt, mime):
    data = encode(fmt)
    image = prepare_input(data, **LIMITS)
    assert image.data == data and image.mime_type == mime


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_gif_and_bmp_are_converted_to_png(fmt):
    image = prepare_input(encode(fmt), **LIMITS)
    assert image.mime_type == "image/png" and sniff_mime(image.data) == "image/png"
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.size == (64, 48)


def test_a_file_whose_extension_lies_is_judged_by_its_bytes():
    # "cat.png" that is really a JPEG goes up as JPEG; a text file called .png is refused.
    assert prepare_input(encode("JPEG"), **LIMITS, name="cat.png").mime_type == "image/jpeg"
    with pytest.raises(InvalidRequest, match="not a PNG, JPEG"):
        prepare_input(b"hello, I am a text file", **LIMITS, name="notes.png")


@pytest.mark.parametrize("side", [10_000, 60_000])  # over our limit; over Pillow's own guard too
def test_decompression_bomb_is_refused_before_decoding(side):
    data = bomb_png(side, side)  # 100 MP / 3.6 GP declared, a few KB on disk
    assert len(data) < 100_000
    with pytest.raises(InvalidRequest, match="pixels; the limit is 50,000,000 pixels"):
        prepare_input(data, **LIMITS)


def test_truncated_image_is_refused_as_damaged():
    data = encode("PNG", size=(300, 300))
    with pytest.raises(InvalidRequest, match="damaged"):
        prepare_input(data[: len(data) // 2], **LIMITS)


def test_size_limit_names_both_sizes():
    with pytest.raises(InvalidRequest, match=r"is 0\.0 MB; the limit"):
        prepare_input(encode("PNG"), max_bytes=10, max_pixels=10**9)


def test_upstream_request_limit():
    big = InputImage(b"x" * (8 * 1024 * 1024), "image/png")
    check_request_size("p", (big,))
    with pytest.raises(InvalidRequest, match="too large for the image model"):
        check_request_size("p", (big, big))


def test_fit_to_limit_reencodes_only_when_needed():
    noisy = Image.effect_noise((800, 800), 100).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "PNG")
    data = out.getvalue()
    assert fit_to_limit(data, "image/png", len(data)) == (data, "image/png")
    smaller, mime = fit_to_limit(data, "image/png", len(data) // 4)
    assert mime == "image/jpeg" and len(smaller) <= len(data) // 4
    with Image.open(io.BytesIO(smaller)) as decoded:
        assert decoded.format == "JPEG"
