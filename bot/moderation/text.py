"""Text normalisation for the moderation filter: what a prompt "reads as" once the usual disguises are removed.

`normalise` is applied per code point through one memoised translation table, so it runs at `str.translate`
speed, never fails on any Unicode input and is idempotent (each code point maps to a fixed point). Per code
point it applies NFKC (full-width and mathematical letters, ligatures), maps look-alike letters from other
scripts to the Latin letter they imitate (our own table: transliteration would read Cyrillic "р" as "r" where a
reader sees "p"), case-folds, strips diacritics and drops invisible characters.

Word-level views are built on top: `views` (each word as its leet skeleton and with stretched letters
collapsed), `spaced_runs` (letters written apart, joined) and `glued` (words split by punctuation, joined).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# Letters whose look depends on case: capital Greek Eta reads "H" but folds to eta, which reads "n".
_CASE_GLYPHS = dict(zip("ΗΝΜΥИ", "hnmyn", strict=True))


def _pairs(text: str) -> dict[str, str]:
    return {pair[0]: pair[1:] for pair in text.split()}


# Look-alikes after case folding and accent stripping -> the Latin letter (or digit) a reader sees.
_GLYPHS = _pairs(
    # Cyrillic
    "аa бb вb гr дd еe жx з3 иu кk мm нh оo пn рp сc тt уy хx цu шw щw ъb ьb эe яr ѕs іi јj ԁd ԛq ԝw "
    "үy һh ӏl єe ґr "
    # Greek
    "αa βb γy δd εe ζz ηn ιi κk μu νv οo πn ρp σo ςc τt υu χx ωw ϲc ϳj "
    # Latin variants, IPA and small capitals
    "ıi ȷj ɑa ɐa ɓb ƀb ɔc ɕc ɖd ɗd đd ɘe əe ɛe ɡg ɢg ɦh ħh ɨi ɩi ɪi ɫl ɬl ɭl łl ƚl ŀl ɱm ɲn ɳn ɴn ŋn ɵo "
    "øo ɾr ʀr ɹr ʂs ʈt ŧt ʉu ʊu ʋv ʏy ʐz ʑz ƶz ȥz ᴀa ʙb ᴄc ᴅd ᴇe ꜰf ʜh ᴊj ᴋk ʟl ᴍm ᴏo ᴘp ꞯq ꜱs ᴛt ᴜu "
    "ᴠv ᴡw ᴢz ƒf ƙk þp ðd ĸk ×x æae œoe "
    # Armenian
    "օo սu ոn հh ցg զq "
    # Lisu and Cherokee capitals (case folding turns small Cherokee letters into these)
    "ꓐb ꓑp ꓓd ꓔt ꓖg ꓗk ꓙj ꓚc ꓜz ꓝf ꓟm ꓠn ꓡl ꓢs ꓣr ꓦv ꓧh ꓪw ꓫx ꓬy ꓮa ꓰe ꓲi ꓳo ꓴu "
    "Ꭰd Ꭱr Ꭲt Ꭵi Ꭹy Ꭺa Ꭻj Ꭼe Ꮃw Ꮇm Ꮋh Ꮎo Ꮐg Ꮒh Ꮓz Ꮟb Ꮢr Ꮤw Ꮥs Ꮪs Ꮮl Ꮯc Ꮲp Ꮶk Ᏼb"
)
# Enclosed letters without a compatibility decomposition: regional indicators, negative circled/squared.
for _start in (0x1F1E6, 0x1F150, 0x1F170):
    for _i in range(26):
        _GLYPHS[chr(_start + _i)] = chr(ord("a") + _i)
# Japanese written with look-alike symbols ("エ□い" reads "エロい").
_GLYPHS.update({"□": "ロ", "〇": "o"})
# Circles that censor a character in CJK words ("ま○こ", "ま●こ") all read as one mark, a CJK character of its
# own: the lists' CJK terms are also listed with each inner character censored (`bot.moderation.langs`).
CENSOR_MARK = "○"
_GLYPHS.update(dict.fromkeys("●◯◎⚪⚫", CENSOR_MARK))
# Blank-looking letters and symbols (Hangul fillers, braille blank, Khmer inherent vowels).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u180e")
# Marks, formatting (zero-width, bidi, soft hyphen, tags), controls, private use, surrogates, unassigned.
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cc", "Co", "Cs", "Cn"})
_MEMO_LIMIT = 50_000


def _fold(ch: str) -> str:
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if "\uac00" <= c <= "\ud7a3":
            out.append(c)  # Hangul syllables stay whole: NFD would split each into two or three jamo
            continue
        if c in _CASE_GLYPHS:
            out.append(_CASE_GLYPHS[c])
            continue
        for d in unicodedata.normalize("NFD", c.casefold()):
            if d.isspace():
                out.append(" ")
            elif d not in _INVISIBLE and unicodedata.category(d) not in _DROPPED_CATEGORIES:
                out.append(_GLYPHS.get(d, d))
    return "".join(out)


def _fixed_point(ch: str) -> str:
    out = _fold(ch)
    for _ in range(4):
        again = "".join(_fold(c) for c in out)
        if again == out:
            return out
        out = again
    # Never seen in practice; keeping only stable characters still guarantees idempotence.
    return "".join(c for c in out if _fold(c) == c)


class _CharMap(dict[int, str]):
    """Code point -> normalised text, computed on first use. Memo size is capped against hostile inputs."""

    def __missing__(self, code: int) -> str:
        value = _fixed_point(chr(code))
        if len(self) < _MEMO_LIMIT:
            self[code] = value
        return value


_CHAR_MAP = _CharMap()
for _code in range(128):
    _CHAR_MAP[_code] = _fixed_point(chr(_code))


def fold(text: str) -> str:
    """Per-code-point normalisation, keeping one position per output character (spaces not collapsed)."""
    return text.translate(_CHAR_MAP)


def normalise(text: str) -> str:
    """What the text reads as: folded, with runs of whitespace collapsed. Idempotent."""
    return " ".join(fold(text).split())


def origins(text: str) -> list[int]:
    """For each character of `fold(text)`, the index in `text` of the character it came from."""
    if text.isascii() and len(fold(text)) == len(text):
        return list(range(len(text)))  # every ASCII character folds to at most one, so none was dropped
    out: list[int] = []
    for index, ch in enumerate(text):
        out.extend([index] * len(_CHAR_MAP[ord(ch)]))
    return out


# --- word views ------------------------------------------------------------------------------------------------

# Leet and symbol spellings. "l" and "1" both read as "i" (and "z" as "s") so one skeleton covers every mix;
# terms are reduced the same way, so only tokens that equal a term letter-for-letter ever collide.
_LEET = str.maketrans("013457892@$!|+€£¢¥lz", "oieastbgsasiiteicyis")
_LEET_START = "@$€£¢¥"
_LEET_INSIDE = "!|+*"
# Chinese, Japanese and Korean are written without spaces between words (Korean glues particles to words): each
# of their characters is a word of its own, and their terms are phrases of characters, found anywhere in a run.
CJK = (
    "\u25cb\u1100-\u11ff\u3005\u3006\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3"
    "\uf900-\ufaff\U00020000-\U0002ffff"
)
# Emoji are words of their own: they stand in for sexual words (peach, aubergine, droplets, melons) and for
# vermin and animals ("🐀🐀" for a group of people), so every pictograph is read, each as one word.
EMOJI = "\U0001f300-\U0001faff\u2600-\u27bf"
_SOLO = re.compile(f"[{CJK}{EMOJI}]")
_CJK_CHAR = re.compile(f"[{CJK}]")
_LETTER = rf"(?:[^\W_{CJK}]|[{_LEET_START}])"
# A word: letters/digits and leet symbols; "!", "|", "+" and "*" only between them ("n!ce", "p*rn").
_WORD = re.compile(rf"[{CJK}{EMOJI}]|{_LETTER}+(?:[{re.escape(_LEET_INSIDE)}]+{_LETTER}+)*")
_REPEAT = re.compile(r"(.)\1+")
_REPEATED = re.compile(r"(.)\1")


def skeleton(word: str) -> str:
    return word.translate(_LEET)


def collapse(word: str) -> str:
    """Stretched letters read once: "nuuude" -> "nude" (also "assassin" -> "asasin", so only used as a view)."""
    return _REPEAT.sub(r"\1", word) if len(word) > 1 else word


class Token(NamedTuple):
    text: str  # folded spelling
    start: int  # offsets in fold(text)
    end: int


def tokens(folded: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in _WORD.finditer(folded)]


@dataclass(slots=True)
class Views:
    """The words of a folded text, each also as its leet skeleton and, where letters repeat, as the skeleton of
    its collapsed spelling. Leet maps one character to one, so the skeleton of the whole text is sliced."""

    words: list[Token]
    exact: list[str]
    stretched: list[str] | None  # None when no word has a repeated letter
    changed: list[bool]  # words that collapsing changed


def views(folded: str) -> Views:
    words = tokens(folded)
    skeletons = folded.translate(_LEET)
    exact = [skeletons[start:end] for _, start, end in words]
    changed = [False] * len(words)
    repeats = [m.start() for m in _REPEATED.finditer(folded)]
    k = 0
    for i, (_, start, end) in enumerate(words):
        while k < len(repeats) and repeats[k] < start:
            k += 1
        changed[i] = k < len(repeats) and repeats[k] < end - 1
    if not any(changed):
        return Views(words, exact, None, changed)
    stretched = [skeleton(collapse(w.text)) if c else e for w, c, e in zip(words, changed, exact, strict=True)]
    return Views(words, exact, stretched, changed)


class Run(NamedTuple):
    """Letters written apart ("n u d e", "n.u.d.e") read as one word; `first`/`last` index into the tokens."""

    text: str
    first: int
    last: int
    offsets: tuple[int, ...]  # where each word starts in `text`


_GLUE = frozenset(".-_'’·")


def glued(words: list[Token], folded: str) -> list[Run]:
    """Words split only by dots, hyphens, underscores or apostrophes ("nu.de", "po-rn"), read as one word."""
    groups = []
    i, n = 0, len(words)
    while i < n:
        j = i
        while j + 1 < n and _is_glue(folded, words[j].end, words[j + 1].start):
            j += 1
        if j > i:
            groups.append(_joined(words, i, j))
        i = j + 1
    return groups


def _joined(words: list[Token], first: int, last: int) -> Run:
    parts = [w.text for w in words[first : last + 1]]
    offsets = list(itertools.accumulate((len(p) for p in parts[:-1]), initial=0))
    return Run("".join(parts), first, last, tuple(offsets))


def _is_glue(folded: str, start: int, end: int) -> bool:
    return start < end and folded[start] in _GLUE and all(c in _GLUE for c in folded[start:end])


def is_cjk(word: str) -> bool:
    return _CJK_CHAR.match(word) is not None


def cjk_runs(words: list[Token]) -> list[tuple[str, list[int]]]:
    """Runs of consecutive CJK words (spaces and punctuation between them dropped), with their word indexes."""
    runs: list[tuple[str, list[int]]] = []
    current: list[int] = []
    if not any(_CJK_CHAR.match(w.text) for w in words if len(w.text) == 1):
        return runs
    for i, word in enumerate([*words, Token("", 0, 0)]):
        if word.text and is_cjk(word.text):
            current.append(i)
        elif current and len(word.text) == 1 and is_solo(word.text):
            continue  # an emoji inside a CJK word ("做❤爱") does not split it
        elif current:
            runs.append(("".join(words[k].text for k in current), current))
            current = []
    return runs


def is_solo(word: str) -> bool:
    """A CJK character or an emoji: a word of one character that never joins others."""
    return _SOLO.match(word) is not None


def spaced_runs(words: list[Token], min_letters: int = 2, neighbour_max: int = 3) -> list[Run]:
    """Runs of single-character words, joined. A short word right before or after is joined as well, because
    spacing often starts late or stops early ("na.k.e.d"). CJK characters are words already and never join."""
    runs = []
    i, n = 0, len(words)
    while i < n:
        if len(words[i].text) != 1 or is_solo(words[i].text):
            i += 1
            continue
        j = i
        while j + 1 < n and len(words[j + 1].text) == 1 and not is_solo(words[j + 1].text):
            j += 1
        if j - i + 1 >= min_letters:
            first = i - 1 if i > 0 and len(words[i - 1].text) <= neighbour_max else i
            last = j + 1 if j + 1 < n and len(words[j + 1].text) <= neighbour_max else j
            runs.append(_joined(words, first, last))
            if first < i:
                # Also without the word before, which may be a real word: "de p a u duro" is "pau duro".
                runs.append(_joined(words, i, last))
        i = j + 1
    return runs


_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen".split(),
        start=1,
    )
}
# Words for "years (old)" after a number, in the bot's languages, as `fold` reads them ("лет" -> "лet").
_AGE_UNITS = frozenset(
    fold(unit)
    for unit in (
        "year years yr yrs yo y/o yro "  # English ("y/o" arrives as "y" "o", see below)
        "año años anos anito anitos añito añitos "  # Spanish
        "ano anos aninho aninhos "  # Portuguese
        "an ans "  # French
        "jahre jahren jährig jährige jähriger jähriges jährigen "  # German ("15-jähriges")
        "anni anno "  # Italian
        "лет год года летняя летний летнюю летней летнего "  # Russian
        "lat lata roku letnia letni letnie letnią letniej letniego "  # Polish
        "yaş yaşında yaşındaki yasinda yasindaki "  # Turkish
        "歳 才 岁 살 세"  # Japanese, Chinese, Korean
    ).split()
)
_AGE_BEFORE = frozenset(fold(w) for w in "aged age is was turned edad idade alter eta возраст".split())
# "only 14 but ...": a bare number between these reads as an age.
_ONLY = frozenset(fold(w) for w in "only just barely merely solo apenas seulement nur erst всего".split())
_CHILD_OF = frozenset("girl boy child kid daughter son lass lad".split())
_BUT = frozenset(fold(w) for w in "but and yet though pero mas mais aber ma но ale ama".split())


def ages(words: list[Token]) -> Iterable[tuple[int, int]]:
    """Word spans such as "12 year old", "13yo", "aged 15", "16 y/o", "only 14 but", "15 años", "14歳"."""
    n = len(words)
    for i, word in enumerate(words):
        text = word.text
        if not text[0].isdigit() and text not in _NUMBER_WORDS:
            continue
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        if digits.isdigit() and len(digits) <= 2:
            age, unit = int(digits), text[len(digits) :]
        elif text in _NUMBER_WORDS:
            age, unit = _NUMBER_WORDS[text], ""
        else:
            continue
        if not 0 < age < 18:
            continue
        after = words[i + 1].text if i + 1 < n else ""
        if unit in _AGE_UNITS and unit:
            yield i, i
        elif unit:
            continue
        elif after == "y" and i + 2 < n and words[i + 2].text == "o":
            yield i, i + 2
        elif after in _AGE_UNITS:
            yield i, i + 1 + (i + 2 < n and words[i + 2].text == "old")
        elif i > 0 and words[i - 1].text in _AGE_BEFORE:
            yield i - 1, i
        elif i > 0 and words[i - 1].text in _ONLY and after in _BUT:
            yield i - 1, i + 1
        elif i > 1 and words[i - 1].text == "of" and words[i - 2].text in _CHILD_OF:
            yield i - 2, i  # "a girl of thirteen"
