"""Whether a task's output meets what its spec expects (`TaskSpec.expect`): each check it asks
for, run on the output, as a `CheckResult` (docs/quality.md, "Outcome checks").

The checks run in a fixed order: contains, not_contains, min_length, max_length, pattern, json,
json_schema, sections, parses:<language>, lint:ruff, tests. Text rules (contains, not_contains,
lengths, pattern) read a string output as is and any other output as its JSON encoding. Lint and
tests read the Python code `parses:python` found; when it does not parse they are not run, and
fail saying so.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from events import CheckResult, Expectations, TaskSpec

from ._code import lint, parses
from ._doc import json_schema, sections
from ._tests import run_tests

__all__ = ["check_outcome", "failure_line"]

_EXCERPT = 80
_REASON_CHARS = 500  # a reason stays short: the events carry every check of every attempt


async def check_outcome(spec: TaskSpec, output: Any) -> list[CheckResult]:
    """Every check `spec.expect` asks for, applied to `output`, in order; [] when it asks for none."""
    expect = spec.expect
    if expect is None:
        return []
    checks = _text_checks(expect, output)
    if expect.json:
        problem = _json_problem(output)
        checks.append(CheckResult("json", problem is None, "" if problem is None else
                                  f"expected JSON output (an object, an array, or a string that parses as JSON); "
                                  f"{problem}"))
    if expect.json_schema is not None:
        checks.append(json_schema(output, expect.json_schema))
    if expect.sections:
        checks.append(sections(output, expect.sections))
    if expect.language is not None:
        parsed, blocks = parses(output, expect.language)
        checks.append(parsed)
        code = "\n\n".join(b.text for b in blocks)
        if expect.lint:
            checks.append(await lint(code) if parsed.passed else _not_run("lint:ruff"))
        if expect.tests is not None:
            checks.append(await run_tests(code, expect.tests) if parsed.passed else _not_run("tests"))
    return [CheckResult(c.check, c.passed, _bounded(c.reason)) for c in checks]


def failure_line(checks: list[CheckResult]) -> str:
    """A failed attempt's error: each failed check with its reason, on one line."""
    return "outcome check failed: " + "; ".join(f"{c.check}: {c.reason}" for c in checks if not c.passed)


def _text_checks(expect: Expectations, output: Any) -> list[CheckResult]:
    text = output if isinstance(output, str) else _json(output)
    checks: list[CheckResult] = []
    if expect.contains:
        missing = [needle for needle in expect.contains if needle not in text]
        checks.append(CheckResult("contains", not missing, "" if not missing else
                                  f"expected the output to contain {', '.join(map(repr, missing))}; "
                                  f"output: {_excerpt(text)}"))
    if expect.not_contains:
        found = [(needle, text.find(needle)) for needle in expect.not_contains if needle in text]
        checks.append(CheckResult("not_contains", not found, "" if not found else "; ".join(
            f"expected the output not to contain {needle!r}; found at character {at}: "
            f"{_excerpt(text, max(0, at - 20))}" for needle, at in found)))
    if expect.min_length is not None:
        short = len(text) < expect.min_length
        checks.append(CheckResult("min_length", not short, f"expected at least {expect.min_length} characters, got "
                                  f"{len(text)}; output: {_excerpt(text)}" if short else ""))
    if expect.max_length is not None:
        long = len(text) > expect.max_length
        checks.append(CheckResult("max_length", not long, f"expected at most {expect.max_length} characters, got "
                                  f"{len(text)}; output: {_excerpt(text)}" if long else ""))
    if expect.pattern is not None:
        checks.append(_pattern(expect.pattern, text))
    return checks


def _pattern(pattern: str, text: str) -> CheckResult:
    try:
        matched = re.search(pattern, text) is not None
    except re.error as exc:  # the validator refuses it; a log written before it did may still hold one
        return CheckResult("pattern", False, f"{pattern!r} is not a valid regular expression: {exc}")
    return CheckResult("pattern", matched, "" if matched else
                       f"expected the output to match {pattern!r}; output: {_excerpt(text)}")


def _not_run(check: str) -> CheckResult:
    return CheckResult(check, False, "not run: the code does not parse")


def _json_problem(output: Any) -> str | None:
    if isinstance(output, dict | list):
        return None
    if not isinstance(output, str):
        return f"got {type(output).__name__} {_excerpt(_json(output))}"
    try:
        msgspec.json.decode(output)
    except msgspec.DecodeError as exc:
        return f"{exc}; output: {_excerpt(output)}"
    return None


def _json(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _excerpt(text: str, start: int = 0) -> str:
    """At most 80 characters of `text` from `start`, quoted, with '…' where it was cut."""
    part = text[start : start + _EXCERPT]
    head = "…" if start > 0 else ""
    tail = "…" if start + _EXCERPT < len(text) else ""
    return f"{head}{part!r}{tail}"


def _bounded(reason: str) -> str:
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"
