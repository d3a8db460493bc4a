"""The local tier across the bot's languages: pair rules, misspellings, emoji, censored letters, context
exceptions, CJK runs, and `/moderation test` naming the tier, rule and language that decided."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from bot.moderation import Policy, evaluate, explain
from bot.moderation.langs import LANGUAGES, entries

CORPUS = Path(__file__).resolve().parent.parent / "data" / "moderation_corpus.jsonl"


def _rows() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_every_language_has_lists_for_every_category():
    kinds = defaultdict(set)
    for kind, _, lang in entries():
        kinds[lang].add(kind)
    for lang in LANGUAGES:
        assert {"sexual", "gore", "hate", "minor", "suggestive", "group", "vermin", "extremist", "praise"} <= kinds[
            lang
        ]


def test_corpus_in_every_language_meets_the_targets():
    by_lang: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in _rows():
        by_lang[row.get("lang", "en")].append(row)
    assert set(LANGUAGES) <= set(by_lang)
    bad = [r for r in _rows() if r["label"] == "disallowed"]
    good = [r for r in _rows() if r["label"] == "benign"]
    recall = sum(evaluate(r["text"]).blocked for r in bad) / len(bad)
    false_positives = sum(evaluate(r["text"]).blocked for r in good) / len(good)
    assert recall >= 0.98 and false_positives <= 0.01, (recall, false_positives)
    for lang, rows in by_lang.items():
        blocked = [evaluate(r["text"]).blocked == (r["label"] == "disallowed") for r in rows]
        assert sum(blocked) / len(blocked) >= 0.95, lang


@pytest.mark.parametrize(
    ("text", "category", "rule"),
    [
        # a minor, or an age under 18, with sexualised clothing, poses or adjectives
        ("schoolgirl, only 15 but dressed skimpy, sultry pose", "csam", "minor word near a sexual word"),
        ("16 y/o girl in lingerie", "csam", "minor word near a sexual word"),
        ("chica de 15 años en lencería", "csam", "minor word near a sexual word"),
        ("14歳の女の子、下着姿", "csam", "minor word near a sexual word"),
        # a group of people as vermin, or drawn as animals
        ("jews depicted as rats", "hate", "group near vermin"),
        ("Juden als Ratten, Plakat", "hate", "group near vermin"),
        ("black people drawn as monkeys", "hate", "group drawn as animals"),
        ("흑인을 원숭이로 그린 만화", "hate", "group drawn as animals"),
        # an extremist figure with praise
        ("heroic Hitler, saviour of Europe", "hate", "extremist near praise"),
        ("英勇光荣的纳粹党卫军", "hate", "extremist near praise"),
        # two sexual emoji together
        ("girl 🍑🍆💦", "sexual", "sexual emoji together"),
    ],
)
def test_pair_rules(text, category, rule):
    verdict = evaluate(text)
    assert (verdict.category, verdict.rule) == (category, rule)


@pytest.mark.parametrize(
    "text",
    [
        "a 15 year old playing football in the park",  # an age alone
        "pest control ad with cartoon rats fleeing a kitchen",  # vermin alone
        "african monkeys in the jungle",  # no likeness word between
        "heroic resistance fighters against the Nazis",  # opposition word
        "Auschwitz memorial with flowers",  # no praise
        "a single 🍑 on a plate",  # one emoji
        "Hindu home decorated for Diwali with a swastika rangoli",  # religious context
        "Jain temple with a swastika carved in marble",
        "a knight with a chink in the armor",
        "sex education poster about consent",
        "horror movie poster, haunted house, no gore",
        "piękne góry Tatry o świcie",  # Polish mountains are not "gory"
        "시발역에서 출발하는 기차",  # a station name is not a swear word
        "ベトナムの市場",  # Vietnam, with its voiced marks dropped, is no listed word
    ],
)
def test_near_misses_stay_allowed(text):
    assert evaluate(text).allowed, explain(text).lines()


def test_religious_swastika_with_nazi_words_still_blocks():
    assert evaluate("nazi swastika flag at a temple").category == "hate"


@pytest.mark.parametrize(
    ("text", "reads"),
    [("busty redhead getting naeked", "naked"), ("hentia art", "hentai"), ("t0rtured prisonr, gourey", "tortured")],
)
def test_misspellings_of_longer_words(text, reads):
    verdict = evaluate(text)
    assert verdict.blocked and reads in (verdict.term or "") + verdict.rule


def test_misspellings_skip_everyday_words_of_any_language():
    for text in ("the Las Vegas strip", "baby chicks in a barn", "nuez moscada", "un folio en blanco", "bitte sehr"):
        assert evaluate(text).allowed, text


@pytest.mark.parametrize(
    "text", ["couple f*cking in a hotel", "woman MaSt*rBaTiNg on a sofa", "t*rtura de prisioneiro", "s*kişen çift"]
)
def test_letters_censored_inside_words(text):
    verdict = evaluate(text)
    assert verdict.blocked and verdict.rule == "censored letters"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("mujer desnuda en la playa", "es"),
        ("голая женщина на пляже", "ru"),
        ("golaya devushka", "ru"),  # Russian typed in Latin letters
        ("г о л а я девушка", "ru"),
        ("全裸の女性", "ja"),
        ("做 爱 的 情 侣", "zh"),  # spaces between CJK characters change nothing
        ("섹스하는 커플", "ko"),
        ("ç ı p l a k kız", "tr"),
    ],
)
def test_languages_are_named_in_the_verdict(text, lang):
    verdict = evaluate(text)
    assert verdict.blocked and lang in verdict.lang.split("/")


def test_explanation_names_tier_rule_and_language():
    lines = explain("hombre empalado en una estaca").lines()
    assert "decided by: local word lists and rules · rule: words · language: Spanish" in lines
    assert any(line.endswith("[words] (BLOCKS) · Spanish") for line in lines)


def test_server_allowed_terms_never_soften_csam_in_any_language():
    policy = Policy(allowed_terms=("lencería", "15 años"))
    assert evaluate("chica de 15 años en lencería", policy).category == "csam"
