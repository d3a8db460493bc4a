"""A busy channel under Discord's rate limits: 40 members reply to a picture in one channel at once.

    python bench/busy_channel.py [--members 40] [--time-factor 1.0] [--latency 3.0]

The fake Discord enforces Discord's per-channel buckets (5 message creates and 5 edits per 5 s per channel, the
global 50 per second) with real 429s and rate-limit headers; `--time-factor` shrinks every window (and the
model's latency, and the bot's own intervals) by that factor, so 0.1 runs ten times faster with the same shape.
The fake Gemini answers each request after `--latency` seconds.

Printed for each contender: total time from the first reply to the last picture shown, and the result lag (from
Gemini's answer to the picture reaching Discord) p50/p95/max, in unscaled seconds; the writes it made in the
channel and the 429s it met. "this bot" is the real bot with its defaults; "results only" is a minimal bot that
posts nothing but each finished picture, as a reply: the floor the channel's create bucket allows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import discord  # noqa: E402
from discord.ext import commands  # noqa: E402

from bot.app import ImageBot  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fakes.discord import FakeDiscord, Message  # noqa: E402
from tests.fakes.discord_ratelimits import RateLimits  # noqa: E402
from tests.fakes.gemini import FakeGemini  # noqa: E402

CHANNEL_WRITES = ("POST /channels/{channel_id}/messages", "PATCH /channels/{channel_id}/messages/{message_id}")


class TimedGemini(FakeGemini):
    """Notes when each answer is ready to go on the wire, by the prompt's last line (the instruction)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered_at: dict[str, float] = {}

    async def _handle(self, http):  # type: ignore[no-untyped-def,override]
        response = await super()._handle(http)
        body = json.loads(await http.read())  # aiohttp keeps the body it read
        prompt = body["contents"][-1]["parts"][0]["text"]
        self.answered_at[prompt.splitlines()[-1].removeprefix("Now: ")] = self.clock()
        return response


def results_only_bot(gemini: FakeGemini) -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    session: list[aiohttp.ClientSession] = []

    @bot.listen()
    async def on_message(message: discord.Message) -> None:
        if message.author.bot or bot.user is None or bot.user not in message.mentions:
            return
        if not session:
            session.append(aiohttp.ClientSession())
        prompt = message.content.replace(bot.user.mention, "").strip()
        url = f"{gemini.base_url}/v1beta/models/gemini-2.5-flash-image:generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        async with session[0].post(url, json=body, headers={"x-goog-api-key": gemini.api_key}) as resp:
            data = await resp.json()
        part = data["candidates"][0]["content"]["parts"][-1]["inlineData"]
        file = discord.File(io.BytesIO(base64.b64decode(part["data"])), filename="image.png")
        await message.reply(file=file, mention_author=False)

    async def close() -> None:
        for s in session:
            await s.close()
        await commands.Bot.close(bot)

    bot.close = close  # type: ignore[method-assign]
    return bot


def this_bot(fake: FakeDiscord, gemini: FakeGemini, tmp: Path, factor: float) -> ImageBot:
    settings = make_settings(
        fake,
        gemini,
        tmp / "bot.sqlite3",
        daily_quota=-1,
        global_daily_image_cap=-1,
        global_daily_cost_cap_usd=-1,
        upstream_rpm=100_000,
        upstream_concurrency=100,
        progress_edit_interval_seconds=2.0 * factor,
        queue_report_interval_seconds=2.0 * factor,
        discord_channel_window_seconds=5.0 * factor,
        gemini_timeout_seconds=600,
        gemini_attempt_timeout_seconds=600,
    )
    return ImageBot(settings)


def shown_at(fake: FakeDiscord, ask: Message) -> float | None:
    """When the picture answering `ask` reached Discord: the successful write that put a file in the reply."""
    for request in fake.requests:
        if request.status != 200 or not request.files or request.route not in CHANNEL_WRITES:
            continue
        if request.route.startswith("POST"):
            reference = (request.json or {}).get("message_reference") or {}
            if str(reference.get("message_id")) == str(ask.id):
                return request.at
        else:
            message = fake.message(int(request.path.rsplit("/", 1)[1]))
            if message is not None and message.reference_id == ask.id:
                return request.at
    return None


async def run(name: str, members: int, factor: float, latency: float) -> dict[str, Any]:
    async with FakeDiscord(timeout=600) as fake:
        async with TimedGemini(clock=fake.now, latency=latency * factor) as gemini:
            with tempfile.TemporaryDirectory() as tmp:
                bot = this_bot(fake, gemini, Path(tmp), factor) if name == "this bot" else results_only_bot(gemini)
                async with fake.running(bot):
                    picture = await picture_to_reply_to(fake, gemini, bot)
                    crowd = [fake.add_member(f"member{i}") for i in range(members)]
                    fake.limiter.configure(RateLimits(time_factor=factor))
                    first = len(fake.requests)
                    started = fake.now()
                    asks = [
                        await fake.send_message(content=f"make it night {i}", reply_to=picture, author=member)
                        for i, member in enumerate(crowd)
                    ]

                    def all_shown() -> list[float] | None:
                        times = [shown_at(fake, ask) for ask in asks]
                        return None if None in times else times  # type: ignore[return-value]

                    shown = await fake.wait_for(all_shown, what="every picture")
                    if isinstance(bot, ImageBot):
                        await bot.services.pipeline.drain(within=60)
                    lags = sorted(
                        (at - gemini.answered_at[f"make it night {i}"]) / factor for i, at in enumerate(shown)
                    )
                    ours = fake.requests[first:]
                    return {
                        "total": (max(shown) - started) / factor,
                        "p50": lags[len(lags) // 2],
                        "p95": lags[min(len(lags) - 1, int(0.95 * len(lags)))],
                        "max": lags[-1],
                        "writes": sum(1 for r in ours if r.route in CHANNEL_WRITES and r.status == 200),
                        "429s": sum(1 for r in ours if r.status == 429),
                    }


async def picture_to_reply_to(fake: FakeDiscord, gemini: FakeGemini, bot: commands.Bot) -> Message:
    if isinstance(bot, ImageBot):
        ix = await fake.slash("imagine", {"prompt": "a quiet street"})
        picture = await ix.wait_for_original(lambda m: m.attachments)
        await bot.services.pipeline.drain(within=60)
        return picture
    # The minimal bot has no command: its picture is any message with an image, posted by the bot.
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send(file=discord.File(io.BytesIO(b"\x89PNG\r\n\x1a\n"), filename="street.png"))
    found = fake.message(sent.id)
    assert found is not None
    return found


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--time-factor", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds Gemini takes per picture")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{args.members} members reply at once in one channel; seconds (unscaled), time factor {args.time_factor}")
    print(f"{'contender':>14} {'total':>7} {'lag p50':>8} {'lag p95':>8} {'lag max':>8} {'writes':>7} {'429s':>5}")
    for name in ("this bot", "results only"):
        began = time.perf_counter()
        got = await run(name, args.members, args.time_factor, args.latency)
        print(
            f"{name:>14} {got['total']:7.1f} {got['p50']:8.1f} {got['p95']:8.1f} {got['max']:8.1f}"
            f" {got['writes']:>7} {got['429s']:>5}   ({time.perf_counter() - began:.0f} s wall)"
        )


if __name__ == "__main__":
    asyncio.run(main())
