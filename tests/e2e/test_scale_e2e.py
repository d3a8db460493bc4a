"""Two bot processes, as an operator runs them: `python -m bot` twice, one per shard of the fake Discord, on one
PostgreSQL and one Redis, against the strict fake Gemini with one RPM window for both.

- Between them they never send Gemini more than its window allows (0 rate-limit answers), though each alone would
  be allowed as many.
- A member with 5 credits left (USER_GLOBAL_DAILY_CREDITS, across every server) who sends 100 /imagine at once,
  half in a server of each process, gets exactly 5 pictures; the other 95 are told why, privately.
- One process killed with -9 while its requests wait on Gemini: their credits stay held while its lease runs, and
  the other process gives them back once the lease has run out, never before.

The processes reach the fake Discord through `tests/e2e/site/sitecustomize.py` (discord.py's base URLs); nothing
else about them is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fakes.discord import FakeDiscord, Interaction
from tests.fakes.discord_gateway import shard_of
from tests.fakes.discord_state import Guild, Member
from tests.fakes.gemini import FakeGemini

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).resolve().parent / "site"
LEASE = 2.0  # PROCESS_LEASE_SECONDS: short, so the test sees one run out
RPM, WINDOW = 3, 2.0  # Gemini's allowance: 3 starts in any two seconds, for both processes together
CHANNEL_MESSAGE = 4


def guild_on_shard(fake: FakeDiscord, shard: int) -> Guild:
    while True:
        guild = fake.add_guild(f"Server on shard {shard}")
        if shard_of(guild.id, 2) == shard:
            return guild
        fake.advance(0.001)


class Process:
    """One `python -m bot` with its output in files (a pipe left unread could block it)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, logs: Path) -> None:
        self.name, self.proc, self.logs = name, proc, logs

    @property
    def stderr(self) -> str:
        return self.logs.with_suffix(".err").read_text(errors="replace")


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Process] = []

    async def start(name: str, env: dict[str, str], *args: str) -> Process:
        logs = tmp_path / name
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GEMINI_"))}
        clean["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT)])
        with logs.with_suffix(".out").open("wb") as out, logs.with_suffix(".err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", *args, cwd=tmp_path, env={**clean, **env}, stdout=out, stderr=err
            )
        process = Process(name, proc, logs)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def answer(ix: Interaction) -> str:
    """ "picture" once the result shows, or what the member was told privately."""

    def found() -> str | None:
        if ix.response_type == CHANNEL_MESSAGE and ix.ephemeral:
            return str(ix.callback.data["content"])
        original = ix.original if ix.deferred else None
        return "picture" if original is not None and original.attachments else None

    return await ix.wait_until(found, what="a picture or a refusal")


async def query(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_two_processes_share_the_window_the_credits_and_a_dead_one_s_holds(
    processes, postgres_url, redis_url, tmp_path
):
    async with FakeDiscord(shard_count=2) as fake, FakeGemini(rpm=RPM, window=WINDOW) as gemini:
        fake.timeout = 30.0  # interpreters start, and the window lets 3 requests a second through
        guilds = {n: guild_on_shard(fake, n) for n in (0, 1)}
        alice = fake.member.user
        for guild in guilds.values():
            fake.add_member(alice, guild=guild)
        others: list[tuple[Member, Guild]] = [
            (fake.add_member(f"m{n}-{i}", guild=guilds[n]), guilds[n]) for n in (0, 1) for i in range(3)
        ]
        common = {
            "DISCORD_TOKEN": fake.token,
            "GEMINI_API_KEY": gemini.api_key,
            "GEMINI_BASE_URL": gemini.base_url,
            "GIB_TEST_DISCORD_URL": fake.base_url,
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "SHARD_COUNT": "2",
            "PROCESS_LEASE_SECONDS": str(LEASE),
            "UPSTREAM_RPM": str(RPM),
            "UPSTREAM_WINDOW_SECONDS": str(WINDOW),
            # 0.6 s of each 2 s window (the default is 0.5 s of 60): a start stamped by Redis reaches the fake after
            # the process built and sent the request, which on a loaded 2-core machine was seen to take over 0.2 s.
            "UPSTREAM_WINDOW_MARGIN_SECONDS": "18",
            "UPSTREAM_CONCURRENCY": "4",
            "DAILY_QUOTA": "1000",
            "USER_GLOBAL_DAILY_CREDITS": "5",
            "USER_MAX_PENDING": "200",
            "USER_DAILY_UPSTREAM_ATTEMPTS": "-1",
            "GLOBAL_DAILY_IMAGE_CAP": "-1",
            "GLOBAL_DAILY_COST_CAP_USD": "-1",
            "PROGRESS_EDIT_INTERVAL_SECONDS": "5",
            "SHUTDOWN_GRACE_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }
        # Commands everywhere, as `python -m bot sync --global` publishes them, while both bots start.
        sync = await processes("sync", common, "sync", "--global")
        a = await processes("a", {**common, "SHARD_IDS": "0", "INSTANCE_ID": "a"})
        b = await processes("b", {**common, "SHARD_IDS": "1", "INSTANCE_ID": "b"})
        assert await sync.proc.wait() == 0, sync.stderr
        await fake.wait_for(
            lambda: {s.shard for s in fake.gateway.sessions if s.ready} == {(0, 2), (1, 2)},
            what="both processes connected, one shard each",
        )

        # --- 100 requests from one member with 5 credits, half to each process, beside other members' -------
        asks = [
            fake.slash("imagine", {"prompt": f"a cat no. {i}"}, user=alice, channel=guilds[i % 2].channels[0])
            for i in range(100)
        ]
        asks += [
            fake.slash("imagine", {"prompt": f"a dog for {who.user.name}"}, user=who.user, channel=where.channels[0])
            for who, where in others
        ]
        interactions = await asyncio.gather(*asks)
        outcomes = await asyncio.gather(*(answer(ix) for ix in interactions))
        mine, theirs = outcomes[:100], outcomes[100:]
        assert mine.count("picture") == 5 and theirs == ["picture"] * len(others)
        refusals = [o for o in mine if o != "picture"]
        assert all("across all servers and DMs" in text for text in refusals), refusals[:3]
        assert {ix.channel.guild for ix, o in zip(interactions, mine, strict=False) if o == "picture"} <= set(
            guilds.values()
        )
        assert gemini.rate_limit_hits == 0 and len(gemini.served) == 5 + len(others)
        sql = "SELECT state, SUM(credits) FROM quota_entries WHERE user_id = $1 GROUP BY state"
        for _ in range(200):  # a picture shows before its process records the commit
            credits = {r[0]: r[1] for r in await query(postgres_url, sql, alice.id)}
            if "open" not in credits:
                break
            await asyncio.sleep(0.05)
        assert credits == {"committed": 5}

        # --- a process killed with -9 while its requests wait on Gemini ---------------------------------------
        gemini.latency = lambda record: 60.0 if "slowly" in record.prompt else 0.0
        bob = fake.add_member("bob", guild=guilds[0])
        held = [
            await fake.slash(
                "imagine", {"prompt": f"a fox drawn slowly {i}"}, user=bob.user, channel=guilds[0].channels[0]
            )
            for i in range(2)
        ]
        await fake.wait_for(lambda: gemini.in_flight == 2, what="a's two requests waiting on Gemini")
        [(lease_until,)] = await query(postgres_url, "SELECT lease_until FROM process_leases WHERE instance_id = 'a'")
        a.proc.send_signal(signal.SIGKILL)
        await a.proc.wait()
        open_now = await query(postgres_url, "SELECT state FROM quota_entries WHERE user_id = $1", bob.user.id)
        assert [r[0] for r in open_now] == ["open", "open"]  # the lease still runs: nobody takes them yet

        async def refunded() -> list[Any]:
            return await query(
                postgres_url,
                "SELECT reason, ended_at FROM quota_entries WHERE user_id = $1 AND state = 'refunded'",
                bob.user.id,
            )

        for _ in range(int(10 * LEASE / 0.05)):
            if len(await refunded()) == 2:
                break
            await asyncio.sleep(0.05)
        rows = await refunded()
        assert [r["reason"] for r in rows] == ["lease-expired", "lease-expired"]
        assert all(r["ended_at"] >= lease_until for r in rows)  # never before a's lease had run out

        # The survivor still serves its shard (a's upstream slots came back with its lease).
        carol = fake.add_member("carol", guild=guilds[1])
        late = await fake.slash("imagine", {"prompt": "an owl"}, user=carol.user, channel=guilds[1].channels[0])
        assert await answer(late) == "picture"
        assert gemini.rate_limit_hits == 0
        assert held and all(not ix.original or not ix.original.attachments for ix in held)

        b.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(b.proc.wait(), 30) == 0, b.stderr
        assert "Traceback" not in b.stderr, b.stderr
        with contextlib.suppress(AssertionError):
            fake.take_failures()  # a's connection was cut by the kill, as Discord would see it
