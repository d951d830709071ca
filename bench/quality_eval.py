"""Calibrate the assessor's scores against the labelled set in tests/data/quality/.

Each pair (a task, the outputs of its dependencies, an answer, a label good/mediocre/bad by
the rubric in docs/quality.md) is scored by the scorer (`actors._quality.score`, with ruff's
findings when ruff is installed) and by the baseline, the scorer before evidence-based scoring
(bench/quality_baseline.py, a verbatim copy of it). Printed: Spearman's rank correlation
(ties given their average rank) of overall and of each dimension against the labels
(good 2, mediocre 1, bad 0), the mean overall per label, and the time per call. Every pair is
scored at 1 s of a 60 s time limit, so efficiency is the same for all (its correlation is
"n/a"). The script exits 0; it prints "met" or "NOT met" for the target (Spearman >= 0.8).

    .venv/bin/python bench/quality_eval.py [--verbose] [--write] [--repeat 20]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import events  # noqa: E402
from actors._quality import lint_answer_blocking, score  # noqa: E402
from bench import quality_baseline  # noqa: E402
from bench.report import machine, write_section  # noqa: E402

DATA = ROOT / "tests" / "data" / "quality"
HELD_OUT = "held_out.yaml"  # written after the scorer was built from the other files
LABELS = {"good": 2, "mediocre": 1, "bad": 0}
DIMENSIONS = ("overall", "accuracy", "completeness", "consistency", "efficiency", "maintainability")
TARGET = 0.8
DURATION_MS, TIMEOUT_S = 1000.0, 60.0


def load() -> list[dict[str, Any]]:
    """Every pair, with its task spec and inputs resolved from its file's `inputs`."""
    pairs = []
    for path in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for pair in doc["pairs"]:
            deps = pair.get("dependencies", {})
            expect = pair.get("expect")
            pair["spec"] = events.TaskSpec(
                id="task", type=pair["type"], agent="agent", description=pair["description"],
                parameters=pair.get("parameters", {}), dependencies=list(deps),
                expect=events.Expectations(**expect) if expect else None)
            pair["inputs"] = {dep: doc["inputs"][name] for dep, name in deps.items()}
            pair["held_out"] = path.name == HELD_OUT
            pairs.append(pair)
    return pairs


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's correlation of the ranks; None when either side is constant."""
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sx = math.sqrt(sum((r - mx) ** 2 for r in rx))
    sy = math.sqrt(sum((r - my) ** 2 for r in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True)) / (sx * sy)


def new_scores(pair: dict[str, Any], lint: list[str] | None) -> Any:
    return score(pair["spec"], pair["answer"], duration_ms=DURATION_MS, timeout_seconds=TIMEOUT_S,
                 inputs=pair["inputs"], lint=lint)


def old_scores(pair: dict[str, Any]) -> Any:
    return quality_baseline.score(pair["spec"], pair["answer"], duration_ms=DURATION_MS, timeout_seconds=TIMEOUT_S,
                                  outcome_passed=True, outcome_problems=())


def median_us(call: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every pair's scores and the new reasons")
    parser.add_argument("--write", action="store_true", help="write the results to BENCHMARKS.md")
    parser.add_argument("--repeat", type=int, default=20, help="calls per pair for the timing")
    args = parser.parse_args()

    pairs = load()
    labels = [float(LABELS[p["label"]]) for p in pairs]
    lints = [lint_answer_blocking(p["answer"]) for p in pairs]
    new = [new_scores(p, lint) for p, lint in zip(pairs, lints, strict=True)]
    old = [old_scores(p) for p in pairs]

    out: list[str] = []
    counts = {label: sum(p["label"] == label for p in pairs) for label in LABELS}
    types = sorted({p["type"] for p in pairs})
    out.append(f"{len(pairs)} pairs ({', '.join(f'{n} {label}' for label, n in counts.items())}) over "
               f"{len(types)} task types: {', '.join(types)}")
    linted = sum(lint is not None for lint in lints)
    out.append(f"ruff: {'findings for ' + str(linted) + ' answers with Python' if linted else 'not available'}")
    out.append("")
    out.append("| Spearman vs labels | baseline | new |")
    out.append("|---|---:|---:|")
    for dim in DIMENSIONS:
        before = spearman([getattr(s, dim) for s in old], labels)
        after = spearman([getattr(s, dim) for s in new], labels)
        out.append(f"| {dim} | {fmt(before)} | {fmt(after)} |")
    out.append("")
    out.append("| label | pairs | baseline mean overall (min–max) | new mean overall (min–max) |")
    out.append("|---|---:|---:|---:|")
    for label in LABELS:
        b = [s.overall for s, p in zip(old, pairs, strict=True) if p["label"] == label]
        a = [s.overall for s, p in zip(new, pairs, strict=True) if p["label"] == label]
        out.append(f"| {label} | {len(a)} | {statistics.fmean(b):.3f} ({min(b):.2f}–{max(b):.2f}) | "
                   f"{statistics.fmean(a):.3f} ({min(a):.2f}–{max(a):.2f}) |")
    out.append("")
    out.append("| overall, Spearman vs labels | pairs | baseline | new |")
    out.append("|---|---:|---:|---:|")
    for name, held in (("pairs the scorer was built with", False), (f"held-out pairs ({HELD_OUT})", True)):
        part = [i for i, p in enumerate(pairs) if p["held_out"] == held]
        sub = [labels[i] for i in part]
        out.append(f"| {name} | {len(part)} | {fmt(spearman([old[i].overall for i in part], sub))} | "
                   f"{fmt(spearman([new[i].overall for i in part], sub))} |")
    rho = spearman([s.overall for s in new], labels)
    out.append("")
    out.append(f"Spearman of overall, new scorer: {fmt(rho)} (target >= {TARGET}): "
               f"{'met' if rho is not None and rho >= TARGET else 'NOT met'}")

    per_pair = [median_us(lambda p=p, lint=lint: new_scores(p, lint), args.repeat)
                for p, lint in zip(pairs, lints, strict=True)]
    base_pair = [median_us(lambda p=p: old_scores(p), args.repeat) for p in pairs]
    python_pairs = [p for p, lint in zip(pairs, lints, strict=True) if lint is not None]
    ruff_us = [median_us(lambda p=p: lint_answer_blocking(p["answer"]), 3) for p in python_pairs[:10]]
    out.append("")
    out.append("| per call | median µs | p90 µs |")
    out.append("|---|---:|---:|")
    out.append(f"| new score() (lint findings given) | {statistics.median(per_pair):,.0f} | "
               f"{sorted(per_pair)[int(0.9 * len(per_pair))]:,.0f} |")
    out.append(f"| baseline score() | {statistics.median(base_pair):,.0f} | "
               f"{sorted(base_pair)[int(0.9 * len(base_pair))]:,.0f} |")
    if ruff_us:
        out.append(f"| ruff on an answer's Python (subprocess, {len(ruff_us)} answers) | "
                   f"{statistics.median(ruff_us):,.0f} | {max(ruff_us):,.0f} |")
    text = "\n".join(out)
    print(text)

    if args.verbose:
        print()
        for p, b, a in sorted(zip(pairs, old, new, strict=True), key=lambda t: (t[0]["label"], t[2].overall)):
            print(f"{p['label']:8} old {b.overall:.2f} new {a.overall:.2f} "
                  f"(acc {a.accuracy:.2f} com {a.completeness:.2f} con {a.consistency:.2f} "
                  f"mai {a.maintainability:.2f})  {p['id']}")
            for dim, why in a.reasons.items():
                if dim != "efficiency":
                    print(f"          {dim}: {' | '.join(why)}")
    if args.write:
        write_section("Quality scores (bench/quality_eval.py)", machine() + "\n" + text)


if __name__ == "__main__":
    main()
