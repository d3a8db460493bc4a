"""What hostile input images cost the bot: time and peak memory of judging them, beside decoding them whole.

    one:    a 37 KB 7000x7000 GIF (it must be converted to PNG before it can go upstream)
    three:  two such GIFs and a broken third file, in one request (the request is refused either way)
    4096:   a 4096x4096 GIF, the largest the bot converts by default (MAX_CONVERTED_INPUT_PIXELS)

Each case runs in a fresh process and reports the growth of its peak resident memory (VmHWM), so one case's
peak does not hide the next. "bot" is `cogs.ui.inputs.download` with the bot's default settings; "naive" opens each
image with Pillow, decodes it whole and converts it, all images at once (what the bot did before issue 12).

Run from the repository root: `python bench/inputs.py`.
"""

from __future__ import annotations

import asyncio
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDE = 7000


def hostile_gif(side: int = SIDE) -> bytes:
    """A one-colour GIF: LZW squeezes `side`² pixels into a few tens of kilobytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (side, side), 0).save(out, "GIF")
    return out.getvalue()


class _Attachment:
    """What `download` reads of a discord.Attachment."""

    def __init__(self, i: int, data: bytes) -> None:
        self.id, self.filename, self._data = i, f"in{i}.gif", data

    async def read(self) -> bytes:
        return self._data


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, case: str, path: str) -> None:
    from bot.editing.images import ImageWorkers
    from bot.editing.inputs import InputJudge
    from bot.errors import InvalidRequest
    from cogs.ui.inputs import Pending, download

    gif = Path(path).read_bytes()
    files = [gif, gif, b"GIF89a" + b"\x00" * 64] if case == "three" else [gif]
    base = _peak_mib()
    started = time.perf_counter()
    outcome = "ok"
    try:
        if kind == "bot":
            pending = [Pending(_Attachment(i, data)) for i, data in enumerate(files)]  # type: ignore[arg-type]
            asyncio.run(download(pending, InputJudge(ImageWorkers())))
        else:
            asyncio.run(_naive(files))
    except (InvalidRequest, OSError, SyntaxError) as exc:
        outcome = f"refused: {str(exc)[:70]}"
    print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "mib": _peak_mib() - base, "outcome": outcome}))


async def _naive(files: list[bytes]) -> None:
    from PIL import Image

    def convert(data: bytes) -> bytes:
        out = io.BytesIO()
        with Image.open(io.BytesIO(data)) as image:
            image.convert("RGBA").save(out, "PNG")
        return out.getvalue()

    await asyncio.gather(*(asyncio.to_thread(convert, data) for data in files))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(*sys.argv[2:])
        return
    with tempfile.TemporaryDirectory() as tmp:
        hostile, largest = Path(tmp) / "hostile.gif", Path(tmp) / "largest.gif"
        hostile.write_bytes(hostile_gif())
        largest.write_bytes(hostile_gif(4096))
        print(f"hostile GIF: {SIDE}x{SIDE}, {hostile.stat().st_size / 1024:.0f} KB")
        for case in ("one", "three", "4096"):
            path = largest if case == "4096" else hostile
            for kind in ("bot", "naive"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, case, str(path)], capture_output=True, text=True
                )
                if out.returncode:
                    print(out.stderr)
                    continue
                got = json.loads(out.stdout)
                print(f"{case:>5} {kind:>5}: {got['ms']:7.0f} ms  peak +{got['mib']:6.0f} MiB  {got['outcome']}")


if __name__ == "__main__":
    main()
