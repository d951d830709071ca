"""Issue 12's must-show: each outcome check and each score on real outputs, in the order a
reviewer would put them.

Each output goes through what the engine does with it: the executor's outcome checks
(`check_outcome`, the tests run in the code sandbox), then the assessor's scoring given those
checks, where an output failing its checks is scored as a failed attempt with its problems.
"""

from __future__ import annotations

from typing import Any

from actors._checks import check_outcome
from actors._quality import Scores, score
from events import CheckResult, Expectations, TaskSpec

DESCRIPTION = ("Write a Python function slugify(text) that lowercases text, turns every run of characters "
               "that are not letters or digits into one hyphen, and strips hyphens from both ends.")
TESTS = '''def test_words():
    assert slugify("Hello, World!") == "hello-world"


def test_ends():
    assert slugify("  --Ymera 2.0--  ") == "ymera-2-0"
'''
GOOD = '''```python
import re


def slugify(text: str) -> str:
    """Lowercase `text`, one hyphen for each run of other characters, none at the ends."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
```
'''
TESTS_FAIL = '''```python
def slugify(text: str) -> str:
    """Lowercase `text` and join its words with hyphens."""
    return "-".join(text.lower().split())
```
'''
DOES_NOT_PARSE = '''```python
def slugify(text: str) -> str
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
```
'''
TRUNCATED = '''```python
import re


def slugify(text: str) -> str:
    """Lowercase `text`, one hyphen for each run of other characters, none at the ends."""
    return re.sub(r"[^a-z0-9]+", "-",
'''
OFF_TOPIC = ("Kubernetes schedules pods onto nodes by filtering the nodes that fit a pod's resource requests "
             "and scoring the rest; the highest score wins, and ties are broken at random.")

SCHEMA = {"type": "object", "required": ["service", "p95_ms", "cause"],
          "properties": {"service": {"type": "string"}, "p95_ms": {"type": "number"},
                         "cause": {"type": "string", "minLength": 10}}}
ANALYSIS = ("Read the latency samples given and report, as JSON, the service with the worst p95 latency, "
            "that p95 in milliseconds and the likely cause.")
SAMPLES = "checkout p95 840 ms after the cache was disabled; search p95 120 ms; login p95 95 ms"
JSON_GOOD = ('{"service": "checkout", "p95_ms": 840, '
             '"cause": "the cache was disabled, so every request hits the database"}')
JSON_BROKEN = '{"service": "checkout", "p95": "840 ms"}'


async def assessed(spec: TaskSpec, output: Any,
                   inputs: dict[str, Any] | None = None) -> tuple[Scores, list[CheckResult]]:
    """The checks the executor applies, then the assessor's scores given them."""
    checks = await check_outcome(spec, output)
    failed = [f"{c.check}: {c.reason}" for c in checks if not c.passed]
    return score(spec, output, duration_ms=2_000, timeout_seconds=60, outcome_passed=not failed,
                 outcome_problems=failed, checks=checks, inputs=inputs), checks


def verdicts(checks: list[CheckResult]) -> dict[str, bool]:
    return {c.check: c.passed for c in checks}


async def test_code_answers_checked_and_scored_rank_as_a_reviewer_would() -> None:
    spec = TaskSpec(id="slug", type="code_generation", agent="coder", description=DESCRIPTION,
                    expect=Expectations(language="python", lint=True, tests=TESTS))
    good, good_checks = await assessed(spec, GOOD)
    tests_fail, tests_fail_checks = await assessed(spec, TESTS_FAIL)
    broken, broken_checks = await assessed(spec, DOES_NOT_PARSE)
    cut, cut_checks = await assessed(spec, TRUNCATED)
    off, off_checks = await assessed(spec, OFF_TOPIC)

    # Each check, on each output.
    assert verdicts(good_checks) == {"parses:python": True, "lint:ruff": True, "tests": True}
    assert verdicts(tests_fail_checks) == {"parses:python": True, "lint:ruff": True, "tests": False}
    assert verdicts(broken_checks) == {"parses:python": False, "lint:ruff": False, "tests": False}
    assert verdicts(cut_checks) == {"parses:python": False, "lint:ruff": False, "tests": False}
    assert not verdicts(off_checks)["parses:python"]
    tests_reason = next(c.reason for c in tests_fail_checks if c.check == "tests")
    assert tests_reason.startswith("2 of 2 failed; test_words: AssertionError")

    # The order a reviewer would put them in: right; runs but wrong; broken by a typo; cut off;
    # about something else. Only the first passes QUALITY_THRESHOLD (0.7).
    assert good.overall > tests_fail.overall > broken.overall >= cut.overall >= off.overall
    assert (good.overall, tests_fail.overall, broken.overall, cut.overall, off.overall) == (1.0, 0.5, 0.35, 0.3, 0.3)
    # Each says why.
    assert good.reasons["overall"] == ["weighted mean 1.0000"]
    assert tests_fail.reasons["overall"][1] == "capped at 0.5: fails its outcome checks: tests"
    assert broken.reasons["overall"][1] == "capped at 0.35: its Python does not parse"
    assert cut.reasons["overall"][1] == "capped at 0.3: ends inside an unclosed ``` block"
    assert off.reasons["overall"][1] == "capped at 0.3: no code, and code was asked for"
    assert good.accuracy > tests_fail.accuracy > broken.accuracy > off.accuracy == 0.0
    for scores in (good, tests_fail, broken, cut, off):
        assert set(scores.reasons) == {"accuracy", "completeness", "consistency", "efficiency", "maintainability",
                                       "overall"}


async def test_json_that_breaks_its_schema_ranks_below_json_that_keeps_it() -> None:
    spec = TaskSpec(id="worst", type="analysis", agent="analyst", description=ANALYSIS, dependencies=["samples"],
                    expect=Expectations(json_schema=SCHEMA))
    kept, kept_checks = await assessed(spec, JSON_GOOD, {"samples": SAMPLES})
    broken, broken_checks = await assessed(spec, JSON_BROKEN, {"samples": SAMPLES})
    assert verdicts(kept_checks) == {"json_schema": True}
    assert verdicts(broken_checks) == {"json_schema": False}
    [reason] = [c.reason for c in broken_checks]
    assert "'p95_ms' is a required property" in reason
    assert kept.overall >= 0.9
    assert broken.overall == 0.5
    assert broken.reasons["overall"][1] == "capped at 0.5: fails its outcome checks: json_schema"
    assert kept.accuracy > broken.accuracy
    assert any(r.startswith("outcome check failed (json_schema: 2 errors:") for r in broken.reasons["accuracy"])
