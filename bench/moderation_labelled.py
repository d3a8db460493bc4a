"""Quality of the moderation filter on a labelled JSON-lines file: recall and false positives, overall and per
language, per category and per trick. Rows need `text` and `label` ("disallowed", or "benign"/"allowed"); `lang`,
`category` and `trick` (or `obfuscation`) are used when present.

Run from the repository root: `python bench/moderation_labelled.py FILE [--misses]`. `--misses` also prints every
missed or wrongly blocked text: use it on a tuning set, never on a sealed one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.moderation import evaluate  # noqa: E402


def load(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def figures(rows: list[dict[str, str]]) -> str:
    bad = [r for r in rows if r["label"] == "disallowed"]
    good = [r for r in rows if r["label"] != "disallowed"]
    recall = sum(r["blocked"] for r in bad) / len(bad) if bad else float("nan")
    fp = sum(r["blocked"] for r in good) / len(good) if good else float("nan")
    return f"recall {recall:5.3f} ({len(bad):3} disallowed)   FP {fp:6.1%} ({len(good):3} benign)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--misses", action="store_true", help="print misses and false positives")
    args = parser.parse_args()
    rows = load(args.file)
    for r in rows:
        r["blocked"] = evaluate(r["text"]).blocked  # type: ignore[assignment]
    print(f"{args.file.name}: {len(rows)} rows\n{'overall':24} {figures(rows)}")
    for field in ("lang", "category", "trick", "obfuscation"):
        groups: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in rows:
            if field in r:
                groups[r[field]].append(r)
        if groups:
            print(f"\nby {field}")
            for name, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
                print(f"  {name:22} {figures(members)}")
    if args.misses:
        print("\nmisses and false positives")
        for r in rows:
            if r["blocked"] != (r["label"] == "disallowed"):
                what = "MISS" if r["label"] == "disallowed" else "FP"
                tags = "/".join(r.get(k, "") for k in ("lang", "category", "trick"))
                print(f"  {what:4} [{tags}] {r['text']}")


if __name__ == "__main__":
    main()
