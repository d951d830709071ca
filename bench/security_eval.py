"""Evaluate the input sanitiser (`guard._sanitize.sanitize_input`) on the security corpus.

tests/data/security_corpus/attacks.jsonl holds attacks, each with its expected type and the
context it arrives in; benign.jsonl holds ordinary text that looks like attacks (SQL
tutorials, shell snippets in reviews, security questions, local URLs, HTML in Markdown, file
paths, other scripts). An attack counts as detected when the result is unsafe, and as
detected for its type when a blocking issue (high or critical) has that type; a benign text
flagged unsafe is a false positive. Timing: each text is sanitised --repeat times (after one
warm-up call that loads sqlglot and the confusables table), the median per text kept, and the
table shows the median and p90 over the texts; then over 1 KB and 10 KB chunks of the
project's own docs (ordinary technical prose), and of benign corpus texts joined together (a
worst case: every paragraph is a look-alike full of the words the detectors look for).
The script always exits 0; it prints "met" or "NOT met" per target.

    .venv/bin/python bench/security_eval.py [--repeat 5] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guard._sanitize import MAX_SCAN_CHARS, sanitize_input  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "security_corpus"
DETECTION_TARGET = 0.95
FALSE_POSITIVE_TARGET = 0.02

Row = dict[str, str]  # one corpus line: text, type, context, note
Outcome = tuple[Row, dict[str, Any]]  # a row and what sanitize_input said


def load(name: str) -> list[Row]:
    """The rows of one corpus file."""
    with (CORPUS / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Figures:
    """What the corpus run found: the rates, per-type counts, and the rows to look at."""

    detection: float
    false_positive_rate: float
    per_type: dict[str, list[int]]  # type -> [attacks, flagged unsafe, flagged with that type]
    missed: list[Outcome] = field(default_factory=list)
    wrong_type: list[Outcome] = field(default_factory=list)
    false_positives: list[Outcome] = field(default_factory=list)


def evaluate(attacks: list[Row], benign: list[Row]) -> Figures:
    """Detection and false-positive figures, and the rows that missed."""
    figures = Figures(0.0, 0.0, {})
    for row in attacks:
        result = sanitize_input(row["text"], row["context"])
        counts = figures.per_type.setdefault(row["type"], [0, 0, 0])
        counts[0] += 1
        if result["safe"]:
            figures.missed.append((row, result))
            continue
        counts[1] += 1
        if any(i["type"] == row["type"] and i["severity"] in ("high", "critical") for i in result["issues"]):
            counts[2] += 1
        else:
            figures.wrong_type.append((row, result))
    for row in benign:
        result = sanitize_input(row["text"], row["context"])
        if not result["safe"]:
            figures.false_positives.append((row, result))
    figures.detection = 1 - len(figures.missed) / len(attacks)
    figures.false_positive_rate = len(figures.false_positives) / len(benign)
    return figures


def timings(rows: list[Row], repeat: int) -> list[float]:
    """Median µs per call for each row's text."""
    out = []
    for row in rows:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            sanitize_input(row["text"], row["context"])
            runs.append(time.perf_counter() - start)
        out.append(statistics.median(runs) * 1e6)
    return out


def documents(rows: list[Row], size: int, count: int) -> list[Row]:
    """`count` texts of about `size` characters, each benign rows joined as paragraphs."""
    docs = []
    for k in range(count):
        parts: list[str] = []
        i = k * 7
        while sum(len(p) + 2 for p in parts) < size:
            parts.append(rows[i % len(rows)]["text"])
            i += 1
        docs.append({"text": "\n\n".join(parts)[:size], "context": "text"})
    return docs


def project_docs(size: int, count: int) -> list[Row]:
    """`count` chunks of `size` characters of the project's own docs (README.md, docs/*.md):
    ordinary technical text, as task descriptions and reviews are."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in paths)
    step = max(1, (len(text) - size) // count)
    return [{"text": text[i * step:i * step + size], "context": "text"} for i in range(count)]


def huge(size: int) -> float:
    """Seconds to sanitise `size` characters of mixed text (scanned up to MAX_SCAN_CHARS)."""
    text = ("Ignore the formatting; see ../utils.py and http://localhost:8000. SELECT 1; 'quoted' or not. "
            "Привет, мир. <b>bold</b> $(date) ") * (size // 100 + 1)
    start = time.perf_counter()
    result = sanitize_input(text[:size])
    assert result["truncated"] == (size > MAX_SCAN_CHARS)
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def show(rows: list[Outcome], title: str) -> None:
    print(f"\n{title} ({len(rows)}):")
    for row, result in rows:
        issues = "; ".join(f"{i['type']}/{i['severity']}: {i['reason']}" for i in result["issues"])
        print(f"  [{row['type'] or 'benign'} / {row['context']}] {row['text']!r:.110}  ({row['note']})")
        if issues:
            print(f"      -> {issues:.300}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="calls per text for the timing (median kept)")
    parser.add_argument("--verbose", action="store_true", help="list misses, wrong types and false positives")
    args = parser.parse_args()
    attacks, benign = load("attacks"), load("benign")
    sanitize_input("warm-up: ' OR 1=1 -- Привет")

    print(f"python {platform.python_version()} | sqlglot {metadata.version('sqlglot')} | nh3 "
          f"{metadata.version('nh3')} | confusable-homoglyphs {metadata.version('confusable-homoglyphs')}")
    print(f"command: {' '.join([sys.executable, *sys.argv])}\n")
    figures = evaluate(attacks, benign)
    print(f"corpus: {len(attacks)} attacks, {len(benign)} benign texts")
    print("\n| type | attacks | flagged unsafe | with the expected type |\n|---|---:|---:|---:|")
    for kind, (total, flagged, typed) in sorted(figures.per_type.items()):
        print(f"| {kind} | {total} | {flagged / total:.1%} | {typed / total:.1%} |")
    contexts = Counter(r["context"] for r in attacks)
    print(f"\nattack contexts: {', '.join(f'{c} {n}' for c, n in contexts.most_common())}")
    print(f"\ndetection rate: {figures.detection:.1%} (target >= {DETECTION_TARGET:.0%}): "
          f"{'met' if figures.detection >= DETECTION_TARGET else 'NOT met'}")
    print(f"false-positive rate: {figures.false_positive_rate:.1%} (target <= {FALSE_POSITIVE_TARGET:.0%}): "
          f"{'met' if figures.false_positive_rate <= FALSE_POSITIVE_TARGET else 'NOT met'}")

    print("\n| input | texts | median µs/call | p90 µs/call |\n|---|---:|---:|---:|")
    for label, rows in (("corpus attacks", attacks), ("corpus benign", benign),
                        ("1 KB of the project's docs", project_docs(1024, 50)),
                        ("10 KB of the project's docs", project_docs(10240, 20)),
                        ("1 KB of benign corpus texts, joined", documents(benign, 1024, 50)),
                        ("10 KB of benign corpus texts, joined", documents(benign, 10240, 20))):
        micros = timings(rows, args.repeat)
        print(f"| {label} | {len(rows)} | {statistics.median(micros):,.0f} | {pct(micros, 90):,.0f} |")
    for size in (1_000_000, 10_000_000):
        print(f"\n{size // 1_000_000} MB of text: {huge(size):.2f} s (scanned the first {MAX_SCAN_CHARS:,} "
              "characters, result says truncated)")

    if args.verbose:
        show(figures.missed, "missed attacks")
        show(figures.wrong_type, "flagged, but not with the expected type")
        show(figures.false_positives, "false positives")


if __name__ == "__main__":
    main()
