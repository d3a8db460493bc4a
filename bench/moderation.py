"""Moderation filter: speed on realistic prompts, worst case on hostile 6,000-character inputs, and quality on the
labelled corpus, beside two naive filters (substring and word-boundary regex per term on lower-cased text).

Run from the repository root: `python bench/moderation.py`. Targets: >= 5,000 prompts/s, no input above 50 ms.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.moderation.filter import evaluate  # noqa: E402
from bot.moderation.terms import TERMS  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "moderation_corpus.jsonl"
TARGET_PER_SECOND = 5_000
TARGET_WORST_MS = 50.0

SUBJECTS = [
    "a red fox",
    "an old lighthouse keeper",
    "a cyberpunk street vendor",
    "a child flying a kite",
    "two cats",
    "a teen wizard",
    "a knight in silver armour",
    "a bowl of ramen",
    "Taylor Swift on stage",
    "a dragon",
    "a vintage 1960s car",
    "an astronaut",
    "a bakery window",
    "a samurai",
    "a family picnic",
    "a robot barista",
    "a mountain village",
    "a koi pond",
    "the Eiffel Tower",
    "a jazz trio",
    "a tiny house",
    "a polar bear",
]
ACTIONS = [
    "standing in the rain",
    "at golden hour",
    "reading a book",
    "surrounded by fireflies",
    "in a snowstorm",
    "on a busy market street",
    "under neon lights",
    "in a misty forest",
    "on the beach at sunset",
    "in space",
    "drinking coffee",
    "playing chess",
    "in a field of sunflowers",
    "on a rooftop",
    "in a 1920s speakeasy",
]
STYLES = [
    "oil painting",
    "watercolor",
    "photorealistic, 4k",
    "studio ghibli style",
    "pixel art",
    "cinematic lighting",
    "isometric 3d render",
    "charcoal sketch",
    "vaporwave",
    "low poly",
    "ukiyo-e woodblock print",
    "35mm film photo",
    "highly detailed, 8k",
    "children's book illustration",
    "art nouveau poster",
]
BAD = [
    "nude woman",
    "n.u.d.e model",
    "p0rn scene",
    "gory decapitated body",
    "sexy t33n",
    "taylor swift naked",
    "swastika flag",
    "h e n t a i",
    "nаked (cyrillic) girl",
    "sexxxy loli",
]


def realistic_prompts(n: int, seed: int = 7) -> list[str]:
    """Prompts shaped like real ones: subject, action, style words, sometimes a bad phrase (about 8 %)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        parts = [rng.choice(SUBJECTS), rng.choice(ACTIONS)] + rng.sample(STYLES, rng.randint(1, 4))
        if rng.random() < 0.08:
            parts.insert(rng.randint(0, len(parts)), rng.choice(BAD))
        prompts.append(", ".join(parts))
    return prompts


def hostile_inputs(size: int = 6000) -> dict[str, str]:
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    inputs = {
        "letters spaced apart": " ".join(rng.choice(letters) for _ in range(size)),
        "letters dotted apart": ".".join(rng.choice(letters) for _ in range(size)),
        "'n u d e' repeated": " ".join("nude" * size),
        "all homoglyphs": "".join(rng.choice("аеорсхуіѕԁηνμαοꓠꓴ🅽ɴᴜ ") for _ in range(size)),
        "all zero-width": "\u200b" * size,
        "zero-width between letters": "n\u200b" * size,
        "one long run 'aaaa…'": "a" * size,
        "stretched words": " ".join(["nuuuuuuude"] * size),
        "minor/sexual pairs": " ".join(["kid sexy"] * size),
        "censored words 'p*rn'": " ".join(["p*rn"] * size),
        "random censored 'x*y'": " ".join(f"{rng.choice(letters)}*{rng.choice(letters)}" for _ in range(size)),
        "minor words only": " ".join(["teen"] * size),
        "phrase beginnings": " ".join(["little"] * size),
        "ages '12 year old'": " ".join(["12 year old"] * size),
        "allow phrases": " ".join(["naked eye"] * size),
        "undressing pairs": " ".join(["remove bikini"] * size),
        "glued 'ab-ab-ab'": "-".join(["ab"] * size),
        "distinct CJK": "".join(chr(0x4E00 + i) for i in range(size)),
        "distinct rare planes": "".join(chr(0x10000 + 7 * i) for i in range(size)),
        "combining marks": "n\u0336u\u0336d\u0336e\u0336 " * size,
    }
    return {name: text[:size] for name, text in inputs.items()}


def naive_terms() -> list[str]:
    return sorted({term.rstrip("*") for terms in TERMS.values() for term in terms})


def substring_filter() -> Callable[[str], bool]:
    terms = naive_terms()
    return lambda text: any(term in text.lower() for term in terms)


def regex_filter() -> Callable[[str], bool]:
    patterns = [re.compile(rf"\b{re.escape(term)}") for term in naive_terms()]
    return lambda text: any(p.search(text.lower()) for p in patterns)


def ours() -> Callable[[str], bool]:
    return lambda text: evaluate(text).blocked


def throughput(blocks: Callable[[str], bool], prompts: list[str], rounds: int = 5) -> tuple[float, float, float]:
    """Prompts per second (best round), and p50/p99 microseconds per prompt."""
    per_prompt = []
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for prompt in prompts:
            t = time.perf_counter()
            blocks(prompt)
            per_prompt.append(time.perf_counter() - t)
        best = max(best, len(prompts) / (time.perf_counter() - start))
    per_prompt.sort()
    return best, per_prompt[len(per_prompt) // 2] * 1e6, per_prompt[int(len(per_prompt) * 0.99)] * 1e6


def worst_case(blocks: Callable[[str], bool], text: str, repeats: int = 5) -> tuple[float, float]:
    """Median and maximum milliseconds over `repeats` runs (the machine is shared, so both are shown)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        blocks(text)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def corpus_quality(blocks: Callable[[str], bool]) -> tuple[float, float]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [r["text"] for r in rows if r["label"] == "disallowed"]
    good = [r["text"] for r in rows if r["label"] == "benign"]
    return sum(map(blocks, bad)) / len(bad), sum(map(blocks, good)) / len(good)


def main() -> None:
    filters = {"ours": ours(), "naive substring": substring_filter(), "naive word regex": regex_filter()}
    prompts = realistic_prompts(1000)
    evaluate(prompts[0])  # warm the normalisation memo and compiled tables

    print(f"1,000 realistic prompts ({sum(evaluate(p).blocked for p in prompts)} blocked by ours)")
    print(f"{'filter':18} {'prompts/s':>10} {'p50 µs':>8} {'p99 µs':>8}   corpus recall   corpus FP")
    for name, blocks in filters.items():
        rate, p50, p99 = throughput(blocks, prompts)
        recall, fp = corpus_quality(blocks)
        print(f"{name:18} {rate:10,.0f} {p50:8.1f} {p99:8.1f}   {recall:13.3f}   {fp:9.1%}")

    print(f"\nhostile 6,000-character inputs, ms (median / max of 5); target < {TARGET_WORST_MS:.0f} ms")
    print(f"{'input':28} {'ours':>15} {'naive substring':>17} {'naive word regex':>17}")
    worst = 0.0
    for name, text in hostile_inputs().items():
        cells = []
        for label, blocks in filters.items():
            median, slowest = worst_case(blocks, text)
            if label == "ours":
                worst = max(worst, median)
            cells.append(f"{median:6.1f} / {slowest:6.1f}")
        print(f"{name:28} {cells[0]:>15} {cells[1]:>17} {cells[2]:>17}")

    rate = throughput(filters["ours"], prompts)[0]
    verdict = "met" if rate >= TARGET_PER_SECOND and worst <= TARGET_WORST_MS else "MISSED"
    print(f"\ntargets {verdict}: {rate:,.0f} prompts/s (>= {TARGET_PER_SECOND:,}), worst median {worst:.1f} ms")


if __name__ == "__main__":
    main()
