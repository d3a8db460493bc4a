"""The moderation filter's properties, checked with hypothesis on text in all the bot's languages."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.moderation import evaluate, explain
from bot.moderation.text import fold, normalise

CORPUS = Path(__file__).resolve().parent.parent / "data" / "moderation_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
# Rows written natively in each language (the English ones are covered by tests/test_moderation_properties.py).
FOREIGN = [r for r in ROWS if r.get("lang", "en") != "en"]
ALLOWED = [r["text"] for r in FOREIGN if r["label"] == "benign" and evaluate(r["text"]).allowed]
BLOCKED = [r["text"] for r in FOREIGN if r["label"] == "disallowed" and evaluate(r["text"]).blocked]
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\U000e0041"
LETTERS = (
    "ñáéíóúüçãõâêôàèìòùäößøåłąęśźżćńğışİ"  # Latin with accents: es pt fr de it pl tr
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГЕЁ"  # Cyrillic
    "裸体做爱性感少女纳粹英雄老鼠卍卐"  # Chinese
    "ぁあアァヌードセックスガパｾｯｸｽﾞﾟ"  # Japanese, half-width forms and voiced marks included
    "누드섹스ㅅㅎ가힣각"  # Korean syllables and jamo
    "🍑🍆💦👅🔞🏻"  # emoji, a skin tone
)
multilingual = st.text(
    st.one_of(st.sampled_from(LETTERS + " .,-*'0134" + INVISIBLE), st.characters(exclude_categories=())),
    max_size=200,
)


@given(multilingual)
def test_normalise_is_idempotent_in_every_script(text):
    once = normalise(text)
    assert normalise(once) == once
    assert fold(fold(text)) == fold(text)


@given(multilingual)
@settings(max_examples=300)
def test_filter_never_crashes_and_explains_what_it_decides(text):
    verdict = evaluate(text)
    assert verdict.allowed or verdict.category
    assert explain(text).verdict == verdict


def _sprinkle(draw: st.DrawFn, text: str) -> str:
    positions = draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=12))
    chars = list(text)
    for position in sorted(positions, reverse=True):
        chars.insert(position, draw(st.sampled_from(INVISIBLE)))
    return "".join(chars)


@st.composite
def with_invisible(draw: st.DrawFn, texts: list[str]) -> tuple[str, str]:
    text = draw(st.sampled_from(texts))
    return text, _sprinkle(draw, text)


@given(with_invisible(ALLOWED))
def test_allowed_prompt_in_any_language_stays_allowed_with_zero_width_characters(pair):
    _, sprinkled = pair
    assert evaluate(sprinkled).allowed


@given(with_invisible(BLOCKED))
def test_blocked_prompt_in_any_language_stays_blocked_with_zero_width_characters(pair):
    text, sprinkled = pair
    assert evaluate(sprinkled).category == evaluate(text).category


def test_the_samples_cover_every_language():
    assert {r["lang"] for r in FOREIGN} >= {"es", "pt", "fr", "de", "it", "ru", "pl", "tr", "ja", "zh", "ko"}
    assert len(ALLOWED) >= 200 and len(BLOCKED) >= 200
