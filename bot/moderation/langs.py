"""The per-language word lists of the moderation filter: `bot/moderation/data/<lang>.txt`, loaded once.

A file is sections headed `[kind]` holding comma-separated entries in the syntax of `bot.moderation.terms`
(whole words, a trailing `*` for word starts, several words for a phrase; CJK terms are runs of characters found
anywhere, because those languages put no spaces between words). `#` starts a comment. The kinds:

- blocking on their own: `csam`, `sexual`, `gore`, `hate`;
- halves of pairs (see `bot.moderation.rules`): `minor`, `suggestive`, `revealing`, `person`, `undress`,
  `garment`; `group` x `vermin` (a group of people as vermin), `group` x `likeness` x `beast` (as monkeys),
  `extremist` x `praise` (glorification, cancelled by an `opposition` word nearby); `symbol` (a hate symbol that
  a `religious` context word nearby makes a religious one); `emoji` (two different ones together are sexual);
- `disguised`: everyday words that are also sexual slang ("schwanz" a tail, "chatte" a cat, "pau" wood): sexual
  only when written in disguise (stars, leet, spaced letters, mid-word capitals, mixed scripts), see
  `bot.moderation.scan`;
- `allow`: phrases that are fine although a listed word is inside them ("chink in the armor", "no gore");
- `benign`: everyday words, as written, that normalisation makes look like a listed word of another language
  (Polish "góry", mountains, would read as "gory"); see `bot.moderation.fuzzy.guard`.

Where the lists came from: written for this bot from its categories; entries for sexual anatomy, acts and slurs
were checked against and partly taken from the "List of Dirty, Naughty, Obscene, and Otherwise Bad Words"
(LDNOOBW, https://github.com/LDNOOBW, npm package `naughty-words` 1.2.0, CC BY 4.0), selected (only entries
within this bot's categories; plain swearing is no category here) and normalised. See `bot/moderation/data/NOTICE`.
Russian entries are also added transliterated to Latin ("голая" -> "golaya"), as Russians often type them; CJK
entries of the blocking kinds also censored, as their writers censor them ("ま○こ", Korean "보ㅈ").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
LANGUAGES = ("en", "es", "pt", "fr", "de", "it", "ru", "pl", "tr", "ja", "zh", "ko")
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "ru": "Russian",
    "pl": "Polish",
    "tr": "Turkish",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
}
KINDS = frozenset(
    "csam sexual gore hate minor suggestive revealing person undress garment group vermin likeness beast "
    "extremist praise opposition symbol religious emoji allow benign disguised".split()
)
_HEADER = re.compile(r"^\[(\w+)\]$")
# Russian kinds also listed in Latin letters; short function words ("как") and context lists stay Cyrillic.
_TRANSLITERATED = frozenset(
    "csam sexual gore hate minor suggestive revealing person group vermin extremist praise".split()
)

_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh sch - y - e yu ya".split(),
        strict=True,
    )
)


_CENSORABLE = frozenset(("csam", "sexual", "gore", "hate", "disguised"))
_CENSOR_MARK = "○"  # what `bot.moderation.text` reads every censoring circle as
# Korean initial consonants (compatibility jamo), in the order of Hangul syllable composition.
_INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"


def censored_variants(term: str, lang: str) -> list[str]:
    """How CJK writers censor a term of three or more characters: an inner character behind a circle
    ("まんこ" -> "ま○こ"); in Korean also one syllable cut to its initial consonant ("보지" -> "보ㅈ")."""
    body = term.rstrip("*")
    if " " in body or not body or not all(_is_cjk_char(ch) for ch in body):
        return []
    out = []
    if len(body) >= 3:
        out += [body[:i] + _CENSOR_MARK + body[i + 1 :] for i in range(1, len(body) - 1)]
    if lang == "ko" and 2 <= len(body) <= 4:
        for i, ch in enumerate(body):
            if "\uac00" <= ch <= "\ud7a3":
                out.append(body[:i] + _INITIALS[(ord(ch) - 0xAC00) // 588] + body[i + 1 :])
    return out


def _is_cjk_char(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7a3"


def transliterate(term: str) -> str:
    """Russian in Latin letters as commonly typed ("голая" -> "golaya"); other characters are kept."""
    return "".join(_TRANSLIT.get(ch, ch) for ch in term.lower()).replace("-", "")


def parse(text: str, where: str = "") -> Iterator[tuple[str, str]]:
    """(kind, entry) pairs; an entry may wrap onto the next line (entries end at commas, not at line ends)."""
    kind = ""
    body: list[str] = []
    for number, raw in enumerate([*text.splitlines(), "[end]"], start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header:
            for entry in " ".join(body).split(","):
                entry = " ".join(entry.split())
                if entry:
                    yield kind, entry
            kind, body = header.group(1), []
            if kind not in KINDS and kind != "end":
                raise ValueError(f"{where}:{number}: unknown kind [{kind}]")
            continue
        if not kind:
            raise ValueError(f"{where}:{number}: entries before the first [kind]")
        body.append(line)


@cache
def entries() -> tuple[tuple[str, str, str], ...]:
    """(kind, term, language) for every language's list, Russian also transliterated."""
    out: list[tuple[str, str, str]] = []
    for lang in LANGUAGES:
        path = DATA / f"{lang}.txt"
        for kind, term in parse(path.read_text(encoding="utf-8"), str(path)):
            out.append((kind, term, lang))
            if lang in ("ja", "zh", "ko") and kind in _CENSORABLE:
                out.extend((kind, variant, lang) for variant in censored_variants(term, lang))
            if lang == "ru" and kind in _TRANSLITERATED:
                latin = transliterate(term)
                # Short transliterations read as other languages' words ("gol" is a goal): long ones only.
                if latin != term and len(latin.rstrip("*").replace(" ", "")) >= 5:
                    out.append((kind, latin, lang))
    return tuple(out)
