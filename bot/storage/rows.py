"""Generic row helpers for the table owners' privacy code: rows as JSON-able dicts (an export) and anonymising a
table's rows by an allow-list of columns (forgetting). They take the table's name from its owner and never name
a table themselves, so each table keeps its one owner (tests/unit/test_architecture.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any


async def dict_rows(conn: Any, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """The rows of `sql` as dicts, bytes as `{"base64": ...}`: JSON-able as they are."""
    cursor = await conn.execute(sql, tuple(params))
    names = [d[0] for d in cursor.description]
    return [{name: _jsonable(value) for name, value in zip(names, row, strict=True)} for row in await cursor.fetchall()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


async def _columns(conn: Any, table: str) -> list[tuple[str, str, bool, Any]]:
    """(name, declared type, not null, default) of each column of `table`."""
    cursor = await conn.execute(f"PRAGMA table_info({table})")
    return [(row[1], str(row[2]).upper(), bool(row[3]), row[4]) for row in await cursor.fetchall()]


def _blank(declared: str, not_null: bool, default: Any) -> str:
    """The SQL value an anonymised column takes: its default, else NULL, else an empty value of its type."""
    if default is not None:
        return str(default)
    if not not_null:
        return "NULL"
    if "INT" in declared or "REAL" in declared or "NUM" in declared:
        return "0"
    return "x''" if "BLOB" in declared else "''"


async def anonymise(conn: Any, table: str, keep: frozenset[str], where: str, params: tuple[Any, ...]) -> int:
    """Blank every column of the matching rows except those in `keep`; returns how many rows. By allow-list, so a
    column added later (a raw model answer, say) is blanked too without the caller knowing its name."""
    columns = await _columns(conn, table)
    sets = ", ".join(f"{name} = {_blank(kind, nn, default)}" for name, kind, nn, default in columns if name not in keep)
    if not sets:
        return 0
    cursor = await conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", params)
    return int(cursor.rowcount)
