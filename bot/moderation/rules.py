"""Rules over pairs of matches: words that are fine alone but harmful together, within a few words.

Distances are counted in word steps; in CJK text each character is a word (`bot.moderation.text`), so a step
between two CJK characters counts a third: "14歳の女の子、下着姿" keeps its age and its garment within reach.

The pairs (their halves are listed per language in `bot/moderation/data/`):
- a minor or an age under 18 with a sexual or suggestive word, an age with revealing clothes: `csam`;
- a real person with a sexual, suggestive or revealing word: `real_people_sexual`;
- a group of people with vermin ("jews as rats"), or with animals when a likeness word stands between them
  ("black people drawn as monkeys", not "african monkeys"): `hate`;
- an extremist figure, group or symbol with praise ("heroic Hitler, saviour of Europe"), unless an opposition
  word is near ("the heroic resistance against the Nazis", "Nuremberg trials"): `hate`;
- a hate symbol that religious context makes a religious one (a swastika rangoli for Diwali, a Jain temple)
  is allowed, unless an extremist word is near as well;
- two sexual emoji together (peach and aubergine, droplets, the same one twice), or one next to an undressing
  word or a garment: `sexual`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from bot.moderation.index import Rule

STEP, SOLO_STEP = 3, 1  # units per word step; between two CJK characters or emoji
WINDOW = 8  # words allowed between the halves of a pair ("nude photo of a 12 year old": 3 between)
UNDRESS_WINDOW = 3  # "remove her bikini": 1 between
VERMIN_WINDOW = 4
BEAST_WINDOW = 6
EMOJI_WINDOW = 3

# Kinds that never block on their own.
CUE_KINDS = frozenset(
    "minor suggestive revealing person undress garment group vermin beast likeness extremist praise opposition "
    "religious emoji".split()
)


class Match(NamedTuple):
    rule: Rule
    first: int  # word indexes, inclusive
    last: int
    view: str


class Spans:
    """Matches sorted by start, answering "which one reaches furthest among those starting by word i" in
    O(log n): enough to find an allow phrase around a match, or a partner within a window, without pairing
    every match with every other (a hostile text can hold thousands)."""

    def __init__(self, matches: Iterable[Match]) -> None:
        ordered = sorted(matches, key=lambda m: m.first)
        self.starts = [m.first for m in ordered]
        self.reach: list[Match] = []
        for match in ordered:
            self.reach.append(match if not self.reach or match.last > self.reach[-1].last else self.reach[-1])

    def __bool__(self) -> bool:
        return bool(self.starts)

    def furthest(self, started_by: int) -> Match | None:
        k = bisect.bisect_right(self.starts, started_by)
        return self.reach[k - 1] if k else None

    def around(self, match: Match) -> Match | None:
        span = self.furthest(match.first)
        return span if span is not None and span.last >= match.last else None


class Positions:
    """Where each word stands in word-step units, to turn a window of words into a range of word indexes."""

    def __init__(self, solo: Sequence[bool]) -> None:
        self.solo = solo
        self.at: list[int] = []
        here = 0
        for i, is_solo in enumerate(solo):
            if i:
                here += SOLO_STEP if is_solo and solo[i - 1] else STEP
            self.at.append(here)

    def reach(self, match: Match, window: int) -> tuple[int, int]:
        """The first and last word index within `window` words between, before and after `match`."""
        units = STEP * (window + 1)
        low = bisect.bisect_left(self.at, self.at[match.first] - units)
        high = bisect.bisect_right(self.at, self.at[match.last] + units) - 1
        return low, high


def pairs(lefts: list[Match], rights: list[Match], window: int, where: Positions) -> Iterable[tuple[Match, Match]]:
    """Each left with one right at most `window` words away."""
    spans = Spans(rights)
    if not spans:
        return
    for left in lefts:
        low, high = where.reach(left, window)
        right = spans.furthest(high)
        if right is not None and right.last >= low:
            yield left, right


def pair_match(a: Match, b: Match, kind: str, view: str) -> Match:
    lang = a.rule.lang if a.rule.lang == b.rule.lang else "/".join(filter(None, (a.rule.lang, b.rule.lang)))
    rule = Rule(kind, f"{a.rule.term} + {b.rule.term}", lang)
    return Match(rule, min(a.first, b.first), max(a.last, b.last), view)


def near(match: Match, others: Spans, window: int, where: Positions) -> bool:
    if not others:
        return False
    low, high = where.reach(match, window)
    other = others.furthest(high)
    return other is not None and other.last >= low


class _Sorted:
    """Matches sorted by first word, to take those starting in a range of words."""

    def __init__(self, matches: Iterable[Match]) -> None:
        self.items = sorted(matches, key=lambda m: m.first)
        self.starts = [m.first for m in self.items]

    def starting(self, low: int, high: int, limit: int = 8) -> list[Match]:
        k = bisect.bisect_left(self.starts, low)
        return self.items[k : min(bisect.bisect_right(self.starts, high), k + limit)]


def combined(cues: dict[str, list[Match]], where: Positions, clothes: Sequence[Match] = ()) -> list[Match]:
    """Matches made of two cues that block as `hate` or `sexual`; `cues` holds each kind's matches that no
    allow phrase covers, `clothes` the undressing verbs and garments."""
    out: list[Match] = []
    groups = cues["group"]
    out += (
        pair_match(g, v, "hate", "group near vermin") for g, v in pairs(groups, cues["vermin"], VERMIN_WINDOW, where)
    )
    beasts, likeness = _Sorted(cues["beast"]), _Sorted(cues["likeness"])
    for group in groups if beasts.items and likeness.items else ():
        low, high = where.reach(group, BEAST_WINDOW)
        near_beasts = beasts.starting(low - 4, high)
        beast = next((b for b in near_beasts if _between(group, b, likeness, where.solo[b.last])), None)
        if beast is not None:
            out.append(pair_match(group, beast, "hate", "group drawn as animals"))
            break
    opposed = Spans(cues["opposition"])
    praise = [p for p in cues["praise"] if not near(p, opposed, WINDOW, where)]
    extremists = [e for e in cues["extremist"] if not near(e, opposed, WINDOW, where)]
    out += (pair_match(e, p, "hate", "extremist near praise") for e, p in pairs(extremists, praise, WINDOW, where))
    # Two sexual emoji together, the same one twice included ("🍈🍈"), or one next to clothes coming off.
    emoji = sorted(cues["emoji"], key=lambda m: m.first)
    reach = STEP * (EMOJI_WINDOW + 1)
    for a, b in zip(emoji, emoji[1:], strict=False):
        # Two fruits only side by side ("🍈🍈"): "peaches 🍑 and melons 🍈" is a fruit bowl.
        fruits = a.rule.term in _FRUIT and b.rule.term in _FRUIT
        if b.first > a.last and where.at[b.first] - where.at[a.last] <= (SOLO_STEP if fruits else reach):
            out.append(pair_match(a, b, "sexual", "sexual emoji together"))
            break
    if emoji and clothes:
        found = next(iter(pairs(emoji, list(clothes), EMOJI_WINDOW, where)), None)
        if found:
            out.append(pair_match(*found, "sexual", "sexual emoji and clothes"))
    return out


def _between(a: Match, b: Match, markers: _Sorted, solo_beast: bool = False) -> bool:
    """A likeness word between the group and the animal ("jews as rats"), or right after the animal where the
    language puts it after: CJK particles ("원숭이로", "ゴキブリとして"), Turkish postpositions ("maymunlar gibi")."""
    first, last = (a, b) if a.first <= b.first else (b, a)
    if any(m.last < last.first for m in markers.starting(first.last + 1, last.first - 1, 3)):
        return True
    if solo_beast:
        return bool(markers.starting(b.last + 1, b.last + 1, 1))
    # Languages with postpositions put the likeness word after the animal ("maymunlar gibi").
    after = markers.starting(b.last + 1, b.last + 1, 1)
    return bool(after) and any(code in _POSTPOSITIONAL for code in after[0].rule.lang.split("/"))


_FRUIT = frozenset("🍑🍈")
_POSTPOSITIONAL = frozenset(("tr", "ja", "ko"))


def religious_symbol(match: Match, cues: dict[str, list[Match]], where: Positions) -> bool:
    """A hate symbol in a religious setting, with no extremist word near."""
    return near(match, Spans(cues["religious"]), WINDOW, where) and not near(
        match, Spans(cues["extremist"]), WINDOW, where
    )
