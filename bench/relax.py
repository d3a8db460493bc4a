"""What the relax lane adds to a picture, beside calling Google's Flex tier directly.

    flex    a relax request served by Flex at the first try: the lane (its own scheduler's gate, the job written
            down in SQLite before anything is sent, each attempt recorded, the ending stored) around one
            generateContent with `"serviceTier": "flex"`; beside the same call made bare
            (`GeminiProvider.generate`). The difference is the lane's own cost per request.
    batch   a relax request that Flex sheds once and that goes to a Batch job which Google has already finished:
            from the request's start to its picture (one shed Flex call, the submission, one poll), beside the
            three bare calls (Flex, create, get) in a row.

Both run against the strict fake Gemini on 127.0.0.1 with no latency of its own, so the numbers are the bot's
own overhead (and the fake's). Run from the repository root: `python bench/relax.py [--runs 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.models import ImageOptions, ImageRequest, Price  # noqa: E402
from bot.providers.gemini import build_request  # noqa: E402
from bot.relax import RelaxLane  # noqa: E402
from bot.services import build_relax  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from tests.fakes.gemini import FakeGemini  # noqa: E402

MODEL = "gemini-nano-banana-2.1"
OPTIONS = ImageOptions("1:1", model=MODEL, size="1K", tier="flex")
PRICE = Price(1, 0.0168)


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms"


async def timed(runs: int, one: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        await one(i)
        samples.append(time.perf_counter() - started)
    return samples


async def through_lane(lane: RelaxLane, i: int) -> None:
    request = ImageRequest(user_id=1, channel_id=2, prompt=f"a fox {i}", options=OPTIONS)
    job = await lane.register(str(10_000 + i), generation_id=i, entry_id=i, request=request, model=MODEL)
    ticket = lane.admit(1, job.key)
    try:
        await lane.run(job, ticket, None, price=PRICE)
    finally:
        lane.release(ticket)


async def main(runs: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        async with FakeGemini() as gemini, aiohttp.ClientSession() as http:
            settings = Settings(
                _env_file=None,
                gemini_api_key=gemini.api_key,
                gemini_base_url=gemini.base_url,
                database_path=Path(tmp) / "unused.sqlite3",
                relax_rpm=1_000_000,
                relax_concurrency=100,
                relax_user_max_pending=100,
                relax_flex_attempts=1,
                relax_flex_backoff_seconds=0,
                relax_batch_poll_seconds=0.001,
            )
            lane = build_relax(http, db, settings)
            upstream = lane.upstream
            assert upstream is not None
            # Warm up the connection pool and the database.
            await through_lane(lane, -1)

            bare = await timed(runs, lambda i: upstream.flex.generate(f"a fox {i}", (), OPTIONS))
            laned = await timed(runs, lambda i: through_lane(lane, runs + i))
            print(f"flex   bare call      {percentiles(bare)}")
            print(f"flex   relax lane     {percentiles(laned)}")
            extra = statistics.median(laned) - statistics.median(bare)
            print(f"       the lane adds  {extra * 1000:7.2f} ms at the median (job stored, gate, attempt, ending)")

            gemini.flex_shed = lambda request: True
            gemini.batches.timing = (0.0, 0.0)  # Google has finished by the first poll

            async def bare_batch(i: int) -> None:
                try:
                    await upstream.flex.generate(f"an owl {i}", (), OPTIONS)
                except Exception:
                    pass
                body = build_request(f"an owl {i}", (), ImageOptions("1:1", model=MODEL, size="1K", tier="batch"))
                name = await upstream.batches.create(MODEL, [("k", body)], display_name="bench")
                await upstream.batches.get(name)

            batch_runs = max(10, runs // 4)
            bare_b = await timed(batch_runs, bare_batch)
            laned_b = await timed(batch_runs, lambda i: through_lane(lane, 10 * runs + i))
            print(f"batch  bare calls     {percentiles(bare_b)}")
            print(f"batch  relax lane     {percentiles(laned_b)}")
            extra = statistics.median(laned_b) - statistics.median(bare_b)
            print(f"       the lane adds  {extra * 1000:7.2f} ms at the median (and one poll interval: 1 ms here)")
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(main(parser.parse_args().runs))
