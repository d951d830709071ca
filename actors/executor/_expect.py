"""Whether a task's output meets what its spec expects (`TaskSpec.expect`)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from events import TaskSpec

__all__ = ["check_outcome"]

_EXCERPT = 80


def check_outcome(spec: TaskSpec, output: Any) -> list[str]:
    """Every expectation of `spec` that `output` fails, one sentence each; [] when it meets them all.

    Text rules (contains, not_contains, lengths, pattern) read a string output as is and any
    other output as its JSON encoding.
    """
    expect = spec.expect
    if expect is None:
        return []
    text = output if isinstance(output, str) else _json(output)
    problems: list[str] = []
    for needle in expect.contains:
        if needle not in text:
            problems.append(f"contains: expected the output to contain {needle!r}; output: {_excerpt(text)}")
    for needle in expect.not_contains:
        at = text.find(needle)
        if at >= 0:
            problems.append(f"not_contains: expected the output not to contain {needle!r}; "
                            f"found at character {at}: {_excerpt(text, max(0, at - 20))}")
    if expect.min_length is not None and len(text) < expect.min_length:
        problems.append(f"min_length: expected at least {expect.min_length} characters, got {len(text)}; "
                        f"output: {_excerpt(text)}")
    if expect.max_length is not None and len(text) > expect.max_length:
        problems.append(f"max_length: expected at most {expect.max_length} characters, got {len(text)}; "
                        f"output: {_excerpt(text)}")
    if expect.pattern is not None:
        try:
            matched = re.search(expect.pattern, text) is not None
        except re.error as exc:
            problems.append(f"pattern: {expect.pattern!r} is not a valid regular expression: {exc}")
        else:
            if not matched:
                problems.append(f"pattern: expected the output to match {expect.pattern!r}; "
                                f"output: {_excerpt(text)}")
    if expect.json:
        problem = _json_problem(output)
        if problem:
            problems.append(f"json: expected JSON output (an object, an array, or a string that parses as "
                            f"JSON); {problem}")
    return problems


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
