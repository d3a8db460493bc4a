"""The scanning half of the moderation filter: the compiled built-in lists and every view of a text in which a
term is looked for (words, leet, stretched letters, letters spaced apart, split by punctuation, censored
letters, CJK runs, misspellings, ages). `bot.moderation` judges what this finds.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from bot.moderation import langs
from bot.moderation import terms as lists
from bot.moderation.fuzzy import FuzzyIndex, guard, written_form
from bot.moderation.index import Index, Rule
from bot.moderation.rules import Match, Positions
from bot.moderation.text import (
    Run,
    Token,
    Views,
    ages,
    cjk_runs,
    collapse,
    fold,
    glued,
    is_solo,
    origins,
    skeleton,
    spaced_runs,
    tokens,
    views,
)

MAX_WRITTEN = 80  # characters of the user's own text quoted back (a spaced-out run can be thousands long)
_MINOR, _SUGGESTIVE, _REVEALING, _PERSON = "minor", "suggestive", "revealing", "person"
_UNDRESS, _GARMENT, _ALLOW = "undress", "garment", "allow"
AGE = Rule(_MINOR, "age under 18")
_BLOCKING = frozenset(("csam", "sexual", "gore", "hate"))


def _builtin_entries() -> Iterable[tuple[str, str, str]]:
    """(kind, term, languages): a term listed alike in several languages is one entry ("ja/zh" for 裸体), so
    that a text repeating it is not matched once per list."""
    merged: dict[tuple[str, str], list[str]] = {}
    for kind, term, lang in _listed():
        langs_of = merged.setdefault((kind, term), [])
        if lang not in langs_of:
            langs_of.append(lang)
    return [(kind, term, "/".join(codes)) for (kind, term), codes in merged.items()]


def _listed() -> Iterable[tuple[str, str, str]]:
    for category, terms in lists.TERMS.items():
        yield from ((category, term, "en") for term in terms)
    for kind, terms in (
        (_MINOR, lists.MINOR),
        (_SUGGESTIVE, lists.SUGGESTIVE),
        (_REVEALING, lists.REVEALING),
        (_PERSON, lists.PUBLIC_FIGURES + lists.PERSONS),
        (_UNDRESS, lists.UNDRESS),
        (_GARMENT, lists.GARMENTS),
        (_ALLOW, lists.ALLOW),
    ):
        yield from ((kind, term, "en") for term in terms)
    yield from langs.entries()


def _fuzzy_entries(entries: Iterable[tuple[str, str, str]]) -> Iterable[tuple[str, Rule]]:
    """Single whole words that block alone: the ones whose misspellings are read too."""
    for kind, term, lang in entries:
        words = [t.text for t in tokens(fold(term))]
        if kind in _BLOCKING and not term.endswith("*") and len(words) == 1 and not is_solo(words[0]):
            yield skeleton(words[0]), Rule(kind, term, lang)


BUILTIN = Index(e for e in _builtin_entries() if e[0] != "benign")
FUZZY: FuzzyIndex[Rule] = FuzzyIndex(_fuzzy_entries(_builtin_entries()))
# Everyday words never read as a term spelled otherwise (see `bot.moderation.fuzzy`): the generated guard
# compares words as `fold` reads them; the hand-written ones ("góry" is not "gory") as written, accents kept.
_GUARD = guard()
_BENIGN = frozenset(written_form(term) for kind, term, _ in _builtin_entries() if kind == "benign")
_SUSPECT = _GUARD | frozenset(fold(word) for word in _BENIGN)
_GUARDED_VIEWS = ("words", "stretched letters", "misspelling")


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule that fired. `status`: "blocks"; "off" (category switched off here); "allowed" (inside the allow
    phrase in `note`); "cue" (half of a pair that found no other half)."""

    category: str  # a category, CUSTOM, or a cue kind
    term: str  # the listed term, or "a + b" for a pair
    written: str  # as the user wrote it
    view: str  # which view of the text matched
    status: str
    note: str = ""
    width: int = 1  # words covered: the widest blocking hit explains best ("torture porn" over "porn")
    pair: bool = False
    lang: str = ""  # the language list of the rule ("" for a server's own terms)


@dataclass
class Analysis:
    text: str
    folded: str
    view: Views
    matches: list[Match]
    where: Positions
    hits: list[Hit] = field(default_factory=list)
    detail: bool = False  # explaining: every hit quotes what the user wrote
    sources: dict[int, Match] = field(default_factory=dict)  # id(hit) -> its match, when not explaining
    widest: dict[tuple[Rule, str, str], int] = field(default_factory=dict)  # see `_add`
    # Pair halves not cancelled by an allow phrase, also paired across the turns of a conversation.
    cues: dict[str, list[Match]] = field(default_factory=dict)

    @cached_property
    def _origins(self) -> list[int]:
        return origins(self.text)

    def written(self, match: Match) -> str:
        start, end = self.view.words[match.first].start, self.view.words[match.last].end
        written = self.text[self._origins[start] : self._origins[end - 1] + 1]
        return written if len(written) <= MAX_WRITTEN else written[: MAX_WRITTEN - 1] + "…"


def scan(text: str, indexes: Sequence[Index]) -> Analysis:
    folded = fold(text)
    view = views(folded)
    words, changed = view.words, view.changed
    runs, groups, cjk = spaced_runs(words), glued(words, folded), cjk_runs(words)
    matches: list[Match] = []
    for index in indexes:
        matches += (Match(rule, a, b, "words") for a, b, rule in index.find(view.exact))
        if view.stretched is not None:
            found = index.find(view.stretched, changed)
            # Only where collapsing changed something: "bobs" must not read as a collapsed "boobs".
            matches += (Match(r, a, b, "stretched letters") for a, b, r in found if any(changed[a : b + 1]))
        for run in runs:
            inside = index.find_inside(skeleton(run.text), skeleton(collapse(run.text)))
            matches += (
                Match(rule, *_run_words(words, run, start, end), "letters spaced apart") for rule, start, end in inside
            )
            # A spaced-out word that starts a phrase: "N a G a dziewczyna".
            after = view.exact[run.last + 1 : run.last + index.exact.max_words]
            if after:
                found_phrases = index.find([skeleton(run.text), *after])
                matches += (
                    Match(rule, run.first, run.last + b, "letters spaced apart")
                    for a, b, rule in found_phrases
                    if a == 0 < b
                )
        for group in groups:
            matches += (Match(rule, group.first, group.last, "split by punctuation") for rule in _whole(index, group))
        for chars, at in cjk:
            matches += (Match(rule, at[start], at[end - 1], "words") for rule, start, end in index.find_cjk(chars))
        for i, key in enumerate(view.exact):
            if "*" in key:
                matches += (Match(rule, i, i, "censored letters") for rule in index.find_censored(key))
    matches += _misspellings(view, matches)
    matches = _unguarded(text, view, matches)
    if any(m.rule.kind == _DISGUISED for m in matches):
        matches = _disguised(text, view, matches)
    matches += (Match(AGE, a, b, "age") for a, b in ages(words))
    solo = [len(w.text) == 1 and is_solo(w.text) for w in words]
    return Analysis(text, folded, view, matches, Positions(solo))


_DISGUISED = "disguised"
_AS_SEXUAL: dict[Rule, Rule] = {}
_HIDING_VIEWS = frozenset(("split by punctuation", "censored letters"))
_LEET_CHARS = frozenset("0123456789@$!|+€£¢¥")
_CENSORED_CJK = re.compile("[\u25cb\u3131-\u318e]")


def _disguised(text: str, view: Views, matches: list[Match]) -> list[Match]:
    """A `disguised` term ("schwanz", "chatte", "pau": also a tail, a cat, wood) is sexual only when written in
    disguise: nobody hides the letters of an everyday word behind stars, leet, spacing or another script's
    look-alikes. Kept as `sexual` when disguised, dropped otherwise."""
    out = []
    at: list[int] | None = None
    for match in matches:
        if match.rule.kind != _DISGUISED:
            out.append(match)
            continue
        if match.view in _HIDING_VIEWS or _CENSORED_CJK.search(match.rule.term):
            hidden = True  # stars, or a CJK term listed censored ("보ㅈ", "ま○こ", `langs.censored_variants`)
        elif match.view == "letters spaced apart":
            hidden = _whole_letters(view.words, match)
        elif match.view == "words":
            words = view.words[match.first : match.last + 1]
            hidden = any(_LEET_CHARS.intersection(w.text) for w in words)  # "ch@tte", "d1ck"
            if not hidden:
                at = at or origins(text)
                hidden = _hidden(text[at[words[0].start] : at[words[-1].end - 1] + 1])
        else:
            hidden = False
        if hidden:
            rule = _AS_SEXUAL.get(match.rule)
            if rule is None:
                rule = _AS_SEXUAL[match.rule] = Rule("sexual", match.rule.term, match.rule.lang)
            out.append(match._replace(rule=rule))
    return out


def _whole_letters(words: list[Token], match: Match) -> bool:
    """Spaced letters that spell the term and no more: "P A U L" is not "pau", "f a g g o t" is not "göt"."""
    spelled = skeleton("".join(w.text for w in words[match.first : match.last + 1]))
    listed = skeleton("".join(t.text for t in tokens(fold(match.rule.term.rstrip("*")))))
    if spelled != listed and collapse(spelled) != collapse(listed):
        return False
    for k in (match.first - 1, match.last + 1):
        if 0 <= k < len(words) and len(words[k].text) == 1 and not is_solo(words[k].text):
            return False
    return True


def _hidden(written: str) -> bool:
    """Struck-through letters, capitals in mid-word ("ScHwAnZ"), or letters of another script (or mathematical,
    full-width forms) mixed with plain Latin ones. Not zero-width characters alone: an allowed prompt must stay
    allowed whatever invisible characters are sprinkled in it (a property test holds the filter to that)."""
    latin = foreign = False
    previous_lower = False
    for ch in written:
        if ch.isspace():
            previous_lower = False
            continue
        if "\u0334" <= ch <= "\u0338":
            return True  # letters struck through
        if ch.isupper() and previous_lower:
            return True
        previous_lower = ch.islower()
        if ch.isascii():
            latin = latin or ch.isalpha()
        elif ch.isalpha() and fold(ch).isascii() and not unicodedata.name(ch, "").startswith("LATIN"):
            foreign = True
            if unicodedata.normalize("NFKC", ch) != ch:
                return True  # mathematical, full-width or enclosed letters
    return latin and foreign


def _misspellings(view: Views, matches: list[Match]) -> list[Match]:
    """Words no list knows, one edit from a blocking word of the built-in lists."""
    known = bytearray(len(view.exact))
    for match in matches:
        known[match.first : match.last + 1] = b"\x01" * (match.last - match.first + 1)
    return [
        Match(rule, i, i, f"misspelling of “{key}”")
        for i, word in enumerate(view.exact)
        if len(word) >= 4 and not known[i] and word.isalpha()
        for key, rule in FUZZY.find(word)
    ]


def _unguarded(text: str, view: Views, matches: list[Match]) -> list[Match]:
    """Without the matches of a guarded everyday word to a term spelled otherwise ("góry" is not "gory")."""
    suspects = [
        m
        for m in matches
        if m.first == m.last and view.words[m.first].text in _SUSPECT and m.view.startswith(_GUARDED_VIEWS)
    ]
    if not suspects:
        return matches
    at = origins(text)
    dropped = set()
    for match in suspects:
        word = view.words[match.first]
        if word.text in _GUARD and not _literal(word.text, fold(match.rule.term)):
            dropped.add(id(match))
            continue
        written = written_form(text[at[word.start] : at[word.end - 1] + 1])
        if written in _BENIGN and not _literal(written, written_form(match.rule.term)):
            dropped.add(id(match))
    return [m for m in matches if id(m) not in dropped]


_JOINERS = frozenset(".-_'’·")


def _literal(word: str, term: str) -> bool:
    """Whether `word` is spelled as the term is listed ("anal sex" written as one word counts)."""
    listed = "".join(ch for ch in term if not ch.isspace() and ch not in _JOINERS)
    return word.startswith(listed[:-1]) if listed.endswith("*") else word == listed


def _run_words(words: list[Token], run: Run, start: int | None, end: int | None) -> tuple[int, int]:
    """The words of `run` that spell run.text[start:end] (the whole run when offsets are unknown)."""
    if start is None or end is None:
        return run.first, run.last
    first = bisect.bisect_right(run.offsets, start) - 1
    last = bisect.bisect_right(run.offsets, end - 1) - 1
    return run.first + first, run.first + last


def _whole(index: Index, group: Run) -> list[Rule]:
    found = [rule for _, _, rule in index.find([skeleton(group.text)])]
    collapsed = collapse(group.text)
    if collapsed != group.text:
        found += [rule for _, _, rule in index.find([skeleton(collapsed)], [True])]
    return found


# Cue kinds collected before judging (the rules of `bot.moderation.rules`); the others are gathered while judging.
