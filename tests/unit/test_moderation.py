"""The pure moderation filter: normalisation, policy rules, explanations, and the labelled corpus."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bot.moderation.filter import OPTIONAL_CATEGORIES, Policy, evaluate, evaluate_conversation, explain
from bot.moderation.text import normalise

CORPUS = Path(__file__).parents[1] / "data" / "moderation_corpus.jsonl"


def load_corpus() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- normalisation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ("ＮＵＤＥ", "nude"),  # full-width
        ("𝐧𝐮𝐝𝐞 𝓷𝓾𝓭𝓮 ⓝⓤⓓⓔ", "nude nude nude"),  # mathematical and circled letters
        ("🅽🆄🅳🅴 🅝🅤🅓🅔", "nude nude"),  # enclosed letters without a compatibility mapping
        ("n\u200bu\u200cd\u200de\u2060\ufeff\u00ad", "nude"),  # zero-width, word joiner, BOM, soft hyphen
        ("ńúdé n\u0336u\u0336d\u0336e\u0336", "nude nude"),  # accents and strike-through marks
        ("рorn", "porn"),  # Cyrillic er looks like p (transliteration would say r)
        ("ΗΝΜ ηνμ", "hnm nvu"),  # Greek capitals read by their look, not by their lower case
        ("ɴᴜᴅᴇ", "nude"),  # small capitals
        ("ꓠꓴꓓꓰ", "nude"),  # Lisu
        ("4k 1920s, 3 cats!", "4k 1920s, 3 cats!"),  # digits and punctuation are kept: leet is a view
        ("a\t\n  b\u3000c", "a b c"),  # every kind of space collapses
        ("\x00\x07bell", "bell"),
    ],
)
def test_normalise_reads_through_disguises(text, reads):
    assert normalise(text) == reads


def test_every_term_is_matched_on_word_boundaries():
    assert evaluate("sex scene").category == "sexual"
    for text in ("Essex", "Middlesex county", "a sextant", "Scunthorpe", "cocktail", "analysis", "a grape"):
        assert evaluate(text).allowed, text


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("n.u.d.e woman", "n.u.d.e"),
        ("a nu\u200bde woman", "nu\u200bde"),
        ("p0rn", "p0rn"),
        ("nuuuude", "nuuuude"),
        ("po-rn video", "po-rn"),
        ("p*rn video", "p*rn"),
        ("nаked (Cyrillic a)", "nаked"),
    ],
)
def test_block_names_the_term_as_the_user_wrote_it(text, written):
    verdict = evaluate(text)
    assert verdict.category == "sexual"
    assert verdict.written == written
    assert verdict.term in ("nude", "porn*", "naked")


def test_digits_in_ordinary_prompts_stay_benign():
    for text in ("4k wallpaper", "a 1920s party", "3 cats", "R2-D2", "a 5-star hotel", "the year 1999"):
        assert evaluate(text).allowed, text


def test_allow_phrase_cancels_only_the_words_inside_it():
    assert evaluate("a comet visible to the naked eye").allowed
    verdict = evaluate("a comet visible to the naked eye and a naked woman")
    assert verdict.category == "sexual"


# --- pairs of words --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["sexy teen", "a 12 year old girl, nude", "13yo in lingerie", "the girl is twelve, nude", "15yo in underwear"],
)
def test_a_minor_near_a_sexual_word_is_csam_without_a_hint(text):
    verdict = evaluate(text)
    assert verdict.category == "csam"
    assert verdict.written is None  # never coach a rephrase


def test_minor_words_alone_and_revealing_clothes_without_an_age_are_fine():
    for text in ("a teen wizard at school", "kids in swimsuits at the beach", "a 10 year old playing chess"):
        assert evaluate(text).allowed, text


def test_words_far_apart_do_not_pair():
    text = "a kid with a red kite on a windy hill near the old lighthouse by the sea, sexy sunset"
    assert evaluate(text).allowed


def test_real_person_near_a_sexual_word():
    assert evaluate("taylor swift in a bikini").category == "real_people_sexual"
    assert evaluate("taylor swift performing on stage").allowed
    assert evaluate("t4ylor sw1ft in a b i k i n i").category == "real_people_sexual"


def test_undressing_spelled_out_is_sexual():
    assert evaluate("remove her bikini").category == "sexual"
    assert evaluate("make her clothes disappear").category == "sexual"
    assert evaluate("remove the hat and add a scarf").allowed


# --- policies --------------------------------------------------------------------------------------------------


def test_csam_ignores_disabled_categories_and_server_allowed_terms():
    lax = Policy(disabled=frozenset(OPTIONAL_CATEGORIES), allowed_terms=("nude", "loli", "teen"))
    assert evaluate("nude woman", lax).allowed
    assert evaluate("nude teen", lax).category == "csam"
    assert evaluate("loli", lax).category == "csam"
    assert lax.enabled("csam")


def test_switched_off_category_lets_its_terms_through_but_not_others():
    policy = Policy(disabled=frozenset({"gore"}))
    assert evaluate("a gory scene", policy).allowed
    assert evaluate("a gory nude scene", policy).category == "sexual"
    assert evaluate("taylor swift nude", Policy(disabled=frozenset({"real_people_sexual"}))).category == "sexual"


def test_server_terms_block_in_disguise_and_server_allowed_terms_unblock():
    policy = Policy(blocked_terms=("banana",), allowed_terms=("nude beach",))
    verdict = evaluate("a b4n4n4 split", policy)
    assert (verdict.category, verdict.written) == ("custom", "b4n4n4")
    assert evaluate("a nude beach in France", policy).allowed
    assert evaluate("a nude woman", policy).category == "sexual"
    assert evaluate("banana", Policy()).allowed


def test_explain_shows_views_and_every_rule_that_fired():
    explanation = explain("a t33n in lingerie, n.u.d.e, naked eye")
    text = "\n".join(explanation.lines())
    assert "normalised: a t33n in lingerie, n.u.d.e, naked eye" in text
    assert "leet read as letters: a teen" in text
    assert "letters joined: nude" in text
    assert "allowed by “naked eye”" in text
    assert "“n.u.d.e” → nude" in text
    assert "BLOCKS" in text
    assert explanation.verdict.category == "csam"


def test_explain_of_a_benign_text_lists_unpaired_cues():
    explanation = explain("kids playing chess")
    assert explanation.verdict.allowed
    assert [(h.category, h.status) for h in explanation.hits] == [("minor", "cue")]


def test_conversation_is_checked_across_turns():
    index, verdict = evaluate_conversation(["a 12 year old at the park", "make it brighter"], Policy())
    assert (index, verdict.allowed) == (-1, True)
    index, verdict = evaluate_conversation(["a 12 year old at the park", "make her sexy"], Policy())
    assert (index, verdict.category) == (-1, "csam")
    index, verdict = evaluate_conversation(["a nude woman", "make it brighter"], Policy())
    assert (index, verdict.category) == (0, "sexual")
    index, verdict = evaluate_conversation(["a photo of emma watson", "now in lingerie"], Policy())
    assert (index, verdict.category) == (-1, "real_people_sexual")


# --- the labelled corpus ---------------------------------------------------------------------------------------


def test_corpus_covers_every_category_and_disguise():
    rows = load_corpus()
    assert len(rows) >= 300
    assert len({r["text"] for r in rows}) == len(rows)
    kinds = Counter((r["category"], r["obfuscation"]) for r in rows if r["label"] == "disallowed")
    for category in ("csam", "sexual", "gore", "hate", "real_people_sexual"):
        for disguise in ("plain", "homoglyph", "zero-width", "diacritics", "leet", "spacing", "stretching", "mixed"):
            assert kinds[(category, disguise)] >= 1, (category, disguise)
    assert sum(r["label"] == "benign" for r in rows) >= 150


def test_corpus_recall_and_false_positive_rate():
    rows = load_corpus()
    bad = [r for r in rows if r["label"] == "disallowed"]
    good = [r for r in rows if r["label"] == "benign"]
    misses = [r for r in bad if evaluate(r["text"]).allowed]
    false_positives = [(r, evaluate(r["text"])) for r in good if evaluate(r["text"]).blocked]
    recall = 1 - len(misses) / len(bad)
    fp_rate = len(false_positives) / len(good)
    print(f"\nmoderation corpus: recall {recall:.3f} on {len(bad)} disallowed, FP {fp_rate:.3%} on {len(good)} benign")
    for r in misses:
        print(f"  MISS [{r['category']}/{r['obfuscation']}] {r['text']!r}")
    for r, verdict in false_positives:
        print(f"  FALSE POSITIVE {r['text']!r}: {verdict.explanation}")
    assert recall >= 0.98  # the target on the corpus after tuning
    assert fp_rate <= 0.01


def test_corpus_blocks_land_in_the_labelled_category():
    # The category tells the user which rule to read; a block under the wrong one is a bug even if it blocks.
    wrong = []
    for r in load_corpus():
        verdict = evaluate(r["text"])
        # A public figure the name lists don't know is still refused, as sexual content: the member reads a
        # true reason, only a less specific one.
        unknown_person = (r["category"], verdict.category) == ("real_people_sexual", "sexual")
        if r["label"] == "disallowed" and verdict.blocked and verdict.category != r["category"] and not unknown_person:
            wrong.append((r["text"], r["category"], verdict.category))
    assert len(wrong) <= 3, wrong
