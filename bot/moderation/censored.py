"""Reading words with letters hidden behind asterisks ("p*rn", "f*cking", "MaSt*rBaTiNg") in linear time.

A censored word is literal letters with runs of stars between them; a run of r stars hides 1 to max(2, r)
letters. The old matcher built a regular expression with `.{1,k}` per run and ran `fullmatch` against every
candidate key: backtracking made that exponential in the number of runs (a server term of 99 "a" and a "b" with
"a***a***…***b" took seconds per prompt). Here all keys are matched at once, bit-parallel: `_at[p][c]` is the
set of keys (one bit each) whose letter at position p is c, and `reach[p]` the keys whose first p letters can
spell what was read so far. One letter of the word costs one AND per live position, one run one OR per position
and hidden length: the cost is bounded by the word's length times a small constant, whatever the keys are.

Caps keep the constant small and the meaning sane: at most `MAX_RUNS` star runs per word and `MAX_RUN` stars per
run (more is not a word anyone wants read), and keys longer than `MAX_KEY` letters are never read through stars.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar

MAX_RUNS = 4
MAX_RUN = 6
MAX_KEY = 32
MIN_KEY = 3
MIN_PREFIX = 4  # a shorter word start read through stars would stand for too many words
_CACHE_LIMIT = 10_000
_PARTS = re.compile(r"(\*+)")

T = TypeVar("T")


def parse(word: str) -> list[str | tuple[int, int]] | None:
    """Letters and (fewest, most) hidden letters per star run; None when the word cannot be read."""
    parts: list[str | tuple[int, int]] = []
    runs = 0
    for piece in _PARTS.split(word):
        if not piece:
            continue
        if piece[0] != "*":
            parts.append(piece)
            continue
        runs += 1
        if runs > MAX_RUNS or len(piece) > MAX_RUN:
            return None
        parts.append((1, max(2, len(piece))))
    return parts if runs and isinstance(parts[0], str) and isinstance(parts[-1], str) else None


class CensoredMatcher(Generic[T]):
    """Keys (at most `MAX_KEY` letters) with their values; `find(word)` gives the values of every key the
    censored word may stand for. `steps` counts the big-integer operations done, for tests and benchmarks."""

    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self._keys: list[str] = []
        self._values: list[list[T]] = []
        self._slot: dict[str, int] = {}
        self._at: list[dict[str, int]] = []  # position -> letter -> keys with that letter there
        self._ends: list[int] = []  # length -> keys of that length
        self._starts: list[int] = []  # length -> prefix keys of that length (a listed word start, "пизд*")
        self._cache: dict[str, list[T]] = {}
        self.steps = 0
        for key, value in entries:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, value: T, prefix: bool = False) -> None:
        """`prefix`: the key is a word start, so a censored word that spells it and goes on matches it too
        ("п*зды" for "пизд*"). Only when the key's last letter is read, never hidden: "por*a" is not "porn*"."""
        if not max(MIN_KEY, MIN_PREFIX if prefix else 0) <= len(key) <= MAX_KEY or "*" in key:
            return
        slot = self._slot.get(key + "*" * prefix)
        if slot is None:
            slot = self._slot[key + "*" * prefix] = len(self._keys)
            self._keys.append(key)
            self._values.append([])
            bit = 1 << slot
            while len(self._at) < len(key):
                self._at.append({})
            for position, letter in enumerate(key):
                self._at[position][letter] = self._at[position].get(letter, 0) | bit
            ends = self._starts if prefix else self._ends
            while len(ends) <= len(key):
                ends.append(0)
            ends[len(key)] |= bit
        self._values[slot].append(value)
        self._cache.clear()

    def find(self, word: str) -> list[T]:
        found = self._cache.get(word)
        if found is None:
            found = self._find(word)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[word] = found
        return found

    def _find(self, word: str) -> list[T]:
        parts = parse(word)
        if parts is None or not self._keys:
            return []
        at, longest = self._at, len(self._at)
        # reach[p]: keys whose first p letters can be what was read; only positions in [low, high] are live.
        reach = {0: (1 << len(self._keys)) - 1}
        starts, started = self._starts, 0
        for part in parts:
            if isinstance(part, str):
                for letter in part:
                    nxt = {}
                    for p, keys in reach.items():
                        if p < longest:
                            self.steps += 1
                            keys &= at[p].get(letter, 0)
                            if keys:
                                nxt[p + 1] = keys
                                if p + 1 < len(starts):
                                    started |= keys & starts[p + 1]
                    reach = nxt
                    if not reach:
                        return self._values_of(started)
            else:
                fewest, most = part
                nxt = {}
                for p, keys in reach.items():
                    for q in range(p + fewest, min(p + most, longest) + 1):
                        self.steps += 1
                        nxt[q] = nxt.get(q, 0) | keys
                reach = nxt
        matched = started
        for p, keys in reach.items():
            if p < len(self._ends):
                self.steps += 1
                matched |= keys & self._ends[p]
        return self._values_of(matched)

    def _values_of(self, matched: int) -> list[T]:
        out: list[T] = []
        while matched:
            low = matched & -matched
            out.extend(self._values[low.bit_length() - 1])
            matched ^= low
        return out
