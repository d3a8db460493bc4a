"""Compiled term lists: lookups of whole words and word sequences in time linear in the length of a text.

An `Index` keeps every term in two views, as its leet skeleton and as the skeleton of its stretched-letter
collapse, reduced exactly the way text words are, so the lookup is a dictionary hit per word. Phrases are also
indexed written as one word ("siegheil"), and a trie pattern finds terms inside letters that were written
apart ("d r a w a n u d e" joins to "drawanude").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.moderation.censored import CensoredMatcher
from bot.moderation.text import collapse, fold, is_cjk, is_solo, skeleton, tokens

# Shorter keys are not searched inside joined letters or stretched words: "kkk" collapses to "k".
MIN_INSIDE = 3


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # a category, a combination cue, or an allow kind
    term: str  # as listed
    lang: str = ""  # the list it came from ("en", "ja", ...); "" for a server's own terms


class _Table:
    """Whole-word sequences and word-sequence prefixes ("porn*", "little girl*") of one view."""

    def __init__(self) -> None:
        self.words: dict[str, list[Rule]] = {}
        # Prefix entries by their first letters: of one word ("porn*"), or after whole words ("little girl*").
        self.prefixes: dict[str, list[tuple[str, Rule]]] = {}
        self.phrase_prefixes: dict[tuple[str, str], list[tuple[str, Rule]]] = {}
        self.heads: set[str] = set()  # word-level beginnings of longer keys: where a lookup may continue
        self.max_words = 1

    def add(self, words: list[str], prefix: bool, rule: Rule) -> None:
        self.heads.update(" ".join(words[:k]) for k in range(1, len(words)))
        self.max_words = max(self.max_words, len(words))
        last = words[-1]
        if not prefix or len(last) < MIN_INSIDE:
            self.words.setdefault(" ".join(words), []).append(rule)
        elif len(words) == 1:
            self.prefixes.setdefault(last[:MIN_INSIDE], []).append((last, rule))
        else:
            key = (" ".join(words[:-1]), last[:MIN_INSIDE])
            self.phrase_prefixes.setdefault(key, []).append((last, rule))

    def find(self, keys: list[str], only: list[bool] | None = None) -> list[tuple[int, int, Rule]]:
        """(first, last, rule) for each term among the word keys; single words only where `only` is set."""
        found: list[tuple[int, int, Rule]] = []
        words, heads, prefixes, n = self.words, self.heads, self.prefixes, len(keys)
        # Most words of a prompt match nothing: each test below is one dictionary lookup that usually misses.
        for i, word in enumerate(keys):
            if only is None or only[i]:
                rules = words.get(word)
                if rules:
                    found.extend((i, i, rule) for rule in rules)
                starts = prefixes.get(word[:MIN_INSIDE])
                if starts:
                    found.extend((i, i, r) for p, r in starts if word.startswith(p))
            if word not in heads:
                continue
            head = word
            for j in range(i + 1, min(n, i + self.max_words)):
                if head not in heads:
                    break
                nxt = keys[j]
                candidates = self.phrase_prefixes.get((head, nxt[:MIN_INSIDE]))
                if candidates:
                    found.extend((i, j, r) for p, r in candidates if nxt.startswith(p))
                head = f"{head} {nxt}"
                rules = words.get(head)
                if rules:
                    found.extend((i, j, rule) for rule in rules)
        return found


class _Inside:
    """Single-word keys found anywhere inside a string, via one trie-shaped regular expression."""

    def __init__(self, min_length: int = MIN_INSIDE) -> None:
        self.keys: dict[str, list[Rule]] = {}
        self.min_length = min_length
        self._pattern: re.Pattern[str] | None = None
        self._shorter: dict[str, list[tuple[int, Rule]]] = {}  # key -> the shorter keys it starts with

    def add(self, key: str, rule: Rule) -> None:
        if len(key) >= self.min_length:
            self.keys.setdefault(key, []).append(rule)
            self._pattern = None
            self._shorter.clear()

    def find(self, text: str, all_lengths: bool = False) -> Iterable[tuple[Rule, int, int]]:
        """Rules of the longest key starting at each position; with `all_lengths` also of shorter keys there."""
        if not self.keys:
            return
        if self._pattern is None:
            self._pattern = _trie_pattern(self.keys)
        shorter = self._shorter
        for match in self._pattern.finditer(text):
            found, start = match.group(1), match.start(1)
            yield from ((rule, start, match.end(1)) for rule in self.keys[found])
            if all_lengths:
                prefixes = shorter.get(found)
                if prefixes is None:
                    prefixes = shorter[found] = [
                        (end, rule)
                        for end in range(self.min_length, len(found))
                        for rule in self.keys.get(found[:end], ())
                    ]
                yield from ((rule, start, start + end) for end, rule in prefixes)


def _trie_pattern(keys: Iterable[str]) -> re.Pattern[str]:
    """`(?=(...))` over a trie of the keys: one attempt per position, longest key first, overlaps found."""
    root: dict[str, dict] = {}
    for key in keys:
        node = root
        for ch in key:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(f"(?=({build(root)}))")


class Index:
    """Terms of any kinds, compiled. Entries are (kind, term) in the syntax of `bot.moderation.terms`."""

    def __init__(self, entries: Iterable[tuple[str, str] | tuple[str, str, str]]) -> None:
        self.exact = _Table()
        self.stretched = _Table()
        self.inside = _Inside()
        self.inside_stretched = _Inside()
        self.censored: CensoredMatcher[Rule] = CensoredMatcher()
        # Phrases of CJK characters, found by one regular expression over each run of them (C speed: a hostile
        # run of thousands of characters must not cost a dictionary walk per character).
        self.cjk = _Inside(min_length=2)
        for kind, term, *lang in entries:
            self.add(Rule(kind, term, *lang))

    def add(self, rule: Rule) -> None:
        prefix = rule.term.endswith("*")
        words = [t.text for t in tokens(fold(rule.term.rstrip("*")))]
        if not words:
            return
        if len(words) > 1 and all(is_cjk(w) for w in words):
            self.cjk.add("".join(words), rule)
            return
        exact = [skeleton(w) for w in words]
        stretched = [skeleton(collapse(w)) for w in words]
        joined, joined_stretched = "".join(exact), skeleton(collapse("".join(words)))
        self.exact.add(exact, prefix, rule)
        if len(joined_stretched) >= MIN_INSIDE:
            self.stretched.add(stretched, prefix, rule)
        if len(words) > 1:
            self.exact.add([joined], prefix, rule)
            self.stretched.add([joined_stretched], prefix, rule)
        if is_solo(joined):
            return  # CJK terms are phrases of characters: spacing and stars do not disguise them
        self.inside.add(joined, rule)
        self.inside_stretched.add(joined_stretched, rule)
        self.censored.add(joined, rule, prefix)

    def find(self, keys: list[str], changed: list[bool] | None = None) -> list[tuple[int, int, Rule]]:
        """(first word, last word, rule) for every term in the word keys of one view: the exact view, or with
        `changed` the stretched one, where single words count only if collapsing changed them."""
        return self.exact.find(keys) if changed is None else self.stretched.find(keys, changed)

    def find_inside(self, joined: str, joined_stretched: str) -> list[tuple[Rule, int | None, int | None]]:
        """Terms inside letters joined from a run: (rule, start, end) offsets in `joined`, or (rule, None, None)
        when found only after collapsing, where offsets no longer line up."""
        found: dict[tuple[Rule, int | None, int | None], None] = dict.fromkeys(self.inside.find(joined))
        if joined_stretched != joined:
            found.update(
                dict.fromkeys((rule, None, None) for rule, _, _ in self.inside_stretched.find(joined_stretched))
            )
        return list(found)

    def find_cjk(self, run: str) -> Iterable[tuple[Rule, int, int]]:
        """(rule, start, end) for CJK phrases inside a run of CJK characters (spaces between them dropped)."""
        return self.cjk.find(run, all_lengths=True)

    def find_censored(self, word: str) -> list[Rule]:
        """Terms a word with asterisks may stand for: "p*rn", "n**de" (each run of stars hides 1-2+ letters)."""
        return self.censored.find(word)
