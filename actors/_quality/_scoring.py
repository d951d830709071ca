"""How a task's output is scored: five scores from evidence, each with its reasons,
and their weighted mean, capped when the answer cannot be good whatever its form.

Every score is a pure function of the task, its output, the outputs of its dependencies, its
duration, its outcome checks, and two pieces of evidence gathered before scoring (ruff's lint
findings, a judge's verdict), so re-scoring gives the same numbers. docs/quality.md ("Scores")
states each rule; the order of the rules below is the order there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from actors.registry import TASK_KINDS
from events import CheckResult, TaskSpec, Verdict

from ._code import prose_of
from ._evidence import CODE_TASK_TYPES, Evidence, gather
from ._relevance import agreement, faithfulness, lexical_relevance

__all__ = ["CODE_TASK_TYPES", "EMPTY_OUTPUT_TYPES", "WEIGHTS", "Scores", "score", "written_by_model"]

WEIGHTS: dict[str, float] = {
    "accuracy": 0.35,
    "completeness": 0.20,
    "consistency": 0.15,
    "efficiency": 0.10,
    "maintainability": 0.20,
}
EMPTY_OUTPUT_TYPES = frozenset({"noop", "sleep"})  # their output is legitimately empty

_PROBLEM_PENALTY = 0.25
_MAX_EXPECTED_CHARS = 400  # a long description asks for a fuller answer, up to this length
_EFFICIENT_SHARE = 0.1  # of the time limit: up to here a task is as efficient as it gets
_EFFICIENCY_FLOOR = 0.2
_OFF_TOPIC = 0.35  # relevance below this: the answer is about something else
_FAILED_CHECKS = 0.5  # the most an output failing its outcome checks scores overall
_DESCRIPTION_SHARE = 0.3  # of relevance, with dependency outputs given; the rest is agreement with them
_FAITHFUL = 0.6  # a summary with fewer of its content words in its source says things the source does not
_COMFORTABLE_LINE, _LONG_LINE, _COMFORTABLE_FUNCTION, _SMALL_CODE = 80, 120, 40, 5
_FUNCTION = re.compile(r"^[ \t]*(?:(?:async\s+)?def\s|(?:export\s+)?(?:async\s+)?function\b|fn\s|func\s)", re.M)
_COMMENT = re.compile(r"(?:^|\s)(?:#|//|/\*|--)(?:\s|$)|^[ \t]*(?:[rbuRBU]?\"\"\"|[rbuRBU]?'''|\*\s)", re.M)
# What each agent type's brief (actors/registry.py) asks for beyond the subject, as a pattern
# the answer should match somewhere; missing it costs completeness.
_CUES: dict[str, tuple[str, re.Pattern[str]]] = {
    "documentation": ("an example", re.compile(r"```|`\w+\(|\bexample\b|>>>", re.I)),
    "analysis": ("a conclusion", re.compile(r"\b(?:because|caus\w*|likely|suggest\w*|therefore|recommend\w*|due to|"
                                            r"deciding|conclu\w*)\b", re.I)),
    "research": ("a source", re.compile(r"\b(?:19|20)\d\d\b|https?://|\bet al\b|\"[A-Z][^\"]{8,}\"")),
    "design": ("interfaces or trade-offs", re.compile(r"\btrade-?offs?\b|\binterfaces?\b|\bAPI\b|`\w+\(|```", re.I)),
}


class Scores(msgspec.Struct, frozen=True):
    """One task attempt's quality, each in 0..1, and why (the fields of `TaskAssessed`)."""

    accuracy: float
    completeness: float
    consistency: float
    efficiency: float
    maintainability: float
    overall: float
    reasons: dict[str, list[str]] = {}


def written_by_model(task_type: str) -> bool:
    """Whether a task type's output is a model's answer (llm, the agent types), which the
    evidence of relevance applies to; a direct kind's (echo, python, a tool) is not."""
    kind = TASK_KINDS.get(task_type)
    return kind is None or kind.llm


def score(
    spec: TaskSpec,
    output: Any,
    *,
    duration_ms: float,
    timeout_seconds: float,
    outcome_passed: bool = True,
    outcome_problems: Sequence[str] = (),
    checks: Sequence[CheckResult] = (),
    inputs: dict[str, Any] | None = None,
    lint: Sequence[str] | None = None,
    judged: Verdict | None = None,
) -> Scores:
    """Score one attempt's output. `inputs`: the outputs of the task's dependencies, by task
    id; `lint`: ruff's findings on its Python (None: not linted); `judged`: the judge's verdict
    (`TaskSucceeded.judged`), whose relevance replaces the lexical one and whose correctness
    and completeness bound accuracy and completeness."""
    written = written_by_model(spec.type) and spec.type not in EMPTY_OUTPUT_TYPES
    ev = gather(spec, output, inputs or {}, answer=written)
    reasons: dict[str, list[str]] = {}
    answered = written and bool(ev.text.strip())
    agreed = agreement(ev.text, ev.given) if answered and ev.given else None
    relevance = _relevance(spec, ev, judged, agreed) if answered else None
    parts = {
        "accuracy": _accuracy(spec, ev, relevance, judged, outcome_passed, outcome_problems, checks, written,
                              reasons),
        "completeness": _completeness(spec, output, ev, judged if written else None, written, reasons),
        "consistency": _consistency(spec, output, ev, agreed, reasons),
        "efficiency": _efficiency(duration_ms, timeout_seconds, reasons),
        "maintainability": _maintainability(ev, lint, reasons),
    }
    rounded = {name: round(_clamp(value), 4) for name, value in parts.items()}
    weighted = sum(WEIGHTS[name] * value for name, value in rounded.items())
    reasons["overall"] = [f"weighted mean {weighted:.4f}"]
    failed = [c.check for c in checks if not c.passed] or (["expect"] if not outcome_passed else [])
    cap = _cap(spec, ev, relevance, written, failed)
    if cap is not None and cap[0] < weighted:
        weighted = cap[0]
        reasons["overall"].append(f"capped at {cap[0]}: {cap[1]}")
    return Scores(**rounded, overall=round(_clamp(weighted), 4), reasons=reasons)


def _relevance(spec: TaskSpec, ev: Evidence, judged: Verdict | None,
               agreed: tuple[float, list[str]] | None) -> tuple[float, list[str]]:
    """A judge's relevance if there is one; else the lexical estimate, which with dependency
    outputs given is 0.3 of the description's and 0.7 of the agreement with them (a task on
    given material describes it only in general: "review the code given"), and for a summary
    at most its faithfulness to its source."""
    if judged is not None:
        return judged.relevance, [f"relevance {judged.relevance:.2f}, judged by {judged.model}", *judged.reasons]
    answer = prose_of(ev.text) + "\n" + "\n".join(b.text for b in ev.blocks)
    value, why = lexical_relevance(ev.request, answer)
    if agreed is not None:
        value = _DESCRIPTION_SHARE * value + (1 - _DESCRIPTION_SHARE) * agreed[0]
        why = [*why, *agreed[1], f"relevance: {_DESCRIPTION_SHARE} of the description's, the rest agreement"]
    if spec.type == "summarization" and ev.given:
        share, reason = faithfulness(ev.text, [ev.request, *ev.given.values()])
        why.append(reason)
        if share < _FAITHFUL and value > share:
            value = share
            why.append(f"at most {share:.2f}: a summary should say only what its source says")
    return value, why


def _accuracy(spec: TaskSpec, ev: Evidence, relevance: tuple[float, list[str]] | None, judged: Verdict | None,
              passed: bool, problems: Sequence[str], checks: Sequence[CheckResult], written: bool,
              reasons: dict[str, list[str]]) -> float:
    why: list[str] = []
    value = 1.0
    if written:
        if relevance is None:
            value, why = 0.0, ["no answer"]
        else:
            value, why = relevance[0], list(relevance[1])
        for applies, most, reason in _marks(spec, ev):
            if applies and value > most:
                value = most
                why.append(f"at most {most}: {reason}")
        if judged is not None and value > judged.correctness:
            value = judged.correctness
            why.append(f"at most {judged.correctness:.2f}: the judge's correctness")
    if not passed:
        penalty = _PROBLEM_PENALTY * max(1, len(problems))
        value *= max(0.0, 1.0 - penalty)
        why.append(f"outcome check failed ({'; '.join(problems) or 'no reason given'}): -{penalty:.0%}")
    for check in checks:
        why.append(f"check {check.check} {'passed' if check.passed else 'failed'}"
                   + (f": {check.reason}" if check.reason else ""))
        if check.check == "tests" and check.passed and value < 0.9:
            value = max(value, 0.9)
            why.append("its tests pass: at least 0.9")
    reasons["accuracy"] = why or ["not a model's answer: its outcome check is its accuracy"]
    return value


def _marks(spec: TaskSpec, ev: Evidence) -> list[tuple[bool, float, str]]:
    """The marks that limit accuracy: (present, the most it leaves, why)."""
    code_task = spec.type in CODE_TASK_TYPES
    all_wrong = bool(ev.blocks) and len(ev.wrong_language) > 0 and all(
        b.language in ev.wrong_language for b in ev.blocks if b.language)
    return [
        (ev.refused is not None, 0.0, f"a refusal ('{ev.refused}')"),
        (ev.repeated, 0.1, f"repeats the task ({ev.repeats:.0%} of its word triples)"),
        (ev.copies is not None, 0.2, f"copies the output of task {ev.copies}"),
        (all_wrong, 0.3, f"written in {', '.join(ev.wrong_language)}, not {ev.asked}"),
        (code_task and not ev.blocks, 0.4, "no code, and code was asked for"),
        (code_task and bool(ev.broken), 0.5, "its Python does not parse"),
        (bool(ev.stubs), 0.5, f"a stub ({', '.join(ev.stubs)})"),
    ]


def _completeness(spec: TaskSpec, output: Any, ev: Evidence, judged: Verdict | None, written: bool,
                  reasons: dict[str, list[str]]) -> float:
    if spec.type in EMPTY_OUTPUT_TYPES:
        reasons["completeness"] = [f"a {spec.type} task: no output needed"]
        return 1.0
    if output is None or (isinstance(output, str | list | dict) and not _filled(output)):
        reasons["completeness"] = ["no output"]
        return 0.0
    if not isinstance(output, str):
        reasons["completeness"] = ["structured output"]
        return 1.0
    length = len(output.strip())
    min_length = spec.expect.min_length if spec.expect is not None else None
    if min_length is not None and min_length > 0:
        value, why = min(1.0, length / min_length), [f"{length} of the {min_length} characters asked"]
    else:
        expected = min(_MAX_EXPECTED_CHARS, len(spec.description.strip()) / 4)
        value = 1.0 if expected < 1 else 0.5 + 0.5 * min(1.0, length / expected)
        why = [f"{length} characters for a {len(spec.description.strip())}-character description"]
    if written:
        value = _parts_asked(spec, ev, value, why)
    if judged is not None and value > judged.completeness:
        value = judged.completeness
        why.append(f"at most {judged.completeness:.2f}: the judge's completeness")
    reasons["completeness"] = why
    return value


def _parts_asked(spec: TaskSpec, ev: Evidence, value: float, why: list[str]) -> float:
    limits = [
        (ev.refused is not None, 0.0, "a refusal"),
        (ev.repeated, 0.1, "repeats the task"),
        (ev.cut is not None, 0.3, ev.cut or ""),
        (bool(ev.stubs), 0.3, "a stub"),
        (spec.type in CODE_TASK_TYPES and not ev.blocks, 0.3, "no code"),
    ]
    for applies, most, reason in limits:
        if applies and value > most:
            value = most
            why.append(f"at most {most}: {reason}")
    if spec.type == "testing" and ev.python:
        points = sum(f.test_points for f in ev.python)
        factor = min(1.0, 0.4 + 0.15 * points)
        value *= factor
        why.append(f"{points} assertion(s) or case(s): x{factor:.2f}")
    cue = _CUES.get(spec.type)
    if cue is not None and not cue[1].search(ev.text):
        value *= 0.8
        why.append(f"no {cue[0]}, which a {spec.type} answer gives: x0.8")
    if spec.type == "summarization" and ev.given:
        source = sum(len(t.strip()) for t in ev.given.values())
        if source and len(ev.text.strip()) < 0.1 * source:
            value *= 0.8
            why.append(f"under a tenth of the {source} characters it summarises: x0.8")
    return value


def _consistency(spec: TaskSpec, output: Any, ev: Evidence, agreed: tuple[float, list[str]] | None,
                 reasons: dict[str, list[str]]) -> float:
    why: list[str] = []
    if spec.expect is not None and spec.expect.json:
        value, why = _json_shape(output)
    elif spec.type in CODE_TASK_TYPES:
        value, why = _code_shape(ev)
    elif ev.wrong_language:
        value, why = 0.3, [f"its code is {', '.join(ev.wrong_language)}, the task's language is {ev.asked}"]
    else:
        value, why = 1.0, ["the shape asked for"]
    if agreed is not None:
        factor = 0.3 + 0.7 * agreed[0]
        value *= factor
        why.extend([*agreed[1], f"agreement with its inputs: x{factor:.2f}"])
    reasons["consistency"] = why
    return value


def _code_shape(ev: Evidence) -> tuple[float, list[str]]:
    if not ev.blocks:
        return 0.0, ["code asked for, none given"]
    languages = [b.language or "unrecognised" for b in ev.blocks]
    if ev.wrong_language:
        right = sum(not b.language or b.language not in ev.wrong_language for b in ev.blocks)
        return (0.1 if not right else 0.5), [f"written in {', '.join(languages)}; asked: {ev.asked}"]
    if ev.broken:
        return 0.2, [f"its Python does not parse: {ev.broken[0]}"]
    if ev.cut is not None:
        return 0.3, [ev.cut]
    parsed = " (parses)" if ev.python else ""
    return 1.0, [f"code in {', '.join(dict.fromkeys(languages))}{parsed}" + (", as asked" if ev.asked else "")]


def _efficiency(duration_ms: float, timeout_seconds: float, reasons: dict[str, list[str]]) -> float:
    limit_ms = timeout_seconds * 1000
    if not limit_ms > 0 or math.isinf(limit_ms):
        reasons["efficiency"] = ["no time limit"]
        return 1.0
    if math.isnan(duration_ms):
        reasons["efficiency"] = ["no duration measured"]
        return _EFFICIENCY_FLOOR
    share = max(0.0, duration_ms) / limit_ms
    reasons["efficiency"] = [f"took {share:.0%} of its {timeout_seconds:g}s time limit"]
    if share <= _EFFICIENT_SHARE:
        return 1.0
    if share >= 1.0:
        return _EFFICIENCY_FLOOR
    return 1.0 - (1.0 - _EFFICIENCY_FLOOR) * (share - _EFFICIENT_SHARE) / (1.0 - _EFFICIENT_SHARE)


def _maintainability(ev: Evidence, lint: Sequence[str] | None, reasons: dict[str, list[str]]) -> float:
    code = "\n".join(b.text for b in ev.blocks)
    lines = [line.rstrip() for line in code.splitlines() if line.strip()]
    if not lines:
        reasons["maintainability"] = ["no code"]
        return 1.0
    count = len(lines)
    mean_length = sum(len(line) for line in lines) / count
    parts = {
        "line length": _clamp(1.0 - (mean_length - _COMFORTABLE_LINE) / _COMFORTABLE_LINE),
        "long lines": _clamp(1.0 - 2.0 * sum(len(line) > _LONG_LINE for line in lines) / count),
        "comments": 1.0 if count < _SMALL_CODE or _COMMENT.search(code) else 0.5,
        "function size": _clamp(1.0 - (count / max(1, len(_FUNCTION.findall(code))) - _COMFORTABLE_FUNCTION) / 120),
    }
    why: list[str] = []
    parsed = [f for f in ev.python if f.parses]
    if parsed:
        worst = max(parsed, key=lambda f: f.complexity)
        deepest = max(f.depth for f in parsed)
        parts["complexity"] = _clamp(1.0 - (worst.complexity - 10) / 10)
        parts["nesting"] = _clamp(1.0 - (deepest - 4) / 4)
        why.append(f"complexity {worst.complexity} ({worst.complex_name}), nesting {deepest}")
    if ev.python:
        if lint is None:
            why.append("not linted (no ruff findings given: ruff is not installed)")
        else:
            parts["lint"] = _clamp(1.0 - 0.1 * len(lint))
            why.append(f"{len(lint)} ruff finding(s)" + (f": {'; '.join(lint[:3])}" if lint else ""))
    value = sum(parts.values()) / len(parts)
    why.insert(0, ", ".join(f"{name} {v:.2f}" for name, v in parts.items()))
    if ev.broken or ev.cut:
        value = min(value, 0.3)
        why.append("at most 0.3: the code does not parse or is cut off")
    reasons["maintainability"] = why
    return value


def _cap(spec: TaskSpec, ev: Evidence, relevance: tuple[float, list[str]] | None,
         written: bool, failed: list[str]) -> tuple[float, str] | None:
    """The most an output with a disqualifying mark can score overall, and the mark. Failing the
    task's own outcome checks (`failed`: their names) is one for any output: it is not what was
    asked, whatever else is right about it."""
    failing = (_FAILED_CHECKS, f"fails its outcome checks: {', '.join(failed)}") if failed else None
    if not written:
        return failing
    if relevance is None:
        return 0.0, "no answer"
    marks = [(applies, round(0.1 + most / 2, 4), reason) for applies, most, reason in _marks(spec, ev)]
    marks.append((ev.cut is not None, 0.3, ev.cut or ""))
    marks.append((relevance[0] < _OFF_TOPIC, 0.4, f"off the task (relevance {relevance[0]:.2f})"))
    found = [(most, reason) for applies, most, reason in marks if applies]
    if failing is not None:
        found.append(failing)
    return min(found) if found else None


def _filled(value: str | list[Any] | dict[Any, Any]) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def _json_shape(output: Any) -> tuple[float, list[str]]:
    if output is None:
        return 0.0, ["JSON asked for, no output"]
    if not isinstance(output, str):
        return 1.0, ["structured data, as asked"]
    if _parses(output):
        return 1.0, ["parses as JSON, as asked"]
    fenced = re.findall(r"```[^\n]*\n(.*?)```", output, re.S)
    if any(_parses(block) for block in fenced):
        return 0.5, ["JSON only inside a fenced block"]
    return 0.0, ["JSON asked for; the output does not parse as JSON"]


def _parses(text: str) -> bool:
    try:
        msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return False
    return True


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))

