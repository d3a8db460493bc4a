"""`python -m bot report [--days 30] [--guild ID] [--out DIR]`: the usage table in the terminal, plus the chart
(PNG) and the rows (CSV) written to files. Reads the database only; safe while the bot runs (WAL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import IO, Any

from bot.ops.usage import UsageReport, usage_report
from bot.ops.usage_render import render_png, render_table, to_csv


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `report` subcommand to `python -m bot`'s subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser("report", help="print usage and cost; write a chart and a CSV")
    parser.add_argument("--days", type=int, default=30, help="quota days to cover, today included (default 30)")
    parser.add_argument("--guild", type=int, help="one server (default: the whole bot)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where to write the PNG and CSV (default .)")
    return parser


def output_paths(out_dir: Path, guild_id: int | None, days: int) -> tuple[Path, Path]:
    stem = f"usage-{'all' if guild_id is None else guild_id}-{days}d"
    return out_dir / f"{stem}.png", out_dir / f"{stem}.csv"


async def report(
    settings: Any,
    *,
    days: int,
    guild_id: int | None = None,
    out_dir: Path = Path("."),
    now: float | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Print the report and write its files; returns the process exit code."""
    from bot.storage.db import Database, dialect_of, sqlite_path

    out = stdout or sys.stdout
    if days < 1 or days > 366:
        print("--days must be between 1 and 366.", file=sys.stderr)
        return 2
    url = settings.database
    # Opening a SQLite file that is not there would create an empty database: say so instead.
    if dialect_of(url) == "sqlite" and not await asyncio.to_thread(Path(sqlite_path(url)).exists):
        print(f"No database at {sqlite_path(url)}: the bot has not run here yet.", file=sys.stderr)
        return 2
    db = await Database.open(url)
    try:
        data = await usage_report(
            db, guild_id=guild_id, days=days, timezone=settings.quota_timezone, now=time.time() if now is None else now
        )
    finally:
        await db.close()
    png_path, csv_path = output_paths(out_dir, guild_id, days)
    await asyncio.to_thread(_write_files, data, png_path, csv_path)
    out.write(render_table(data))
    out.write(f"\nChart: {png_path}\nRows: {csv_path}\n")
    return 0


def _write_files(data: UsageReport, png_path: Path, csv_path: Path) -> None:
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(render_png(data))
    csv_path.write_text(to_csv(data), encoding="utf-8")
