"""The moderation filter: pure functions from a text and a server's policy to a verdict.

A text is normalised (`bot.moderation_text`), split into words, and every built-in or server term is looked up
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
from dataclasses import dataclass, field, replace
from functools import cached_property

from bot import moderation_langs as langs
from bot import moderation_terms as lists
from bot.moderation_fuzzy import FuzzyIndex, guard, written_form
from bot.moderation_index import Index, Rule
from bot.moderation_rules import (
    CUE_KINDS,
    UNDRESS_WINDOW,
    WINDOW,
    Match,
    Positions,
    Spans,
    combined,
    pair_match,
    pairs,
    religious_symbol,
)
from bot.moderation_text import (
    Run,
    Token,
    Views,
    ages,
    cjk_runs,
    collapse,
    fold,
    glued,
    is_solo,
    normalise,
    origins,
    skeleton,
    spaced_runs,
    tokens,
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
MAX_EXPLAINED = 25  # hits listed by `Explanation.lines`; a hostile text can fire thousands
MAX_WRITTEN = 80  # characters of the user's own text quoted back (a spaced-out run can be thousands long)

_MINOR, _SUGGESTIVE, _REVEALING, _PERSON = "minor", "suggestive", "revealing", "person"
_UNDRESS, _GARMENT, _ALLOW, _CUSTOM_ALLOW = "undress", "garment", "allow", "custom_allow"
_SYMBOL = "symbol"
_AGE = Rule(_MINOR, "age under 18")
_BLOCKING = frozenset(("csam", "sexual", "gore", "hate"))
_CSAM_CUES = {_MINOR: "minor", _SUGGESTIVE: "csam_sexual", "sexual": "csam_sexual", _REVEALING: "revealing"}
_LABELS = {
    _MINOR: "minor word",
    _PERSON: "real person",
    _SUGGESTIVE: "sexual word",
    "sexual": "sexual word",
    _REVEALING: "revealing word",
}
_SKIPPED = frozenset((_ALLOW, _CUSTOM_ALLOW, _UNDRESS, _GARMENT))
_BLOCK_ONLY = frozenset(("gore", "hate", CUSTOM))  # kinds that are never the half of a pair


def _builtin_entries() -> Iterable[tuple[str, str, str]]:
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


_BUILTIN = Index(e for e in _builtin_entries() if e[0] != "benign")
_FUZZY: FuzzyIndex[Rule] = FuzzyIndex(_fuzzy_entries(_builtin_entries()))
# Everyday words never read as a term spelled otherwise (see `bot.moderation_fuzzy`): the generated guard
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


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    category: str | None = None
    term: str | None = None  # the listed term
    written: str | None = None  # what the user wrote, to help them rephrase; never given for csam
    explanation: str = ""
    tier: str = "local"  # "local" (the word lists and rules) or "ai" (the second opinion, bot.moderation_ai)
    rule: str = ""  # how it matched: "words", "misspelling", "group near vermin", ...
    lang: str = ""  # the language list of the rule, e.g. "es"; "en/es" for a pair across two lists

    @property
    def decided_by(self) -> str:
        """One line for `/moderation test` and the audit log: tier, rule and language."""
        parts = ["AI second opinion" if self.tier == "ai" else "local word lists and rules"]
        if self.rule:
            parts.append(f"rule: {self.rule}")
        if self.lang:
            names = [langs.LANGUAGE_NAMES.get(code, code) for code in self.lang.split("/")]
            parts.append(f"language: {' + '.join(names)}")
        return " · ".join(parts)

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
            where = f"{hit.view}, {hit.lang}" if hit.lang else hit.view
            out.append(f"{label}: “{hit.written}” → {hit.term} [{where}] ({status})")
        if len(self.hits) > MAX_EXPLAINED:
            out.append(f"… and {len(self.hits) - MAX_EXPLAINED} more")
        out.append(f"verdict: {'allowed' if self.verdict.allowed else 'blocked'}: {self.verdict.explanation}")
        if self.verdict.blocked:
            out.append(f"decided by: {self.verdict.decided_by}")
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


_Match = Match


@dataclass
class _Analysis:
    text: str
    folded: str
    view: Views
    matches: list[_Match]
    where: Positions
    hits: list[Hit] = field(default_factory=list)
    detail: bool = False  # explaining: every hit quotes what the user wrote
    sources: dict[int, _Match] = field(default_factory=dict)  # id(hit) -> its match, when not explaining
    widest: dict[tuple[Rule, str, str], int] = field(default_factory=dict)  # see `_add`
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
    runs, groups, cjk = spaced_runs(words), glued(words, folded), cjk_runs(words)
    matches: list[_Match] = []
    for index in indexes:
        matches += (_Match(rule, a, b, "words") for a, b, rule in index.find(view.exact))
        if view.stretched is not None:
            found = index.find(view.stretched, changed)
            # Only where collapsing changed something: "bobs" must not read as a collapsed "boobs".
            matches += (_Match(r, a, b, "stretched letters") for a, b, r in found if any(changed[a : b + 1]))
        for run in runs:
            found = index.find_inside(skeleton(run.text), skeleton(collapse(run.text)))
            matches += (
                _Match(rule, *_run_words(words, run, start, end), "letters spaced apart") for rule, start, end in found
            )
            # A spaced-out word that starts a phrase: "N a G a dziewczyna".
            after = view.exact[run.last + 1 : run.last + index.exact.max_words]
            if after:
                found_phrases = index.find([skeleton(run.text), *after])
                matches += (
                    _Match(rule, run.first, run.last + b, "letters spaced apart")
                    for a, b, rule in found_phrases
                    if a == 0 < b
                )
        for group in groups:
            matches += (_Match(rule, group.first, group.last, "split by punctuation") for rule in _whole(index, group))
        for run, at in cjk:
            matches += (_Match(rule, at[start], at[end - 1], "words") for rule, start, end in index.find_cjk(run))
        for i, key in enumerate(view.exact):
            if "*" in key:
                matches += (_Match(rule, i, i, "censored letters") for rule in index.find_censored(key))
    matches += _misspellings(view, matches)
    matches = _unguarded(text, view, matches)
    matches += (_Match(_AGE, a, b, "age") for a, b in ages(words))
    solo = [len(w.text) == 1 and is_solo(w.text) for w in words]
    return _Analysis(text, folded, view, matches, Positions(solo))


def _misspellings(view: Views, matches: list[_Match]) -> list[_Match]:
    """Words no list knows, one edit from a blocking word of the built-in lists."""
    known = bytearray(len(view.exact))
    for match in matches:
        known[match.first : match.last + 1] = b"\x01" * (match.last - match.first + 1)
    return [
        _Match(rule, i, i, f"misspelling of “{key}”")
        for i, word in enumerate(view.exact)
        if len(word) >= 4 and not known[i] and word.isalpha()
        for key, rule in _FUZZY.find(word)
    ]


def _unguarded(text: str, view: Views, matches: list[_Match]) -> list[_Match]:
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


# Cue kinds collected before judging (the rules of `bot.moderation_rules`); the others are gathered while judging.
_PRESET = CUE_KINDS - {_MINOR, _SUGGESTIVE, _REVEALING, _PERSON, _UNDRESS, _GARMENT}
_CUE_LISTS = ("minor", "age", "csam_sexual", "revealing", "person", "person_sexual", *sorted(_PRESET))


def _judge(analysis: _Analysis, policy: Policy, detail: bool) -> None:
    """Fill `analysis.hits` (only blocking ones unless `detail`) and `analysis.cues`."""
    where = analysis.where
    allows = Spans(m for m in analysis.matches if m.rule.kind == _ALLOW)
    custom_allows = Spans(m for m in analysis.matches if m.rule.kind == _CUSTOM_ALLOW)
    verbs = [m for m in analysis.matches if m.rule.kind == _UNDRESS and not allows.around(m)]
    garments = [m for m in analysis.matches if m.rule.kind == _GARMENT and not allows.around(m)]
    undressing = [
        pair_match(v, g, "sexual", "undressing words") for v, g in pairs(verbs, garments, UNDRESS_WINDOW, where)
    ]
    cues = analysis.cues = {k: [] for k in _CUE_LISTS}
    for match in analysis.matches:
        if match.rule.kind in _PRESET and not allows.around(match):
            cues[match.rule.kind].append(match)
    extra = combined(cues, where)
    extra_ids = {id(m) for m in extra}
    masked: list[tuple[_Match, _Match | str]] = []
    seen: set[tuple[Rule, int, int]] = set()
    for match in analysis.matches + undressing + extra:
        kind = match.rule.kind
        if kind in _SKIPPED or (match.rule, match.first, match.last) in seen:
            continue
        if kind in _BLOCK_ONLY and analysis.widest.get((match.rule, "blocks", ""), -1) >= match.last - match.first:
            continue  # this rule already blocks at least as wide (see `_add`); nothing else reads it
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
        if kind == _SYMBOL:
            if builtin or custom:
                masked.append((match, builtin or custom))  # type: ignore[arg-type]
            elif religious_symbol(match, cues, where):
                masked.append((match, "religious context"))
            else:
                _add(analysis, match, "blocks" if policy.enabled("hate") else "off", kind="hate")
        elif kind == "csam" and for_csam:
            _add(analysis, match, "blocks")
        elif builtin or custom:
            masked.append((match, builtin or custom))  # type: ignore[arg-type]
        elif kind not in CUE_KINDS:
            pair = id(match) in extra_ids
            _add(analysis, match, "blocks" if policy.enabled(kind) else "off", pair=pair)
    paired: set[int] = set()
    for category, lefts, rights in (
        ("csam", cues["minor"], cues["csam_sexual"]),
        ("csam", cues["age"], cues["revealing"]),
        ("real_people_sexual", cues["person"], cues["person_sexual"]),
    ):
        status = "blocks" if policy.enabled(category) else "off"
        for left, right in pairs(lefts, rights, WINDOW, where):
            view = f"{_LABELS[left.rule.kind]} near a {_LABELS[right.rule.kind]}"
            _add(analysis, pair_match(left, right, category, view), status, pair=True)
            paired.update((id(left), id(right)))
    if detail:
        for match, allow in masked:
            note = allow if isinstance(allow, str) else allow.rule.term
            _add(analysis, match, "allowed", note)
        for match in cues["minor"] + cues["person"]:
            if id(match) not in paired:
                _add(analysis, match, "cue")


def _add(analysis: _Analysis, match: _Match, status: str, note: str = "", pair: bool = False, kind: str = "") -> None:
    """Record a hit. Outside explanations a rule counts once, at its widest: the verdict reads nothing else,
    and a hostile text repeating one phrase would otherwise make thousands of identical hits."""
    if not analysis.detail:
        key = (match.rule, status, kind)
        width = match.last - match.first
        if analysis.widest.get(key, -1) >= width:
            return
        analysis.widest[key] = width
    analysis.hits.append(_hit(analysis, match, status, note, pair, kind))


def _hit(analysis: _Analysis, match: _Match, status: str, note: str = "", pair: bool = False, kind: str = "") -> Hit:
    width = match.last - match.first + 1
    rule = match.rule
    # Quoting the user's text costs a slice per hit; a hostile text fires thousands and only the verdict's is read.
    written = analysis.written(match) if analysis.detail else ""
    hit = Hit(kind or rule.kind, rule.term, written, match.view, status, note, width, pair, rule.lang)
    if not analysis.detail:
        analysis.sources[id(hit)] = match
    return hit


def _analyse(text: str, policy: Policy, detail: bool = False) -> _Analysis:
    custom = policy.custom
    analysis = _scan(text, (_BUILTIN, custom) if custom else (_BUILTIN,))
    analysis.detail = detail
    _judge(analysis, policy, detail)
    return analysis


def _verdict(analysis: _Analysis) -> Verdict:
    order = CATEGORIES + (CUSTOM,)
    blocking = [h for h in analysis.hits if h.status == "blocks"]
    if not blocking:
        return ALLOWED
    best = min(blocking, key=lambda h: (h.category != "csam", -h.width, order.index(h.category)))
    if id(best) in analysis.sources:
        best = replace(best, written=analysis.written(analysis.sources[id(best)]))
    how = {"rule": best.view, "lang": best.lang}
    if best.category == "csam":
        return Verdict(False, "csam", best.term, None, "sexual content involving a minor is never allowed", **how)
    if best.pair:
        return Verdict(False, best.category, best.term, best.written, f"{best.view}: “{best.written}”", **how)
    what = "a term this server blocks" if best.category == CUSTOM else f"a {best.category} term"
    stem, written = best.term.rstrip("*"), best.written.casefold()
    plain = written == stem or (best.term.endswith("*") and written.startswith(stem))
    reads = "" if plain else f" (reads as “{stem}”)"
    explanation = f"“{best.written}”{reads} is {what}"
    return Verdict(False, best.category, best.term, best.written, explanation, **how)


def evaluate(text: str, policy: Policy = DEFAULT_POLICY) -> Verdict:
    """Allowed, or blocked with the category, the listed term and what the user wrote."""
    return _verdict(_analyse(text, policy))


def evaluate_conversation(texts: Sequence[str], policy: Policy = DEFAULT_POLICY) -> tuple[int, Verdict]:
    """All texts that reach the model together (earlier instructions, then the new one). Returns the index of
    the text that blocked (-1 when two texts block together, or nothing did) and the verdict. Pairs are also
    looked for across texts: "a 12 year old at the park", then "make her sexy", edit one picture."""
    analyses = [_analyse(text, policy) for text in texts]
    for i, analysis in enumerate(analyses):
        verdict = _verdict(analysis)
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
    return Explanation(text, shown, tuple(analysis.hits), _verdict(analysis))
