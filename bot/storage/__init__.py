"""Storage: the `Database` interface (`db`) over SQLite (`sqlite`, the default: one file, WAL) and PostgreSQL
(`postgres`, asyncpg: several processes), numbered migrations per dialect (package data), and process leases
(`leases`)."""

from bot.storage.db import Database

__all__ = ["Database"]
