"""The moderation filter: pure functions from a text and a server's policy to a verdict.

A text is normalised (`bot.moderation.text`), split into words, and every built-in or server term is looked up
in several views of those words: the leet skeleton ("s3x" reads "sex"), stretched letters collapsed
("nuuude"), letters written apart ("n.u.d.e"), words split by punctuation ("po-rn") and censoring asterisks
("p*rn"). Terms match whole words only, so "Scunthorpe" and "cocktail" are never touched, and allow phrases
("naked eye") cancel the words inside them. Three rules look at word pairs: a minor within a few words of a
sexual word is `csam`; a real person next to one is `real_people_sexual`; an undressing verb next to a garment
("remove her bikini") is `sexual`.

Honest limits: only text is checked, never input images; only listed terms and their disguises are caught
(paraphrases and misspelt names are not); words glued to others ("nudephoto") are caught only for terms listed
with a trailing `*`; a listed name near "sexy" blocks even when "sexy" describes a car.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from bot.moderation import terms as lists
from bot.moderation.index import Index, Rule
from bot.moderation.text import (
    Run,
    Token,
    Views,
    ages,
    collapse,
    fold,
    glued,
    normalise,
    origins,
    skeleton,
    spaced_runs,
    views,
)

CATEGORIES = ("csam", "sexual", "gore", "hate", "real_people_sexual")
OPTIONAL_CATEGORIES = CATEGORIES[1:]
CUSTOM = "custom"  # a term a server's moderators blocked
CATEGORY_DESCRIPTIONS = {
    "csam": "sexual content involving minors (always on)",
    "sexual": "explicit sexual content and nudity",
    "gore": "graphic gore",
    "hate": "hate symbols and slurs",
    "real_people_sexual": "sexualised depictions of real, named people",
    CUSTOM: "a term this server's moderators blocked",
}
# Words allowed between the two halves of a pair ("nude photo of a 12 year old": 3 between).
WINDOW = 8
UNDRESS_WINDOW = 3  # "remove her bikini": 1 between
MAX_EXPLAINED = 25  # hits listed by `Explanation.lines`; a hostile text can fire thousands
MAX_WRITTEN = 80  # characters of the user's own text quoted back (a spaced-out run can be thousands long)

_MINOR, _SUGGESTIVE, _REVEALING, _PERSON = "minor", "suggestive", "revealing", "person"
_UNDRESS, _GARMENT, _ALLOW, _CUSTOM_ALLOW = "undress", "garment", "allow", "custom_allow"
_AGE = Rule(_MINOR, "age under 18")
_CUE_KINDS = frozenset({_MINOR, _SUGGESTIVE, _REVEALING, _PERSON})  # halves of pairs, never blocking alone
_CSAM_CUES = {_MINOR: "minor", _SUGGESTIVE: "csam_sexual", "sexual": "csam_sexual", _REVEALING: "revealing"}
_LABELS = {
    _MINOR: "minor word",
    _PERSON: "real person",
    _SUGGESTIVE: "sexual word",
    "sexual": "sexual word",
    _REVEALING: "revealing word",
}


def _builtin_entries() -> Iterable[tuple[str, str]]:
    for category, terms in lists.TERMS.items():
        yield from ((category, term) for term in terms)
    for kind, terms in (
        (_MINOR, lists.MINOR),
        (_SUGGESTIVE, lists.SUGGESTIVE),
        (_REVEALING, lists.REVEALING),
        (_PERSON, lists.PUBLIC_FIGURES + lists.PERSONS),
        (_UNDRESS, lists.UNDRESS),
        (_GARMENT, lists.GARMENTS),
        (_ALLOW, lists.ALLOW),
    ):
        yield from ((kind, term) for term in terms)


_BUILTIN = Index(_builtin_entries())


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


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    category: str | None = None
    term: str | None = None  # the listed term
    written: str | None = None  # what the user wrote, to help them rephrase; never given for csam
    explanation: str = ""

    @property
    def blocked(self) -> bool:
        return not self.allowed


ALLOWED = Verdict(True, explanation="no rule matched")


@dataclass(frozen=True, slots=True)
class Explanation:
    """What `/moderation test` shows: how the filter read the text and every rule that fired."""

    text: str
    views: dict[str, str]
    hits: tuple[Hit, ...]
    verdict: Verdict

    def lines(self) -> list[str]:
        out = [f"{name}: {value}" for name, value in self.views.items() if value]
        for hit in self.hits[:MAX_EXPLAINED]:
            status = {"blocks": "BLOCKS", "off": "category off here", "cue": "no pair"}.get(hit.status)
            status = status or f"allowed by “{hit.note}”"
            label = _LABELS.get(hit.category, hit.category)
            out.append(f"{label}: “{hit.written}” → {hit.term} [{hit.view}] ({status})")
        if len(self.hits) > MAX_EXPLAINED:
            out.append(f"… and {len(self.hits) - MAX_EXPLAINED} more")
        out.append(f"verdict: {'allowed' if self.verdict.allowed else 'blocked'}: {self.verdict.explanation}")
        return out


@dataclass(frozen=True)
class Policy:
    """A server's rules: optional categories switched off, its own blocked and allowed terms. `csam` cannot be
    switched off and allowed terms never soften it."""

    disabled: frozenset[str] = frozenset()
    blocked_terms: tuple[str, ...] = ()
    allowed_terms: tuple[str, ...] = ()

    @classmethod
    def csam_only(cls) -> Policy:
        return cls(disabled=frozenset(OPTIONAL_CATEGORIES))

    def enabled(self, category: str) -> bool:
        return category == "csam" or category not in self.disabled

    @cached_property
    def custom(self) -> Index | None:
        entries = [(CUSTOM, t) for t in self.blocked_terms] + [(_CUSTOM_ALLOW, t) for t in self.allowed_terms]
        return Index(entries) if entries else None


DEFAULT_POLICY = Policy()


# --- analysis --------------------------------------------------------------------------------------------------


class _Match(NamedTuple):
    rule: Rule
    first: int  # word indexes, inclusive
    last: int
    view: str


@dataclass
class _Analysis:
    text: str
    folded: str
    view: Views
    matches: list[_Match]
    hits: list[Hit] = field(default_factory=list)
    # Pair halves not cancelled by an allow phrase, also paired across the turns of a conversation.
    cues: dict[str, list[_Match]] = field(default_factory=dict)

    @cached_property
    def _origins(self) -> list[int]:
        return origins(self.text)

    def written(self, match: _Match) -> str:
        start, end = self.view.words[match.first].start, self.view.words[match.last].end
        written = self.text[self._origins[start] : self._origins[end - 1] + 1]
        return written if len(written) <= MAX_WRITTEN else written[: MAX_WRITTEN - 1] + "…"


def _scan(text: str, indexes: Sequence[Index]) -> _Analysis:
    folded = fold(text)
    view = views(folded)
    words, changed = view.words, view.changed
    runs, groups = spaced_runs(words), glued(words, folded)
    matches: list[_Match] = []
    for index in indexes:
        matches += (_Match(rule, a, b, "words") for a, b, rule in index.find(view.exact))
        if view.stretched is not None:
            found = index.find(view.stretched, changed)
            # Only where collapsing changed something: "bobs" must not read as a collapsed "boobs".
            matches += (_Match(r, a, b, "stretched letters") for a, b, r in found if any(changed[a : b + 1]))
        for run in runs:
            inside = index.find_inside(skeleton(run.text), skeleton(collapse(run.text)))
            matches += (
                _Match(rule, *_run_words(words, run, start, end), "letters spaced apart") for rule, start, end in inside
            )
        for group in groups:
            matches += (_Match(rule, group.first, group.last, "split by punctuation") for rule in _whole(index, group))
        for i, key in enumerate(view.exact):
            if "*" in key:
                matches += (_Match(rule, i, i, "censored letters") for rule in index.find_censored(key))
    matches += (_Match(_AGE, a, b, "age") for a, b in ages(words))
    return _Analysis(text, folded, view, matches)


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


class _Spans:
    """Matches sorted by start, answering "which one reaches furthest among those starting by word i" in
    O(log n): enough to find an allow phrase around a match, or a partner within a window, without pairing
    every match with every other (a hostile text can hold thousands)."""

    def __init__(self, matches: Iterable[_Match]) -> None:
        ordered = sorted(matches, key=lambda m: m.first)
        self.starts = [m.first for m in ordered]
        self.reach: list[_Match] = []
        for match in ordered:
            self.reach.append(match if not self.reach or match.last > self.reach[-1].last else self.reach[-1])

    def furthest(self, started_by: int) -> _Match | None:
        k = bisect.bisect_right(self.starts, started_by)
        return self.reach[k - 1] if k else None

    def around(self, match: _Match) -> _Match | None:
        span = self.furthest(match.first)
        return span if span is not None and span.last >= match.last else None


def _pairs(lefts: list[_Match], rights: list[_Match], window: int) -> Iterable[tuple[_Match, _Match]]:
    """Each left with one right at most `window` words away."""
    spans = _Spans(rights)
    for left in lefts:
        right = spans.furthest(left.last + window + 1)
        if right is not None and right.last >= left.first - window - 1:
            yield left, right


def _pair_match(a: _Match, b: _Match, kind: str, view: str) -> _Match:
    return _Match(Rule(kind, f"{a.rule.term} + {b.rule.term}"), min(a.first, b.first), max(a.last, b.last), view)


def _judge(analysis: _Analysis, policy: Policy, detail: bool) -> None:
    """Fill `analysis.hits` (only blocking ones unless `detail`) and `analysis.cues`."""
    allows = _Spans(m for m in analysis.matches if m.rule.kind == _ALLOW)
    custom_allows = _Spans(m for m in analysis.matches if m.rule.kind == _CUSTOM_ALLOW)
    verbs = [m for m in analysis.matches if m.rule.kind == _UNDRESS and not allows.around(m)]
    garments = [m for m in analysis.matches if m.rule.kind == _GARMENT and not allows.around(m)]
    undressing = [_pair_match(v, g, "sexual", "undressing words") for v, g in _pairs(verbs, garments, UNDRESS_WINDOW)]
    cues = analysis.cues = {k: [] for k in ("minor", "age", "csam_sexual", "revealing", "person", "person_sexual")}
    masked: list[tuple[_Match, _Match]] = []
    seen: set[tuple[Rule, int, int]] = set()
    for match in analysis.matches + undressing:
        kind = match.rule.kind
        if kind in (_ALLOW, _CUSTOM_ALLOW, _UNDRESS, _GARMENT) or (match.rule, match.first, match.last) in seen:
            continue
        seen.add((match.rule, match.first, match.last))
        builtin = allows.around(match)
        # A server's allowed terms never soften csam, so csam and its pairs only see built-in allow phrases.
        custom = custom_allows.around(match)
        for_csam, for_others = builtin is None, builtin is None and custom is None
        if for_csam and kind in _CSAM_CUES:
            cues[_CSAM_CUES[kind]].append(match)
        if for_csam and match.rule == _AGE:
            cues["age"].append(match)
        if for_others and kind in (_PERSON, _SUGGESTIVE, _REVEALING, "sexual"):
            cues["person" if kind == _PERSON else "person_sexual"].append(match)
        if kind == "csam" and for_csam:
            analysis.hits.append(_hit(analysis, match, "blocks"))
        elif (allowed_by := builtin or custom) is not None:
            masked.append((match, allowed_by))
        elif kind not in _CUE_KINDS:
            analysis.hits.append(_hit(analysis, match, "blocks" if policy.enabled(kind) else "off"))
    paired: set[int] = set()
    for category, lefts, rights in (
        ("csam", cues["minor"], cues["csam_sexual"]),
        ("csam", cues["age"], cues["revealing"]),
        ("real_people_sexual", cues["person"], cues["person_sexual"]),
    ):
        status = "blocks" if policy.enabled(category) else "off"
        for left, right in _pairs(lefts, rights, WINDOW):
            view = f"{_LABELS[left.rule.kind]} near a {_LABELS[right.rule.kind]}"
            analysis.hits.append(_hit(analysis, _pair_match(left, right, category, view), status, pair=True))
            paired.update((id(left), id(right)))
    if detail:
        for match, allow in masked:
            analysis.hits.append(_hit(analysis, match, "allowed", allow.rule.term))
        for match in cues["minor"] + cues["person"]:
            if id(match) not in paired:
                analysis.hits.append(_hit(analysis, match, "cue"))


def _hit(analysis: _Analysis, match: _Match, status: str, note: str = "", pair: bool = False) -> Hit:
    width = match.last - match.first + 1
    return Hit(match.rule.kind, match.rule.term, analysis.written(match), match.view, status, note, width, pair)


def _analyse(text: str, policy: Policy, detail: bool = False) -> _Analysis:
    custom = policy.custom
    analysis = _scan(text, (_BUILTIN, custom) if custom else (_BUILTIN,))
    _judge(analysis, policy, detail)
    return analysis


def _verdict(hits: Iterable[Hit]) -> Verdict:
    order = CATEGORIES + (CUSTOM,)
    blocking = [h for h in hits if h.status == "blocks"]
    if not blocking:
        return ALLOWED
    best = min(blocking, key=lambda h: (h.category != "csam", -h.width, order.index(h.category)))
    if best.category == "csam":
        return Verdict(False, "csam", best.term, None, "sexual content involving a minor is never allowed")
    if best.pair:
        return Verdict(False, best.category, best.term, best.written, f"{best.view}: “{best.written}”")
    what = "a term this server blocks" if best.category == CUSTOM else f"a {best.category} term"
    stem, written = best.term.rstrip("*"), best.written.casefold()
    plain = written == stem or (best.term.endswith("*") and written.startswith(stem))
    reads = "" if plain else f" (reads as “{stem}”)"
    return Verdict(False, best.category, best.term, best.written, f"“{best.written}”{reads} is {what}")


def evaluate(text: str, policy: Policy = DEFAULT_POLICY) -> Verdict:
    """Allowed, or blocked with the category, the listed term and what the user wrote."""
    return _verdict(_analyse(text, policy).hits)


def evaluate_conversation(texts: Sequence[str], policy: Policy = DEFAULT_POLICY) -> tuple[int, Verdict]:
    """All texts that reach the model together (earlier instructions, then the new one). Returns the index of
    the text that blocked (-1 when two texts block together, or nothing did) and the verdict. Pairs are also
    looked for across texts: "a 12 year old at the park", then "make her sexy", edit one picture."""
    analyses = [_analyse(text, policy) for text in texts]
    for i, analysis in enumerate(analyses):
        verdict = _verdict(analysis.hits)
        if verdict.blocked:
            return i, verdict
    for category, left_kind, right_kind in (
        ("csam", "minor", "csam_sexual"),
        ("real_people_sexual", "person", "person_sexual"),
    ):
        left = [i for i, a in enumerate(analyses) if a.cues[left_kind]]
        right = [i for i, a in enumerate(analyses) if a.cues[right_kind]]
        if policy.enabled(category) and any(i != j for i in left for j in right):
            explanation = f"the conversation pairs a {_LABELS[left_kind]} with a sexual word"
            return -1, Verdict(False, category, None, None, explanation)
    return -1, ALLOWED


def explain(text: str, policy: Policy = DEFAULT_POLICY) -> Explanation:
    analysis = _analyse(text, policy, detail=True)
    view = analysis.view
    joined = spaced_runs(view.words) + glued(view.words, analysis.folded)
    shown = {
        "normalised": normalise(text),
        "leet read as letters": " ".join(view.exact) if view.exact != [w.text for w in view.words] else "",
        "stretching collapsed": " ".join(view.stretched) if view.stretched else "",
        "letters joined": " ".join(run.text for run in joined),
    }
    return Explanation(text, shown, tuple(analysis.hits), _verdict(analysis.hits))
