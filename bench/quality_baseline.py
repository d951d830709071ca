"""The scorer as it was before evidence-based scoring (actors/assessor/_scoring.py at commit 29b0787,
since moved to actors/_quality/), kept verbatim below this docstring for bench/quality_eval.py to
measure as the baseline. Not used by Ymera."""


from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from events import TaskSpec

__all__ = ["CODE_TASK_TYPES", "EMPTY_OUTPUT_TYPES", "WEIGHTS", "Scores", "score"]

WEIGHTS: dict[str, float] = {
    "accuracy": 0.35,
    "completeness": 0.20,
    "consistency": 0.15,
    "efficiency": 0.10,
    "maintainability": 0.20,
}
# Task types whose output is legitimately empty, and task types that are asked for code.
EMPTY_OUTPUT_TYPES = frozenset({"noop", "sleep"})
CODE_TASK_TYPES = frozenset({"code_generation", "testing"})

_PROBLEM_PENALTY = 0.25
_MAX_EXPECTED_CHARS = 400  # a long description asks for a fuller answer, up to this length
_EFFICIENT_SHARE = 0.1  # of the time limit: up to here a task is as efficient as it gets
_EFFICIENCY_FLOOR = 0.2
_COMFORTABLE_LINE = 80
_LONG_LINE = 120
_COMFORTABLE_FUNCTION = 40
_SMALL_CODE = 5  # lines: below this, missing comments cost nothing

_FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_CODE_LINE = re.compile(
    r"^[ \t]*(?:(?:async\s+)?def\s+\w+\s*\(|class\s+\w+|(?:export\s+)?(?:async\s+)?function\b"
    r"|fn\s+\w+\s*[<(]|func\s+\w+\s*\(|import\s+[\w.{*\"']|from\s+[\w.]+\s+import\b|package\s+\w"
    r"|#include\b|(?:const|let|var)\s+\w+\s*=|(?:public|private|protected)\s+\w)",
    re.M,
)
_FUNCTION = re.compile(r"^[ \t]*(?:(?:async\s+)?def\s|(?:export\s+)?(?:async\s+)?function\b|fn\s|func\s)", re.M)
_COMMENT = re.compile(r"(?:^|\s)(?:#|//|/\*|--)(?:\s|$)|^[ \t]*(?:[rbuRBU]?\"\"\"|[rbuRBU]?'''|\*\s)", re.M)


class Scores(msgspec.Struct, frozen=True):
    """One task attempt's quality, each in 0..1 (the fields of `TaskAssessed`)."""

    accuracy: float
    completeness: float
    consistency: float
    efficiency: float
    maintainability: float
    overall: float


def score(
    spec: TaskSpec,
    output: Any,
    *,
    duration_ms: float,
    timeout_seconds: float,
    outcome_passed: bool,
    outcome_problems: Sequence[str],
) -> Scores:
    """Score one attempt's output; see the module docstring for each formula."""
    text = _text_of(output)
    parts = {
        "accuracy": accuracy(outcome_passed, len(outcome_problems)),
        "completeness": completeness(spec, output),
        "consistency": consistency(spec, output),
        "efficiency": efficiency(duration_ms, timeout_seconds),
        "maintainability": maintainability(text) if is_code_like(text) else 1.0,
    }
    rounded = {name: round(value, 4) for name, value in parts.items()}
    overall = sum(WEIGHTS[name] * value for name, value in rounded.items())
    return Scores(**rounded, overall=round(_clamp(overall), 4))


def accuracy(passed: bool, problems: int) -> float:
    # A failed check that names no problem still counts as one.
    return 1.0 if passed else max(0.0, 1.0 - _PROBLEM_PENALTY * max(1, problems))


def completeness(spec: TaskSpec, output: Any) -> float:
    if spec.type in EMPTY_OUTPUT_TYPES:
        return 1.0
    if output is None or (isinstance(output, str | list | dict) and not _is_filled(output)):
        return 0.0
    if not isinstance(output, str):
        return 1.0
    length = len(output.strip())
    min_length = spec.expect.min_length if spec.expect is not None else None
    if min_length is not None and min_length > 0:
        return min(1.0, length / min_length)
    expected = min(_MAX_EXPECTED_CHARS, len(spec.description.strip()) / 4)
    if expected < 1:
        return 1.0
    return 0.5 + 0.5 * min(1.0, length / expected)


def consistency(spec: TaskSpec, output: Any) -> float:
    if spec.expect is not None and spec.expect.json:
        return _json_shape(output)
    if spec.type in CODE_TASK_TYPES:
        return 1.0 if is_code_like(_text_of(output)) else 0.0
    return 1.0


def efficiency(duration_ms: float, timeout_seconds: float) -> float:
    limit_ms = timeout_seconds * 1000
    if not limit_ms > 0 or math.isinf(limit_ms):
        return 1.0
    if math.isnan(duration_ms):
        return _EFFICIENCY_FLOOR
    share = max(0.0, duration_ms) / limit_ms
    if share <= _EFFICIENT_SHARE:
        return 1.0
    if share >= 1.0:
        return _EFFICIENCY_FLOOR
    return 1.0 - (1.0 - _EFFICIENCY_FLOOR) * (share - _EFFICIENT_SHARE) / (1.0 - _EFFICIENT_SHARE)


def maintainability(text: str) -> float:
    blocks = _FENCED.findall(text)
    code = "\n".join(blocks) if blocks else text
    lines = [line.rstrip() for line in code.splitlines() if line.strip()]
    if not lines:
        return 1.0
    count = len(lines)
    mean_length = sum(len(line) for line in lines) / count
    long_share = sum(len(line) > _LONG_LINE for line in lines) / count
    commented = count < _SMALL_CODE or _COMMENT.search(code) is not None
    per_function = count / max(1, len(_FUNCTION.findall(code)))
    parts = (
        _clamp(1.0 - (mean_length - _COMFORTABLE_LINE) / _COMFORTABLE_LINE),
        _clamp(1.0 - 2.0 * long_share),
        1.0 if commented else 0.5,
        _clamp(1.0 - (per_function - _COMFORTABLE_FUNCTION) / 120),
    )
    return sum(parts) / len(parts)


def is_code_like(text: str) -> bool:
    return "```" in text or _CODE_LINE.search(text) is not None


def _is_filled(value: str | list[Any] | dict[Any, Any]) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def _text_of(output: Any) -> str:
    """The output's text: itself if a string, else every string inside it, one per line."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return "\n".join(_text_of(v) for v in output.values() if v is not None)
    if isinstance(output, list | tuple):
        return "\n".join(_text_of(v) for v in output if v is not None)
    return ""


def _json_shape(output: Any) -> float:
    if output is None:
        return 0.0
    if not isinstance(output, str):
        return 1.0  # already structured data
    if _parses(output):
        return 1.0
    return 0.5 if any(_parses(block) for block in _FENCED.findall(output)) else 0.0


def _parses(text: str) -> bool:
    try:
        msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return False
    return True


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
