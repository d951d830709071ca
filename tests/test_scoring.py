"""The assessor's scores: a table of outputs with the exact scores each earns, and their bounds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import events
from actors.assessor import Scores, score

DOCS = Path(__file__).resolve().parent.parent / "docs" / "quality.md"

GOOD_CODE = '''```python
def sort_numbers(values):
    """Return the values in ascending order."""
    return sorted(values)
```'''
# Ten lines of 180.8 characters on average, nine of them over 120, one function, no comment:
# line length 0, long lines 0, comments 0.5, function size 1 -> maintainability 0.375.
LONG_LINES_CODE = "\n".join(["def f():"] + ["    v = " + "1" * 192] * 9)
PROSE = "Sorting puts the numbers in order by comparing them pairwise until nothing moves."


def _spec(type_: str = "llm", description: str = "", **expect: Any) -> events.TaskSpec:
    return events.TaskSpec(id="t", type=type_, description=description,
                           expect=events.Expectations(**expect) if expect else None)


def _score(spec: events.TaskSpec, output: Any, *, duration_ms: float = 100.0, timeout_seconds: float = 10.0,
           passed: bool = True, problems: tuple[str, ...] = ()) -> Scores:
    return score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds,
                 outcome_passed=passed, outcome_problems=problems)


@pytest.mark.parametrize(
    ("case", "spec", "output", "passed", "problems", "expected"),
    [
        ("noop with no output", _spec("noop"), None, True, (), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("sleep with empty output", _spec("sleep", "wait a while"), "", True, (), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("prose answer to a short ask", _spec(description="Explain sorting."), PROSE, True, (),
         (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("check failed with two problems", _spec(), "an answer", False, ("too short", "missing 'x'"),
         (0.5, 1.0, 1.0, 1.0, 1.0, 0.825)),
        ("check failed naming no problem", _spec(), "an answer", False, (), (0.75, 1.0, 1.0, 1.0, 1.0, 0.9125)),
        ("check failed with five problems", _spec(), "x", False, ("a", "b", "c", "d", "e"),
         (0.0, 1.0, 1.0, 1.0, 1.0, 0.65)),
        ("empty answer from an llm task", _spec(description="Explain sorting."), "  ", True, (),
         (1.0, 0.0, 1.0, 1.0, 1.0, 0.8)),
        ("a quarter of the asked minimum length", _spec(min_length=100), "x" * 25, True, (),
         (1.0, 0.25, 1.0, 1.0, 1.0, 0.85)),
        ("50 chars answering an 800-char description", _spec(description="d" * 800), "y" * 50, True, (),
         (1.0, 0.625, 1.0, 1.0, 1.0, 0.925)),
        ("structured output", _spec(description="d" * 800), {"answer": 4}, True, (),
         (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("json asked and given", _spec(json=True), ' {"a": [1, 2]} ', True, (), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("json asked, fenced", _spec(json=True), 'Here:\n```json\n{"a": 1}\n```', True, (),
         (1.0, 1.0, 0.5, 1.0, 1.0, 0.925)),
        ("json asked, prose given", _spec(json=True), PROSE, True, (), (1.0, 1.0, 0.0, 1.0, 1.0, 0.85)),
        ("json asked, dict given", _spec(json=True), {"a": 1}, True, (), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("code asked, code given", _spec("code_generation", "Write a sort function."), GOOD_CODE, True, (),
         (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("code asked, prose given", _spec("code_generation", "Write a sort function."), PROSE, True, (),
         (1.0, 1.0, 0.0, 1.0, 1.0, 0.85)),
        ("tests asked, code inside a dict", _spec("testing"), {"file": "test_x.py", "code": "def test_x():\n    pass"},
         True, (), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("code with very long lines", _spec("code_generation"), LONG_LINES_CODE, True, (),
         (1.0, 1.0, 1.0, 1.0, 0.375, 0.875)),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_score_table(case: str, spec: events.TaskSpec, output: Any, passed: bool, problems: tuple[str, ...],
                     expected: tuple[float, ...]) -> None:
    scores = _score(spec, output, passed=passed, problems=problems)
    assert (scores.accuracy, scores.completeness, scores.consistency, scores.efficiency,
            scores.maintainability, scores.overall) == expected, case


def test_code_scores_above_prose_for_a_code_task() -> None:
    spec = _spec("code_generation", "Write a function that sorts a list of numbers.")
    code, prose = _score(spec, GOOD_CODE), _score(spec, PROSE)
    assert (code.consistency, prose.consistency) == (1.0, 0.0)
    assert code.overall > prose.overall


def test_prose_task_does_not_need_code() -> None:
    assert _score(_spec("llm", "Explain sorting."), PROSE).consistency == 1.0


@pytest.mark.parametrize(
    ("share_of_limit", "efficiency"),
    [(0.0, 1.0), (0.05, 1.0), (0.1, 1.0), (0.325, 0.8), (0.55, 0.6), (0.775, 0.4), (1.0, 0.2), (3.0, 0.2)],
)
def test_efficiency_falls_linearly_from_10_percent_to_the_limit(share_of_limit: float, efficiency: float) -> None:
    assert _score(_spec(), "x", duration_ms=share_of_limit * 60_000, timeout_seconds=60).efficiency == efficiency


def test_efficiency_without_a_time_limit_is_full() -> None:
    assert _score(_spec(), "x", duration_ms=10**9, timeout_seconds=0).efficiency == 1.0


def test_maintainability_rewards_comments_in_longer_code() -> None:
    body = "\n".join(["def f(x):"] + [f"    x = x + {i}" for i in range(8)] + ["    return x"])
    commented = body.replace("def f(x):", "def f(x):\n    # add the first eight numbers")
    assert _score(_spec("code_generation"), body).maintainability == 0.875
    assert _score(_spec("code_generation"), commented).maintainability == 1.0


def test_maintainability_penalises_one_huge_function() -> None:
    code = "\n".join(["def f(x):", "    # one long body"] + ["    x += 1"] * 158)  # 160 lines, one function
    assert _score(_spec("code_generation"), code).maintainability == 0.75


def test_weights_in_the_docs_match_the_code() -> None:
    text = DOCS.read_text()
    for name, weight in [("accuracy", "0.35"), ("completeness", "0.20"), ("consistency", "0.15"),
                         ("efficiency", "0.10"), ("maintainability", "0.20")]:
        assert re.search(rf"\|\s*{name}\s*\|\s*{weight}\s*\|", text), name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
texty = st.sampled_from(["", "   ", PROSE, GOOD_CODE, LONG_LINES_CODE, '{"a": 1}', "```json\n[1]\n```", "```"])
task_types = st.sampled_from(["noop", "sleep", "echo", "llm", "code_generation", "testing", "analysis"])
expectations = st.none() | st.builds(events.Expectations, min_length=st.none() | st.integers(0, 500),
                                     json=st.booleans())


@given(
    type_=task_types,
    description=st.text(max_size=2000),
    expect=expectations,
    output=json_values | texty | st.text(max_size=400),
    duration_ms=st.floats(),  # negative, infinite and NaN included
    timeout_seconds=st.floats(min_value=0, allow_nan=False, allow_infinity=True),
    passed=st.booleans(),
    problems=st.lists(st.text(max_size=10), max_size=6),
)
def test_every_score_is_between_0_and_1(type_: str, description: str, expect: events.Expectations | None,
                                        output: Any, duration_ms: float, timeout_seconds: float, passed: bool,
                                        problems: list[str]) -> None:
    spec = events.TaskSpec(id="t", type=type_, description=description, expect=expect)
    scores = score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds,
                   outcome_passed=passed, outcome_problems=problems)
    values = [scores.accuracy, scores.completeness, scores.consistency, scores.efficiency,
              scores.maintainability, scores.overall]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(round(v, 4) == v for v in values)
    weighted = (0.35 * scores.accuracy + 0.2 * scores.completeness + 0.15 * scores.consistency
                + 0.1 * scores.efficiency + 0.2 * scores.maintainability)
    assert abs(scores.overall - weighted) <= 0.00005 + 1e-12
    # The scores fit the event they are published in.
    events.TaskAssessed(id="a", ts=events.now(), workflow_id="w", task_id="t", attempt=1,
                        **{f: getattr(scores, f) for f in Scores.__struct_fields__})
