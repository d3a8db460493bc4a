"""What the bot itself adds to `/imagine`, on the two legs it controls, beside a naive bot that has no pipeline.

    leg 1: the interaction leaves the fake Discord -> the request reaches the fake Gemini
           (gateway parse, moderation, quota reservation, generation row, defer, scheduler)
    leg 2: the fake Gemini's answer (a 1.5 MB PNG) is ready -> the image upload has fully reached the fake Discord
           (JSON + base64 decode, multipart upload)
    leg 3: the same for a 4K JPEG (5504x3072, 3.4 MB): it fits a server's 10 MiB upload limit as it is
    leg 4: the same for a detailed 4K JPEG (12.3 MB) over that limit: the bot re-encodes it off the event loop to
           fit (the naive bot's upload is refused with a 413, so it has no figure)

Both fakes run in this process on 127.0.0.1 and share one clock. The naive bot is what most tutorials write: a
slash command that defers, opens a new aiohttp session, posts to Gemini and sends a followup with the file; no
database, no quota, no moderation, no queue. The difference is the price of everything the pipeline guarantees.

Run from the repository root: `python bench/overhead.py [--runs 200] [--runs-4k 20]`. Target: under 10 ms p50 on
legs 1-2; legs 3-4 show what a 4K picture costs on the way to Discord (leg 4 is mostly the re-encode's CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import discord  # noqa: E402
from discord import app_commands  # noqa: E402
from discord.ext import commands  # noqa: E402

from bot.app import ImageBot  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fakes import discord_rest  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402
from tests.fakes.gemini import FakeGemini, GeminiReply  # noqa: E402
from tests.fakes.gemini_images import png_of_size  # noqa: E402

IMAGE_BYTES = 1_500_000
UPLOAD_LIMIT = 10 * 1024 * 1024  # a server without boosts


def jpeg_4k(sigma: int) -> bytes:
    """A 4K JPEG (what Nano Banana 2.1 makes at 4K, 16:9) whose weight grows with its noise, like a detailed
    picture's: sigma 10 is about 3.4 MB, sigma 100 about 12.3 MB."""
    from PIL import Image

    size = (5504, 3072)
    gradient = Image.linear_gradient("L").resize(size)
    bands = [Image.blend(gradient, Image.effect_noise(size, sigma), 0.5) for _ in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "JPEG", quality=92)
    return out.getvalue()


class TimedGemini(FakeGemini):
    """Notes when each answer is ready to go on the wire."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answered_at: list[float] = []

    async def _handle(self, http):  # type: ignore[override]
        response = await super()._handle(http)
        self.answered_at.append(self.clock())
        return response


def naive_bot(gemini: FakeGemini) -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())

    @bot.tree.command(name="imagine")
    @app_commands.describe(prompt="What to draw")
    async def imagine(interaction: discord.Interaction, prompt: str) -> None:
        """Draw."""
        await interaction.response.defer(thinking=True)
        async with aiohttp.ClientSession() as session:  # the usual per-request session
            url = f"{gemini.base_url}/v1beta/models/gemini-2.5-flash-image:generateContent"
            body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
            async with session.post(url, json=body, headers={"x-goog-api-key": gemini.api_key}) as resp:
                data = await resp.json()
        part = data["candidates"][0]["content"]["parts"][-1]["inlineData"]
        file = discord.File(io.BytesIO(base64.b64decode(part["data"])), filename="image.png")
        await interaction.followup.send(file=file)

    async def setup_hook() -> None:
        guild = discord.Object(id=fake_guild_id)
        bot.tree.copy_global_to(guild=guild)
        await bot.tree.sync(guild=guild)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


fake_guild_id = 0


async def measure(name: str, runs: int, make_bot, answers: list[tuple[str, bytes, str, int]]) -> dict[str, list[float]]:
    """Leg 1 and, per answer (leg name, bytes, declared type, runs), the leg from the answer to the upload."""
    global fake_guild_id
    uploads_done: list[float] = []
    parse_ms: list[float] = []  # the fake Discord's own share: reading and splitting the multipart upload
    original_read = discord_rest._read_body

    async def timed_read(request):
        started = fake.now()
        result = await original_read(request)
        if result[1]:  # a request that carried files
            uploads_done.append(fake.now())
            parse_ms.append((uploads_done[-1] - started) * 1000)
        return result

    discord_rest._read_body = timed_read
    try:
        async with FakeDiscord() as fake:
            fake_guild_id = fake.guild.id
            # A little latency, as Gemini takes seconds: the bot's own progress edit is done before the answer comes.
            async with TimedGemini(clock=fake.now, latency=0.02) as gemini:
                with tempfile.TemporaryDirectory() as tmp:
                    bot = make_bot(fake, gemini, Path(tmp))
                    async with fake.running(bot):
                        leg1: list[float] = []
                        legs: dict[str, list[float]] = {}
                        for leg, picture, mime, count in answers:
                            times = legs.setdefault(leg, [])
                            reads = legs.setdefault(f"  {leg[:5]}: of which the fake Discord reading it", [])
                            for i in range(count):
                                gemini.enqueue(GeminiReply.image(picture, mime_type=mime))
                                before = len(uploads_done)
                                ix = await fake.slash("imagine", {"prompt": f"a fox number {i}"})
                                await fake.wait_for(lambda b=before: len(uploads_done) > b, what="the upload")
                                await ix.wait_for_callback()
                                if leg.startswith("leg 2"):
                                    leg1.append((gemini.served[-1].at - ix.created_at) * 1000)
                                times.append((uploads_done[-1] - gemini.answered_at[-1]) * 1000)
                                reads.append(parse_ms[-1])
                                if hasattr(bot, "services"):
                                    await bot.services.pipeline.drain(within=30)
    finally:
        discord_rest._read_body = original_read
    return {"leg 1: interaction -> Gemini": leg1, **legs}


def ours(fake: FakeDiscord, gemini: FakeGemini, tmp: Path) -> ImageBot:
    # An unlimited quota: the benchmark makes more images than the default daily limit.
    settings = make_settings(
        fake,
        gemini,
        tmp / "bot.sqlite3",
        daily_quota=-1,
        user_global_daily_credits=-1,
        user_daily_upstream_attempts=-1,
        server_daily_image_cap=-1,
        server_daily_cost_cap_usd=-1,
        global_daily_image_cap=-1,
        global_daily_cost_cap_usd=-1,
        upstream_rpm=100_000,
        upstream_concurrency=8,
    )
    return ImageBot(settings)


def naive(fake: FakeDiscord, gemini: FakeGemini, tmp: Path) -> commands.Bot:
    return naive_bot(gemini)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--runs-4k", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("discord").setLevel(logging.ERROR)
    png, fits, too_big = png_of_size(IMAGE_BYTES), jpeg_4k(10), jpeg_4k(100)
    assert len(fits) < UPLOAD_LIMIT < len(too_big)
    legs = [
        ("leg 2: Gemini answer -> upload received", png, "image/png", args.runs),
        (f"leg 3: 4K JPEG ({len(fits) / 2**20:.1f} MB) -> upload", fits, "image/jpeg", args.runs_4k),
        (f"leg 4: 4K JPEG ({len(too_big) / 2**20:.1f} MB) -> re-encoded upload", too_big, "image/jpeg", args.runs_4k),
    ]
    results = {}
    for label, factory in (("this bot (full pipeline)", ours), ("naive bot (no pipeline)", naive)):
        started = time.perf_counter()
        # The naive bot cannot deliver the picture over the upload limit (Discord answers 413): no leg 4.
        mine = legs if factory is ours else legs[:2]
        results[label] = await measure(label, args.runs, factory, mine)
        print(f"{label}: {sum(leg[3] for leg in mine)} runs in {time.perf_counter() - started:.1f} s")
    print(f"\n{'':28} {'leg':50} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for label, measured in results.items():
        for leg, values in measured.items():
            print(
                f"{label:28} {leg:50} {pct(values, 0.5):8.2f} {pct(values, 0.95):8.2f} {statistics.fmean(values):8.2f}"
            )
    print("naive bot (no pipeline)      leg 4: fails: its upload is over the limit (413)")
    print("\ntarget: under 10 ms p50 on legs 1-2 for this bot")


if __name__ == "__main__":
    asyncio.run(main())
