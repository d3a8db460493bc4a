"""The throwaway PostgreSQL and Redis of tests/servers.py: they answer, each test starts clean, and a missing
server is a skip that says why (a failure under CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests import servers
from tests.servers import postgres_server, postgres_url, redis_server, redis_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


async def test_postgres_runs_queries_in_a_database_of_the_tests_own(postgres_url):  # noqa: F811
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == postgres_url.rsplit("/", 1)[1] != "postgres"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert (await conn.fetchval("SHOW server_version_num")).isdigit()
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
        assert await conn.fetch("SELECT name FROM t ORDER BY id") == [("a",), ("b",)]
    finally:
        await conn.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_every_test_gets_an_empty_database(postgres_url, run):  # noqa: F811
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables == []
        await conn.execute("CREATE TABLE left_behind (run int)")  # the second run fails here if it is shared
        await conn.execute("INSERT INTO left_behind VALUES ($1)", run)
    finally:
        await conn.close()


async def test_the_per_test_database_is_dropped_afterwards(postgres_server):  # noqa: F811
    name = await postgres_server.create_database()
    conn = await asyncpg.connect(postgres_server.url_for(name))  # left open on purpose: the drop must still work
    try:
        await postgres_server.drop_database(name)
        admin = await asyncpg.connect(postgres_server.url)
        try:
            assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
        finally:
            await admin.close()
    finally:
        conn.terminate()


def test_postgres_does_not_run_as_root(postgres_server):  # noqa: F811
    owner = (postgres_server.directory / "data").stat().st_uid
    assert owner != 0 or os.geteuid() != 0


async def test_redis_answers_without_persistence(redis_url):  # noqa: F811
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        assert await client.config_get("save") == {"save": ""}
        assert await client.config_get("appendonly") == {"appendonly": "no"}
        assert await client.config_get("bind") == {"bind": "127.0.0.1"}
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


@pytest.mark.parametrize("run", [1, 2])
async def test_every_test_gets_an_empty_redis(redis_url, run):  # noqa: F811
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0  # the second run sees the first run's key if nothing cleans up
        await client.set("left_behind", run)
    finally:
        await client.aclose()


# --- when a server is missing --------------------------------------------------------------------------------


def test_missing_server_is_a_skip_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server not found"):
        servers.unavailable("redis-server not found in PATH")


def test_missing_server_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"redis-server not found in PATH \(CI=true"):
        servers.unavailable("redis-server not found in PATH")


def test_binaries_are_looked_for_where_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_PG_BIN", str(tmp_path))
    monkeypatch.setenv("TEST_REDIS_SERVER", str(tmp_path / "redis-server"))
    assert servers.find_pg_bin() is None
    assert servers.find_redis_server() is None
    for tool in (*servers.PG_TOOLS, "redis-server"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    assert servers.find_pg_bin() == tmp_path
    assert servers.find_redis_server() == tmp_path / "redis-server"


def test_nothing_on_path_and_no_debian_directory_finds_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_PG_BIN", raising=False)
    monkeypatch.delenv("TEST_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(servers, "PG_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    assert servers.find_pg_bin() is None
    assert servers.find_redis_server() is None


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_session_without_the_servers_says_so(tmp_path, ci):
    """What a developer sees: `pytest -rs` lists both skips with their reasons; under CI=true the run fails."""
    (tmp_path / "test_needs_servers.py").write_text(
        textwrap.dedent(
            """
            from tests.servers import postgres_server, redis_server  # noqa: F401

            def test_pg(postgres_server):
                pass

            def test_redis(redis_server):
                pass
            """
        )
    )
    env = {**os.environ, "CI": ci, "TEST_PG_BIN": str(tmp_path / "none"), "TEST_REDIS_SERVER": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-c", os.devnull, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    if ci:
        assert done.returncode == 1, out
        assert "2 errors" in out, out
        assert "(CI=true: .ci/run must install it)" in out, out
    else:
        assert done.returncode == 0, out
        assert "2 skipped" in out, out
        assert "SKIPPED [1]" in out and "redis-server not found in" in out, out
        assert "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in" in out, out
