"""The censored-word matcher: same answers as the backtracking regex it replaced, at a cost linear in the text
whatever a server lists (issue 12: a hostile server term froze the event loop for seconds)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.moderation import Policy, evaluate
from bot.moderation.censored import MAX_KEY, MAX_RUN, MAX_RUNS, CensoredMatcher, parse

# Big-integer operations per character of the prompt the matcher may spend: each letter touches at most
# 1 + MAX_RUNS * (MAX_RUN - 1) live positions, each star run as many times its width. `bench/moderation.py`
# prints the time of one operation (well under a microsecond), so 4,000 characters stay far below 50 ms.
STEPS_PER_CHAR = 16
PROMPT_LIMIT = 4000  # the highest PROMPT_MAX_CHARS allows


def _reference(keys: list[str], word: str) -> set[str]:
    """The old meaning, by backtracking regex (fine on tiny inputs)."""
    if parse(word) is None:
        return set()
    parts = re.split(r"(\*+)", word)
    pattern = re.compile("".join(f".{{1,{max(2, len(p))}}}" if p.startswith("*") else re.escape(p) for p in parts))
    return {k for k in keys if 3 <= len(k) <= MAX_KEY and pattern.fullmatch(k)}


@given(
    st.lists(st.text("abc", min_size=1, max_size=9), max_size=12),
    st.text("abc*", min_size=1, max_size=12),
)
@settings(max_examples=400)
def test_reads_censored_words_like_the_regex_it_replaced(keys, word):
    matcher = CensoredMatcher((k, k) for k in keys)
    assert set(matcher.find(word)) == _reference(keys, word)


def test_common_censored_spellings_are_read():
    matcher = CensoredMatcher((k, k) for k in ("porn", "nude", "fucking", "masturbating", "torture"))
    assert matcher.find("p*rn") == ["porn"]
    assert matcher.find("f*cking") == ["fucking"]
    assert matcher.find("mast*rbating") == ["masturbating"]
    assert matcher.find("t*rt*re") == ["torture"]
    assert matcher.find("p*rno") == []  # one star hides at most two letters: "po?rno" is no listed key
    assert matcher.find("*orn") == [] and matcher.find("porn") == []  # no leading stars; no stars at all


def test_too_many_star_runs_or_stars_are_not_read():
    matcher = CensoredMatcher([("abababababab", 1)])
    assert parse("a" + "*b" * MAX_RUNS) is not None
    assert parse("a" + "*b" * (MAX_RUNS + 1)) is None
    assert parse("a" + "*" * (MAX_RUN + 1) + "b") is None
    assert matcher.find("a*a*a*a*a*b") == []
    assert matcher.steps == 0


def test_the_reported_hostile_term_and_prompt_cost_nothing():
    # Issue 12: a term of 99 "a" and a "b", and "a***a***…***b", took 2.5 s at 73 characters.
    policy = Policy(blocked_terms=("a" * 99 + "b",))
    prompt = "a" + "***a" * 30 + "***b"
    assert evaluate(prompt, policy).allowed
    assert policy.custom is not None and policy.custom.censored.steps == 0


def test_server_terms_are_still_read_through_stars():
    policy = Policy(blocked_terms=("forbidden", "secret project"))
    assert evaluate("draw the f*rb*dd*n thing", policy).category == "custom"
    assert evaluate("the s*cr*tproj*ct logo", policy).category == "custom"


@st.composite
def hostile_prompt(draw: st.DrawFn) -> str:
    words = []
    size = 0
    alphabet = draw(st.sampled_from(["ab", "a", "abc"]))
    target = draw(st.integers(200, PROMPT_LIMIT))
    while size < target:
        word = draw(st.text(alphabet, min_size=1, max_size=3))
        for _ in range(draw(st.integers(1, MAX_RUNS))):
            word += "*" * draw(st.integers(1, MAX_RUN)) + draw(st.text(alphabet, min_size=1, max_size=3))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:PROMPT_LIMIT]


@given(
    st.lists(st.text("ab", min_size=3, max_size=100), min_size=1, max_size=60),
    hostile_prompt(),
)
@settings(max_examples=40, deadline=None)
def test_hostile_server_terms_cost_steps_linear_in_the_prompt(terms, prompt):
    # Many near-identical terms over a two-letter alphabet keep every key alive as long as possible.
    terms = tuple(dict.fromkeys(terms + ["a" * 31 + "b", "a" * 99 + "b"]))
    policy = Policy(blocked_terms=terms)
    evaluate(prompt, policy)
    assert policy.custom is not None
    assert policy.custom.censored.steps <= STEPS_PER_CHAR * len(prompt)
