"""How long the bot takes to hand a request to the second provider when the first fails, beside a naive loop.

    503    Google (the fake Gemini) answers 503 at once: time from its answer being ready to the request having
           fully reached the gateway (the strict fake, openai-chat), without and with a 1.5 MB input picture.
    down   nothing listens on Google's port: time from the request's start to the gateway.
    stall  Google accepts and never answers (attempt timeout 0.5 s): time from the request's start to the gateway.

In "503" no circuit may open (every request must meet the failure); "stall" uses the default circuit (5 failures,
60 s), which is what makes the difference there. The bot's chain (`bot.providers.factory.build_chain`: a lane
per provider with its own circuit and 429 pause) runs beside two naive versions on the same provider objects: "try
each" (`for p in providers: try: return await p.generate(...)`) and "retry each" (each provider wrapped in the
bot's own retry policy before moving on, as a retrying client library would). All servers run in this process on
127.0.0.1 and share one clock.

Run from the repository root: `python bench/failover.py [--runs 200]`. Target: under 50 ms p95 on "503".
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from PIL import Image  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.models import GeneratedImage, ImageOptions, InputImage  # noqa: E402
from bot.providers.config import load_providers  # noqa: E402
from bot.providers.factory import build_chain  # noqa: E402
from bot.providers.retry import call_with_retries  # noqa: E402
from bot.services import build_lane, build_retry_policy  # noqa: E402
from tests.fakes.gemini import FakeGemini, GeminiReply  # noqa: E402
from tests.fakes.openai_gateway import FakeGateway  # noqa: E402

Generate = Callable[[str, tuple[InputImage, ...], ImageOptions], Awaitable[GeneratedImage]]
STALL_TIMEOUT = 0.5


class TimedGemini(FakeGemini):
    """Notes when each answer is ready to go on the wire."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answered_at: list[float] = []

    async def _handle(self, http):  # type: ignore[override]
        response = await super()._handle(http)
        self.answered_at.append(time.perf_counter())
        return response


class TimedGateway(FakeGateway):
    """The strict fake gateway (openai-chat), noting when each request has fully arrived (its body read)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(kinds=("chat",), **kwargs)
        self.arrived_at: list[float] = []

    def _validate(self, record):  # type: ignore[override]
        self.arrived_at.append(time.perf_counter())
        return super()._validate(record)


def settings_for(google_url: str, attempt_timeout: float, circuit_threshold: int = 5) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        gemini_api_key=SecretStr("fake-gemini-key-0123456789"),
        gemini_base_url=google_url,
        gemini_attempt_timeout_seconds=attempt_timeout,
        circuit_failure_threshold=circuit_threshold,
        log_level="ERROR",
    )


def variants(session: aiohttp.ClientSession, settings: Settings, gateway: TimedGateway) -> dict[str, Generate]:
    env = {
        "PROVIDERS": "gemini,gw",
        "PROVIDER_GW_KIND": "openai-chat",
        "PROVIDER_GW_BASE_URL": gateway.base_url,
        "PROVIDER_GW_ALLOW_HTTP": "true",
        "PROVIDER_GW_API_KEY": gateway.api_key,
        "PROVIDER_GW_MODELS": f"{settings.gemini_model}=google/{settings.gemini_model}",
    }
    configs = load_providers(settings, env)
    chain = build_chain(session, settings, configs, lane_for=lambda config: build_lane(settings, config))
    plain = [member.provider for member in chain.members]  # the same provider objects, without lanes
    policy = build_retry_policy(settings)

    async def try_each(prompt: str, images: tuple[InputImage, ...], options: ImageOptions) -> GeneratedImage:
        for provider in plain:
            try:
                return await provider.generate(prompt, images, options)
            except Exception:
                continue
        raise RuntimeError("every provider failed")

    async def retry_each(prompt: str, images: tuple[InputImage, ...], options: ImageOptions) -> GeneratedImage:
        for provider in plain:
            try:
                return await call_with_retries(lambda p=provider: p.generate(prompt, images, options), policy)
            except Exception:
                continue
        raise RuntimeError("every provider failed")

    return {"bot chain": chain.generate, "naive try each": try_each, "naive retry each": retry_each}


async def run(
    generate: Generate,
    runs: int,
    gateway: TimedGateway,
    images: tuple[InputImage, ...],
    started_from: list[float] | None,
) -> list[float]:
    """Milliseconds from the primary's answer (or, without one, the request's start) to the gateway."""
    gaps = []
    for _ in range(runs):
        before = len(gateway.arrived_at)
        answered = len(started_from) if started_from is not None else 0
        start = time.perf_counter()
        await generate("a red fox in the snow", images, ImageOptions("16:9"))
        assert len(gateway.arrived_at) == before + 1
        if started_from is not None:
            assert len(started_from) > answered, "the primary was not asked"
        origin = started_from[answered] if started_from is not None else start
        gaps.append((gateway.arrived_at[-1] - origin) * 1000)
    return gaps


def edit_input() -> tuple[InputImage, ...]:
    out = io.BytesIO()
    Image.effect_noise((700, 700), 80).convert("RGB").save(out, "PNG")  # noise barely compresses: ~1.5 MB
    return (InputImage(out.getvalue(), "image/png"),)


async def scenario(name: str, runs: int, slow_runs: int, images: tuple[InputImage, ...]) -> list[tuple]:
    rows = []
    for variant in ("bot chain", "naive try each", "naive retry each"):
        count = slow_runs if variant == "naive retry each" else runs
        async with TimedGateway() as gateway, aiohttp.ClientSession() as session:
            if name == "down":
                settings = settings_for("http://127.0.0.1:9", 2.0)
                google = None
            else:
                google = TimedGemini()
                await google.start()
                reply = GeminiReply.overloaded() if name.startswith("503") else GeminiReply.stall(3600)
                google.enqueue(*[reply] * (count * 3 + 10))
                if name == "stall":
                    settings = settings_for(google.base_url, STALL_TIMEOUT)
                else:
                    # Every request must meet Google's 503 to measure the hand-over: no circuit may open.
                    settings = settings_for(google.base_url, 2.0, circuit_threshold=1_000_000)
            try:
                generate = variants(session, settings, gateway)[variant]
                await run(generate, 2, gateway, images, None)  # warm connections and code paths
                origin = google.answered_at if google is not None and name.startswith("503") else None
                started = time.perf_counter()
                gaps = await run(generate, count, gateway, images, origin)
                elapsed = time.perf_counter() - started
            finally:
                if google is not None:
                    await google.stop()
        rows.append((name, variant, count, gaps, elapsed))
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--slow-runs", type=int, default=8, help="runs of the naive retry loop (seconds each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rows = []
    rows += await scenario("503", args.runs, args.slow_runs, ())
    rows += await scenario("503 + 1.5 MB edit", args.runs // 2, args.slow_runs, edit_input())
    rows += await scenario("down", args.runs, args.slow_runs, ())
    rows += await scenario("stall", max(20, args.runs // 4), args.slow_runs, ())
    print(f"\n{'scenario':20} {'variant':18} {'runs':>5} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}")
    for name, variant, count, gaps, _ in rows:
        print(
            f"{name:20} {variant:18} {count:5d} {statistics.median(gaps):9.2f} {pct(gaps, 0.95):9.2f} "
            f"{statistics.fmean(gaps):9.2f}"
        )
    print("\n503: from Google's answer to the gateway; down/stall: from the request's start to the gateway.")
    print("target: under 50 ms p95 for the bot chain on 503")


if __name__ == "__main__":
    asyncio.run(main())
