"""Storage: the SQLite database (WAL, one connection) and its numbered migrations (package data)."""

from bot.storage.db import Database

__all__ = ["Database"]
