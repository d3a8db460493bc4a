"""Generic row helpers for the table owners' privacy code, on either engine: rows as JSON-able dicts (an export)
and anonymising a table's rows by an allow-list of columns (forgetting). They take the table's name from its
owner and never name a table themselves, so each table keeps its one owner (tests/unit/test_architecture.py)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from bot.storage.db import Dialect, Tx


async def dict_rows(tx: Tx, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of `sql` as dicts, bytes as `{"base64": ...}`: JSON-able as they are."""
    return [{name: _jsonable(row[name]) for name in row.keys()} for row in await tx.fetchall(sql, params)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


async def _blanks(tx: Tx, dialect: Dialect, table: str) -> dict[str, str]:
    """Each column of `table` and the SQL value it takes when blanked: its default, else NULL, else an empty
    value of its type."""
    blanks: dict[str, str] = {}
    if dialect == "sqlite":
        for row in await tx.fetchall(f"PRAGMA table_info({table})"):
            name, declared, not_null, default = row[1], str(row[2]).upper(), bool(row[3]), row[4]
            if default is not None:
                blanks[name] = str(default)
            elif not not_null:
                blanks[name] = "NULL"
            elif "INT" in declared or "REAL" in declared or "NUM" in declared:
                blanks[name] = "0"
            else:
                blanks[name] = "x''" if "BLOB" in declared else "''"
        return blanks
    rows = await tx.fetchall(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    for name, kind, nullable, default in rows:
        if default is not None:
            blanks[name] = "DEFAULT"
        elif nullable == "YES":
            blanks[name] = "NULL"
        elif kind in ("bigint", "integer", "smallint", "double precision", "real", "numeric"):
            blanks[name] = "0"
        else:
            blanks[name] = "''::bytea" if kind == "bytea" else "''"
    return blanks


async def anonymise(
    tx: Tx, dialect: Dialect, table: str, keep: frozenset[str], where: str, params: Sequence[Any]
) -> int:
    """Blank every column of the matching rows except those in `keep`; returns how many rows. By allow-list, so a
    column added later (a raw model answer, say) is blanked too without the caller knowing its name."""
    blanks = await _blanks(tx, dialect, table)
    sets = ", ".join(f"{name} = {value}" for name, value in blanks.items() if name not in keep)
    if not sets:
        return 0
    return await tx.execute(f"UPDATE {table} SET {sets} WHERE {where}", params)
