"""The database behind the core, one interface over two engines: SQLite (the default, one file, one process or a
few on one machine) and PostgreSQL (several processes, several machines). `Database.open(url)` picks one:

    sqlite:///data/bot.sqlite3      a file, relative to the working directory (sqlite:////abs/path: absolute)
    postgresql://user:pass@host/db  a server, through asyncpg

Callers write one SQL text for both: `?` placeholders (PostgreSQL gets `$1`, `$2`, ...) and the common subset of
the two dialects (`IS NOT DISTINCT FROM`, `CASE`, `COALESCE`, `ON CONFLICT`, no `INSERT OR REPLACE`, no JSON
functions). `insert` returns the new row's `id` on both (lastrowid or `RETURNING id`), `execute` the number of rows
changed, and rows answer both `row[0]` and `row["name"]`.

Transactions. `transaction()` is a block of statements that commit together; `lock=` names a lock that
serialises the transactions taking the same name across every process (SQLite has one writer at a time anyway).
`run_batch` runs many operations in one transaction, each an `async def op(tx, *args)` that touches nothing but
`tx`: SQLite runs them whole on its database thread, PostgreSQL on one pooled connection (see `bot.quota.batch`).

Migrations are numbered files, one per schema change and dialect: `migrations/NNNN_name.sql` for SQLite and
`migrations/postgresql/NNNN_name.sql` for PostgreSQL, with the same numbers and names. Each engine applies the
missing ones in order at `open` (and `python -m bot migrate` does only that).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_DIRS: dict[Dialect, tuple[str, ...]] = {"sqlite": (), "postgresql": ("postgresql",)}


class Row(Protocol):
    """A result row: by position or by column name (sqlite3.Row and asyncpg.Record both are)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> Iterable[str]: ...


class Reader(Protocol):
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Tx(ABC):
    """The statements of one open transaction."""

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Returns how many rows the statement changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """An INSERT into a table with an `id` column; returns the new row's id."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def lock(self, name: str) -> None:
        """Hold the lock `name` until this transaction ends (other processes' transactions taking it wait)."""


# An operation of a batch: `async def op(tx, *args)`, awaiting nothing but its transaction's methods.
Op = Callable[..., Coroutine[Any, Any, Any]]
# One outcome per operation of a batch: (True, result) or (False, the exception it raised, its writes undone).
Outcome = tuple[bool, Any]


def migrations(dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every migration of one dialect shipped with the package, in order."""
    folder = resources.files("bot.storage.migrations").joinpath(*_MIGRATION_DIRS[dialect])
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two {dialect} migrations share a number: {versions}")
    return found


def dialect_of(url: str | Path) -> Dialect:
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if text.startswith("sqlite://") or "://" not in text:
        return "sqlite"
    raise ValueError(f"unsupported database URL scheme in {redact_url(text)!r}: use sqlite:/// or postgresql://")


def sqlite_path(url: str | Path) -> str:
    """The file of a `sqlite:///path` URL (or of a plain path)."""
    text = str(url)
    if not text.startswith("sqlite://"):
        return text
    rest = text.removeprefix("sqlite://")
    if not rest.startswith("/") or rest == "/":
        raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    return rest[1:]


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].rsplit(":", 1)[0] + ":***@" + netloc[1]))


class Database(ABC):
    """Owns the connection (SQLite) or the pool (PostgreSQL). Built by `Database.open(url)`."""

    dialect: ClassVar[Dialect]
    url: str  # as given, password included: never log it (repr() redacts it)

    @classmethod
    async def open(cls, url: str | Path, *, pool_size: int = 10) -> Database:
        """Connect and apply the missing migrations. `url` is a `sqlite:///`/`postgresql://` URL or a file path;
        `pool_size` is PostgreSQL's most connections per process."""
        if dialect_of(url) == "postgresql":
            from bot.storage.postgres import PostgresDatabase

            return await PostgresDatabase.connect(str(url), pool_size=pool_size)
        from bot.storage.sqlite import SQLiteDatabase

        return await SQLiteDatabase.connect(sqlite_path(url))

    @abstractmethod
    async def version(self) -> int:
        """The number of the last migration applied."""

    @abstractmethod
    def transaction(self, *, lock: str | None = None) -> AbstractAsyncContextManager[Tx]:
        """`async with db.transaction() as tx:` ... committed at the end, rolled back on any exception."""

    @abstractmethod
    async def run_batch(self, ops: Sequence[tuple[Op, tuple[Any, ...]]], *, lock: str | None = None) -> list[Outcome]:
        """Every operation in one transaction, one after another, each seeing the writes of those before it; one
        that raises leaves nothing behind and spares the others. Raises only when the transaction itself fails."""

    async def run(self, op: Callable[..., Coroutine[Any, Any, T]], *args: Any, lock: str | None = None) -> T:
        """One operation in a transaction of its own."""
        ((ok, outcome),) = await self.run_batch([(op, args)], lock=lock)
        if not ok:
            raise outcome
        result: T = outcome
        return result

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; returns how many rows it changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One INSERT in its own transaction; returns the new row's id."""
        async with self.transaction() as tx:
            return await tx.insert(sql, params)

    @abstractmethod
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """A read outside any transaction (it sees what was committed)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def close(self) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"
