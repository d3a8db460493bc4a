"""What a hostile input image can cost (issue 12, item 2): a 37 KB 7000x7000 GIF used to take ~235 MiB and a
second to judge, and three of them with a broken third ~470 MiB. Each case runs `cogs.ui.inputs.download` in a
fresh process and reads that process's peak resident memory (VmHWM) before and after."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.editing.images import ImageWorkers
from bot.editing.inputs import InputJudge
from bot.errors import ImageRefused
from bot.models import InputImage
from cogs.ui.inputs import Pending, download

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

CHILD = """
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from bot.editing.images import ImageWorkers
from bot.editing.inputs import InputJudge
from bot.errors import InvalidRequest
from cogs.ui.inputs import Pending, download

def peak():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

class Attachment:
    def __init__(self, i, data):
        self.id, self.filename, self._data = i, f"in{{i}}.gif", data
    async def read(self):
        return self._data

files = [Path(p).read_bytes() for p in sys.argv[1:]]
judge = InputJudge(ImageWorkers(), **{options!r})
base = peak()
try:
    got = asyncio.run(download([Pending(Attachment(i, d)) for i, d in enumerate(files)], judge))
    outcome = [len(s.image.data) for s in got]
except InvalidRequest as exc:
    outcome = str(exc)
print(json.dumps({{"grew": peak() - base, "outcome": outcome}}))
"""


def one_colour_gif(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("P", (side, side), 0).save(out, "GIF")
    return out.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gifs") / "hostile.gif"
    path.write_bytes(one_colour_gif(7000))
    assert path.stat().st_size < 64 * 1024
    return path


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gifs") / "broken.gif"
    path.write_bytes(b"GIF89a" + b"\x00" * 64)
    return path


def judged_in_a_fresh_process(paths: list[Path], **options: object) -> dict:
    code = CHILD.format(root=str(ROOT), options=options)
    done = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_7000px_gif_is_refused_from_its_header(hostile):
    got = judged_in_a_fresh_process([hostile])
    assert "“in0.gif” is 7000×7000 pixels; the limit is 16,777,216 pixels for a GIF" in got["outcome"]
    assert got["grew"] < 16 * MIB  # was ~235 MiB


def test_three_with_a_broken_third_stop_at_the_first_refusal(hostile, broken):
    got = judged_in_a_fresh_process([hostile, hostile, broken])
    assert "in0.gif" in got["outcome"]
    assert got["grew"] < 16 * MIB  # was ~470 MiB


def test_allowed_to_convert_it_the_gif_is_shrunk_while_converting_one_at_a_time(hostile, broken):
    # An operator who raises the limit: the frame is resized as it is decoded (one byte per pixel) and only
    # the small result is expanded to RGBA; the images are judged one after another, never together.
    roomy = {"max_converted_pixels": 50_000_000}
    got = judged_in_a_fresh_process([hostile], **roomy)
    assert isinstance(got["outcome"], list) and got["grew"] < 90 * MIB  # was ~235 MiB
    got = judged_in_a_fresh_process([hostile, hostile, broken], **roomy)
    assert "“in2.gif” could not be read as an image" in got["outcome"]
    assert got["grew"] < 90 * MIB  # was ~470 MiB


def test_a_converted_image_is_at_most_the_longest_side(hostile):
    judge = InputJudge(ImageWorkers(1), max_converted_pixels=50_000_000, max_side=512)
    image = asyncio.run(judge.judge(hostile.read_bytes(), "x"))
    with Image.open(io.BytesIO(image.data)) as png:
        assert png.format == "PNG" and png.size == (512, 512)


class Attachment:
    def __init__(self, i: int, data: bytes) -> None:
        self.id, self.filename, self._data = i, f"in{i}.png", data

    async def read(self) -> bytes:
        return self._data


class CountingJudge:
    """Counts what reached the decoder; refuses what says "bad"."""

    def __init__(self) -> None:
        self.judged: list[str] = []

    async def judge(self, data: bytes, name: str) -> InputImage:
        self.judged.append(name)
        if data == b"bad":
            raise ImageRefused(f"{name} is damaged")
        return InputImage(data, "image/png")


async def test_images_after_a_refused_one_are_never_judged():
    judge = CountingJudge()
    pending = [Pending(Attachment(i, data)) for i, data in enumerate([b"ok", b"bad", b"ok"])]  # type: ignore[arg-type]
    with pytest.raises(ImageRefused):
        await download(pending, judge)  # type: ignore[arg-type]
    assert judge.judged == ["“in0.png”", "“in1.png”"]
