"""The moderation filter: pure functions from a text and a server's policy to a verdict.

A text is normalised (`bot.moderation.text`), split into words, and every built-in or server term is looked up
in several views of those words: the leet skeleton ("s3x" reads "sex"), stretched letters collapsed
("nuuude"), letters written apart ("n.u.d.e"), words split by punctuation ("po-rn") and censoring asterisks
("p*rn"). Terms match whole words only, so "Scunthorpe" and "cocktail" are never touched, and allow phrases
("naked eye") cancel the words inside them. Three rules look at word pairs: a minor within a few words of a
sexual word is `csam`; a real person next to one is `real_people_sexual`; an undressing verb next to a garment
("remove her bikini") is `sexual`.

Everyday words that are also slang ("chatte", "schwanz") block only when written in disguise; emoji are words (🐀 as
vermin, 🍈🍈 as a sexual stand-in). Honest limits: only text is checked, never input images; only listed terms and
their disguises are caught (paraphrases and misspelt names are not; zero-width characters alone never count as a
disguise, so "s\u200bchwanz" is read as the tail it may be); words glued to others ("nudephoto") are caught only for
terms listed with a trailing `*`; a listed name near "sexy" blocks even when "sexy" describes a car.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from bot.moderation import langs
from bot.moderation.index import Index, Rule
from bot.moderation.rules import (
    CUE_KINDS,
    UNDRESS_WINDOW,
    WINDOW,
    Spans,
    combined,
    pair_match,
    pairs,
    religious_symbol,
)
from bot.moderation.scan import AGE, BUILTIN, Hit, Match
from bot.moderation.scan import Analysis as _Analysis
from bot.moderation.scan import scan as _scan
from bot.moderation.text import glued, normalise, spaced_runs

__all__ = ["CATEGORIES", "Explanation", "Hit", "Policy", "Verdict", "evaluate", "evaluate_conversation", "explain"]

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

_MINOR, _SUGGESTIVE, _REVEALING, _PERSON = "minor", "suggestive", "revealing", "person"
_UNDRESS, _GARMENT, _ALLOW, _CUSTOM_ALLOW = "undress", "garment", "allow", "custom_allow"
_SYMBOL = "symbol"
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


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    category: str | None = None
    term: str | None = None  # the listed term
    written: str | None = None  # what the user wrote, to help them rephrase; never given for csam
    explanation: str = ""
    tier: str = "local"  # "local" (the word lists and rules) or "ai" (the second opinion, bot.moderation.ai)
    rule: str = ""  # how it matched: "words", "misspelling", "group near vermin", ...
    lang: str = ""  # the language list of the rule, e.g. "es"; "en/es" for a pair across two lists

    @property
    def decided_by(self) -> str:
        """One line for `/moderation test` and the audit log: tier, rule and language."""
        parts = ["AI second opinion" if self.tier == "ai" else "local word lists and rules"]
        if self.rule:
            parts.append(f"rule: {self.rule}")
        if self.lang:
            parts.append(f"language: {_language(self.lang)}")
        return " · ".join(parts)

    @property
    def blocked(self) -> bool:
        return not self.allowed


def _language(codes: str) -> str:
    return " + ".join(langs.LANGUAGE_NAMES.get(code, code) for code in codes.split("/"))


ALLOWED = Verdict(True, explanation="no rule matched")


@dataclass(frozen=True, slots=True)
class Explanation:
    """What `/moderation test` shows: how the filter read the text and every rule that fired."""

    text: str
    views: dict[str, str]
    hits: tuple[Hit, ...]
    verdict: Verdict
    ai_note: str = ""  # the AI second opinion's answer, when it was asked (bot.moderation.store)

    def lines(self) -> list[str]:
        out = [f"{name}: {value}" for name, value in self.views.items() if value]
        for hit in self.hits[:MAX_EXPLAINED]:
            status = {"blocks": "BLOCKS", "off": "category off here", "cue": "no pair"}.get(hit.status)
            status = status or f"allowed by “{hit.note}”"
            label = _LABELS.get(hit.category, hit.category)
            language = " · " + _language(hit.lang) if hit.lang else ""
            out.append(f"{label}: “{hit.written}” → {hit.term} [{hit.view}] ({status}){language}")
        if len(self.hits) > MAX_EXPLAINED:
            out.append(f"… and {len(self.hits) - MAX_EXPLAINED} more")
        if self.ai_note:
            out.append(self.ai_note)
        out.append(f"verdict: {'allowed' if self.verdict.allowed else 'blocked'}: {self.verdict.explanation}")
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


# --- judging -------------------------------------------------------------------------------------------------

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
    extra = combined(cues, where, verbs + garments)
    extra_ids = {id(m) for m in extra}
    masked: list[tuple[Match, Match | str]] = []
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
        if for_csam and match.rule == AGE:
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


def _add(analysis: _Analysis, match: Match, status: str, note: str = "", pair: bool = False, kind: str = "") -> None:
    """Record a hit. Outside explanations a rule counts once, at its widest: the verdict reads nothing else,
    and a hostile text repeating one phrase would otherwise make thousands of identical hits."""
    if not analysis.detail:
        key = (match.rule, status, kind)
        width = match.last - match.first
        if analysis.widest.get(key, -1) >= width:
            return
        analysis.widest[key] = width
    analysis.hits.append(_hit(analysis, match, status, note, pair, kind))


def _hit(analysis: _Analysis, match: Match, status: str, note: str = "", pair: bool = False, kind: str = "") -> Hit:
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
    analysis = _scan(text, (BUILTIN, custom) if custom else (BUILTIN,))
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
