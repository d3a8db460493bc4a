"""Causes of misses found on a blind set, each fixed as a rule rather than a listed prompt: everyday words that
are sexual slang only when disguised, word starts read through stars, CJK censoring marks and Korean initials,
emoji as vermin and as doubled sexual stand-ins, emoji inside CJK words, and Turkish postpositions."""

from __future__ import annotations

import pytest

from bot.moderation import evaluate
from bot.moderation.censored import CensoredMatcher
from bot.moderation.langs import censored_variants


@pytest.mark.parametrize(
    "text",
    [
        "gros plan sur une ch@tte épilée",  # leet
        "foto de p a u duro em cima da mesa",  # spaced, after an ordinary short word
        "s c h w a n z in Nahaufnahme",
        "D1CK pic in the shower",
        "ScHwAnZ in Großaufnahme",  # capitals in mid-word
        "une grosse b*te",  # stars
        "сhatte en gros plan",  # a Cyrillic letter among Latin ones
    ],
)
def test_ambiguous_slang_blocks_when_disguised(text):
    assert evaluate(text).category == "sexual", text


@pytest.mark.parametrize(
    "text",
    [
        "un chat et une chatte qui dorment",
        "Schwanz eines Fuchses im Schnee",
        "café latte art in a ceramic cup",
        "P A U L spelled in big wooden letters",  # the letters go on past the word
        "polla de agua nadando en un estanque",
        "c\u200boncha de mar sobre la arena",  # invisible characters alone never make a word sexual
        "Naga serpent guardian statue at Angkor",
    ],
)
def test_ambiguous_words_written_plainly_stay_allowed(text):
    assert evaluate(text).allowed, text


def test_spaced_letters_must_spell_the_whole_word():
    # "göt" is inside "f a g g o t"; the slur is what blocks, as hate.
    assert evaluate("f a g g o t written on a wall").category == "hate"


def test_word_starts_are_read_through_stars():
    assert evaluate("крупный план п*зды").category == "sexual"
    matcher = CensoredMatcher([("porn", "porn*")])
    matcher.add("pizd", "pizd*", prefix=True)
    assert matcher.find("p*zdy") == ["pizd*"]
    assert matcher.find("por*a") == []  # the word start's last letter hidden: not read
    assert matcher.find("p*rnography") == []  # a whole-word key is not a word start


def test_cjk_censoring_marks_and_korean_initials():
    assert "ま○こ" in censored_variants("まんこ", "ja")
    assert "보ㅈ" in censored_variants("보지", "ko")
    for text in ("ま○こ くぱぁ 接写", "ま●こ 接写", "보ㅈ 클로즈업"):
        assert evaluate(text).category == "sexual", text
    for text in ("'보지 마세요'라고 적힌 표지판", "한 번도 보지 못한 풍경"):
        assert evaluate(text).allowed, text


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("mexicanos = 🐀🐀 cruzando la frontera", "hate"),
        ("Ukraińcy jako 🪳🪳 na granicy", "hate"),
        ("peitão de fora na piscina 🍈🍈", "sexual"),
        ("🍑 without her bikini", "sexual"),
        ("做❤爱的情侣", "sexual"),  # an emoji inside a CJK word does not split it
        ("Kürtleri kafesteki maymunlar gibi çiz", "hate"),  # likeness after the animal, Turkish word order
    ],
)
def test_emoji_and_word_order(text, category):
    assert evaluate(text).category == category, text


@pytest.mark.parametrize(
    "text",
    [
        "a fruit bowl with peaches 🍑 and melons 🍈",
        "🐀 cute pet rat in a teacup",
        "maymunlar ağaçta, doğa belgeseli",
        "black families at the zoo, monkeys as the main attraction",  # English puts the likeness word first
    ],
)
def test_emoji_and_word_order_near_misses(text):
    assert evaluate(text).allowed, text
