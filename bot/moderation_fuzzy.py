"""Misspellings of longer listed words: one letter added, dropped, changed or two swapped ("naeked", "hentia",
"pornografy"), found through a deletion index (every key with each letter dropped once), so a word costs a few
dictionary lookups whatever the size of the lists.

Guards against false positives: only keys of at least `MIN_KEY` letters (`MIN_SUBSTITUTED` for a changed letter,
which makes the most real words: "naked"/"baked"), the first letter must be right, and a word in the guard list
(`bot/data/moderation/fuzzy_guard.txt`: frequent words of the twelve languages within one edit of a listed
word, generated from the `wordfreq` package's lists by `python -m bot.moderation_guardgen`) is never read as a
misspelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

MIN_KEY = 5
MIN_SUBSTITUTED = 6
GUARD = Path(__file__).resolve().parent / "data" / "moderation" / "fuzzy_guard.txt"

T = TypeVar("T")


def within_one(word: str, key: str) -> bool:
    """One edit apart (insertion, deletion, substitution or adjacent swap), same first letter."""
    if word == key or word[:1] != key[:1]:
        return False
    lw, lk = len(word), len(key)
    if abs(lw - lk) > 1:
        return False
    i = 0
    while i < min(lw, lk) and word[i] == key[i]:
        i += 1
    if lw == lk:
        if word[i + 1 :] == key[i + 1 :]:
            return lk >= MIN_SUBSTITUTED
        return i + 1 < lw and word[i] == key[i + 1] and word[i + 1] == key[i] and word[i + 2 :] == key[i + 2 :]
    if lw > lk:
        return word[i + 1 :] == key[i:]
    return lk > MIN_KEY and word[i:] == key[i + 1 :]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(1, len(word))}


@cache
def guard() -> frozenset[str]:
    if not GUARD.exists():
        return frozenset()
    lines = GUARD.read_text(encoding="utf-8").splitlines()
    return frozenset(w for line in lines if not line.startswith("#") for w in line.split())


class FuzzyIndex(Generic[T]):
    """Keys (reduced like text words) with their values; `find(word)` gives the values of keys one edit away."""

    def __init__(self, entries: Iterable[tuple[str, T]] = (), guarded: frozenset[str] | None = None) -> None:
        self._keys: dict[str, list[T]] = {}
        self._deleted: dict[str, list[str]] = {}
        self._guard = guard() if guarded is None else guarded
        for key, value in entries:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, value: T) -> None:
        if len(key) < MIN_KEY or not key.isalpha():
            return
        if key not in self._keys:
            for variant in _deletions(key) | {key}:
                self._deleted.setdefault(variant, []).append(key)
        self._keys.setdefault(key, []).append(value)

    def find(self, word: str) -> list[tuple[str, T]]:
        """(key, value) for keys one edit from `word`; nothing for short, guarded or listed words."""
        if len(word) < MIN_KEY - 1 or word in self._keys or word in self._guard:
            return []
        candidates: set[str] = set()
        for variant in _deletions(word) | {word}:
            candidates.update(self._deleted.get(variant, ()))
        return [(key, value) for key in sorted(candidates) if within_one(word, key) for value in self._keys[key]]
