"""Real PostgreSQL and Redis servers for the tests, started by the tests themselves.

Session-scoped, one of each, on free 127.0.0.1 ports in a temporary directory, stopped (and the directory
removed) at the end of the session:

- `postgres_server` -> `PostgresServer` (`.url` of the `postgres` maintenance database, `.port`, `.create_database()`)
- `redis_server` -> `RedisServer` (`.url`, `.port`)

Per test, clean state:

- `postgres_url` -> a `postgresql://` URL of a database of its own, made fresh for the test and dropped after it
- `redis_url` -> a `redis://` URL of a Redis database emptied (FLUSHDB) before the test

Import the fixtures where they are used (`from tests.servers import redis_url  # noqa: F401`) or list this module
in a conftest's `pytest_plugins`.

A server whose binary is missing skips its tests with the reason (see it with `pytest -rs`); with `CI=true` it fails
them instead, because CI (`.ci/run`) installs both, and a skip there would be a silent pass. Where the binaries are:
`TEST_PG_BIN` (a directory with initdb, pg_ctl, postgres) and `TEST_REDIS_SERVER` (a path) when set; otherwise
`pg_ctl` and `redis-server` on PATH, then Debian's `/usr/lib/postgresql/<version>/bin`. A server that is there but
does not start is always an error, with the end of its log.

PostgreSQL refuses to run as root: as root, the cluster belongs to (and runs as) the `postgres` user, or `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_GLOB = "/usr/lib/postgresql/*/bin"  # Debian's layout, one directory per major version
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT_SECONDS = 60
PG_USER = "postgres"  # the superuser the cluster is made with (trust authentication, loopback only)


def unavailable(reason: str) -> None:
    """A server this test needs cannot be had here: skip loudly, or fail where CI promised to provide it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port}:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# --- PostgreSQL ----------------------------------------------------------------------------------------------


def find_pg_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""

    def complete(directory: Path) -> bool:
        return all((directory / tool).is_file() and os.access(directory / tool, os.X_OK) for tool in PG_TOOLS)

    configured = os.environ.get("TEST_PG_BIN")
    if configured:
        return Path(configured) if complete(Path(configured)) else None
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    # Newest major version first: "15" must sort after "9.6", so compare numerically.
    versions = sorted(glob.glob(PG_GLOB), key=lambda d: [int(p) for p in Path(d).parent.name.split(".") if p.isdigit()])
    candidates += [Path(d) for d in reversed(versions)]
    return next((d for d in candidates if complete(d)), None)


def run_as() -> pwd.struct_passwd | None:
    """Who the cluster runs as: ourselves (None), or, as root, an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass
class PostgresServer:
    port: int
    directory: Path
    bin_dir: Path
    user: pwd.struct_passwd | None
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=check,
            timeout=START_TIMEOUT_SECONDS,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            env={**os.environ, "HOME": str(self.directory), "LC_ALL": "C"},
            cwd=self.directory,
        )

    @classmethod
    def start(cls, bin_dir: Path) -> PostgresServer:
        user = run_as()
        directory = Path(tempfile.mkdtemp(prefix="gib-pg-"))
        if user is not None:
            os.chown(directory, user.pw_uid, user.pw_gid)
        server = cls(port=0, directory=directory, bin_dir=bin_dir, user=user)
        try:
            server._run("initdb", "-D", "data", "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
            for _ in range(3):  # another process may take the free port before the server binds it
                server.port = free_port()
                # Throwaway data: durability off; no Unix socket, loopback only.
                options = (
                    f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                )
                done = server._run("pg_ctl", "-D", "data", "-l", "log", "-w", "-o", options, "start", check=False)
                if done.returncode == 0:
                    return server
            raise RuntimeError(f"PostgreSQL did not start:\n{done.stdout}{done.stderr}\n{tail(directory / 'log')}")
        except BaseException:
            server.stop()
            raise

    def stop(self) -> None:
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    async def create_database(self, template: str = "template0") -> str:
        """A new empty database (a copy of `template`); returns its name."""
        import asyncpg

        name = f"test_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            # FORCE: a test that left a connection open must not keep its database alive.
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        where = os.environ.get("TEST_PG_BIN") or f"PATH or {PG_GLOB}"
        unavailable(f"PostgreSQL server binaries ({', '.join(PG_TOOLS)}) not found in {where}")
        raise AssertionError("unreachable")
    server = PostgresServer.start(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A database of this test's own, dropped after it."""
    name = await postgres_server.create_database()
    try:
        yield postgres_server.url_for(name)
    finally:
        await postgres_server.drop_database(name)


# --- Redis ---------------------------------------------------------------------------------------------------


def find_redis_server() -> Path | None:
    configured = os.environ.get("TEST_REDIS_SERVER")
    if configured:
        path = Path(configured)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which("redis-server")
    return Path(found) if found else None


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, binary: Path) -> RedisServer:
        directory = Path(tempfile.mkdtemp(prefix="gib-redis-"))
        log = directory / "log"
        for _ in range(3):  # another process may take the free port before the server binds it
            port = free_port()
            # No persistence (no RDB snapshots, no AOF), loopback only, nothing written but the log.
            args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            args += ["--dir", str(directory), "--logfile", str(log), "--daemonize", "no", "--protected-mode", "yes"]
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            try:
                wait_for_port(port, process, log, "redis-server")
                return cls(port=port, directory=directory, process=process)
            except RuntimeError:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"redis-server did not start:\n{tail(log)}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        where = os.environ.get("TEST_REDIS_SERVER") or "PATH"
        unavailable(f"redis-server not found in {where}")
        raise AssertionError("unreachable")
    server = RedisServer.start(binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    """The server's database 0, empty at the start of the test."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    yield redis_server.url
