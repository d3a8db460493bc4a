"""Moderation filter: speed on realistic prompts (English, and mixed across the twelve languages), worst case on
hostile 6,000-character inputs, and quality on the labelled corpus, beside two naive filters (substring and
word-boundary regex per term on lower-cased text); the memory the loaded lists take; and the censored-word
matcher on hostile server terms (issue 12) beside the backtracking regular expression it replaced.

Run from the repository root: `python bench/moderation.py`. Targets: >= 5,000 prompts/s, no input above 50 ms.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.moderation import Policy, evaluate  # noqa: E402
from bot.moderation import censored as moderation_censored  # noqa: E402
from bot.moderation.censored import CensoredMatcher  # noqa: E402
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


# Prompts as members write them in the other languages (subject, setting, style), some with a bad phrase.
FOREIGN = {
    "es": ("un zorro rojo en el bosque", "al atardecer, pintura al óleo", "mujer desnuda en la playa"),
    "pt": ("um gato laranja dormindo", "na praia, aquarela", "casal transando no sofá"),
    "fr": ("un vieux phare breton", "sous la pluie, style ghibli", "femme nue allongée sur un lit"),
    "de": ("ein roter Fuchs im Schnee", "bei Sonnenuntergang, Ölgemälde", "nackte Frau am Strand"),
    "it": ("una gondola a Venezia", "al tramonto, acquerello", "donna nuda sul letto"),
    "ru": ("рыжая лиса в лесу", "на закате, масляная живопись", "голая девушка в душе"),
    "pl": ("stary zamek w górach", "o świcie, akwarela", "naga kobieta na plaży"),
    "tr": ("İstanbul'da bir kedi", "gün batımında, yağlı boya", "çıplak kadın sahilde"),
    "ja": ("桜の下の黒猫", "夕暮れ、水彩画風", "全裸の女性、ベッドの上"),
    "zh": ("雪山下的小木屋", "黄昏，水墨画风格", "一丝不挂的美女"),
    "ko": ("벚꽃 아래 고양이", "해질녘, 수채화", "알몸 여자 사진"),
}


def multilingual_prompts(n: int, seed: int = 5) -> list[str]:
    """Half English (as `realistic_prompts`), half the other eleven languages; about 8 % with a bad phrase."""
    rng = random.Random(seed)
    english = realistic_prompts(n // 2, seed)
    foreign = []
    for _ in range(n - len(english)):
        subject, setting, bad = FOREIGN[rng.choice(sorted(FOREIGN))]
        parts = [subject, setting] + ([bad] if rng.random() < 0.08 else [])
        foreign.append(", ".join(parts))
    return english + foreign


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
        "CJK terms repeated": "做爱裸体少女性感" * size,
        "Hangul syllables": "누드섹스 소녀 섹시 " * size,
        "kana with marks": "ヌードセックスガパ" * size,
        "Cyrillic words": "голая девочка сексуальная " * size,
        "emoji sequences": "🍑🍆💦 " * size,
        "group/vermin pairs": "jews as rats " * size,
        "extremist/praise": "heroic hitler glorious " * size,
        "misspelling candidates": " ".join(["naekedd", "hentia", "vergass", "chickes"] * size),
        "long censored 'a*b*c*d'": " ".join(["a******b******c******d******e"] * size),
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


def list_memory() -> tuple[float, int]:
    """MiB allocated by importing the filter and building its lists, measured in a fresh interpreter. What the
    moderation package imports besides the lists (aiohttp for the AI tier, the settings, the database) is
    imported before measuring: it is the bot's anyway."""
    code = (
        "import aiohttp, aiosqlite, pydantic_settings, bot.config, bot.models, bot.storage.db; "
        "import tracemalloc; tracemalloc.start(); import bot.moderation.scan as m; "
        "print(tracemalloc.get_traced_memory()[0], len(m.BUILTIN.censored) + len(m.FUZZY))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    size, keys = out.stdout.split()
    return int(size) / 2**20, int(keys)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def _regex_censored(keys: list[str], word: str) -> list[str]:
    """The matcher issue 12 replaced: one backtracking `.{1,k}` per star run, fullmatch per key."""
    parts = re.split(r"(\*+)", word)
    pattern = re.compile("".join(f".{{1,{max(2, len(p))}}}" if p.startswith("*") else re.escape(p) for p in parts))
    return [k for k in keys if k[0] == word[0] and k[-1] == word[-1] and pattern.fullmatch(k)]


def censored_matcher() -> None:
    """The reported case: a server term of 99 "a" and a "b", a prompt "a***a***...***b"."""
    key = "a" * 99 + "b"
    print("\ncensored-word matcher, server term of 99 'a' + 'b', word 'a' + '***a' * n + '***b' (median of 3 ms)")
    print(f"{'characters':>10} {'ours (with caps)':>17} {'ours, caps lifted':>18} {'backtracking regex':>19}")
    for n in (10, 12, 14, 15, 16):
        word = "a" + "***a" * n + "***b"
        capped, uncapped, regex = [], [], []
        for _ in range(3):
            capped.append(_timed(lambda w=word: CensoredMatcher([(key, key)]).find(w)))
            # Without the caps (a key of 100 letters, any number of star runs) the cost still grows linearly.
            lifted = (moderation_censored.MAX_RUNS, moderation_censored.MAX_KEY)
            moderation_censored.MAX_RUNS, moderation_censored.MAX_KEY = 1000, 1000
            try:
                uncapped.append(_timed(lambda w=word: CensoredMatcher([(key, key)]).find(w)))
            finally:
                moderation_censored.MAX_RUNS, moderation_censored.MAX_KEY = lifted
            regex.append(_timed(lambda w=word: _regex_censored([key], w)))
        cells = (statistics.median(capped), statistics.median(uncapped), statistics.median(regex))
        print(f"{len(word):>10} {cells[0]:>17.3f} {cells[1]:>18.3f} {cells[2]:>19.1f}")
    # Within the caps (4 runs of up to 6 stars) and with 500 hostile terms, one prompt at the highest prompt limit.
    rng = random.Random(3)
    terms = tuple("a" + "".join(rng.choice("ab") for _ in range(rng.randint(1, 30))) + "b" for _ in range(500))
    words = []
    while sum(map(len, words)) + len(words) < 4000:
        words.append("a" + "".join("*" * rng.randint(1, 6) + rng.choice("ab") * rng.randint(1, 3) for _ in range(4)))
    prompt = " ".join(w + "b" for w in words)[:4000]
    times, steps = [], 0
    for _ in range(5):
        policy = Policy(blocked_terms=terms)
        assert policy.custom is not None
        start = time.perf_counter()
        evaluate(prompt, policy)
        times.append((time.perf_counter() - start) * 1000)
        steps = policy.custom.censored.steps
    print(
        f"500 hostile server terms, 4,000 characters of censored words: median {statistics.median(times):.1f} ms"
        f" (max {max(times):.1f}), {steps:,} matcher steps ({steps / len(prompt):.1f} per character)"
    )


def main() -> None:
    filters = {"ours": ours(), "naive substring": substring_filter(), "naive word regex": regex_filter()}
    prompts = realistic_prompts(1000)
    evaluate(prompts[0])  # warm the normalisation memo and compiled tables
    memory, keys = list_memory()
    print(f"lists of 12 languages loaded: {memory:.1f} MiB allocated, {keys:,} single-word keys\n")

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

    mixed = multilingual_prompts(1000)
    mixed_rate, p50, p99 = throughput(filters["ours"], mixed)
    blocked = sum(evaluate(p).blocked for p in mixed)
    print(f"\n1,000 prompts, half in the other eleven languages ({blocked} blocked by ours)")
    print(f"{'ours':18} {mixed_rate:10,.0f} {p50:8.1f} {p99:8.1f}")

    censored_matcher()

    rate = min(throughput(filters["ours"], prompts)[0], mixed_rate)
    verdict = "met" if rate >= TARGET_PER_SECOND and worst <= TARGET_WORST_MS else "MISSED"
    print(f"\ntargets {verdict}: {rate:,.0f} prompts/s (>= {TARGET_PER_SECOND:,}), worst median {worst:.1f} ms")


if __name__ == "__main__":
    main()
