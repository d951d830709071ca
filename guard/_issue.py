"""What the input sanitiser reports: one `Issue` per finding, in the vocabulary a reviewer
reads (its type, how bad it is, where it is, why). Detectors build them, each judging the
severity for the context it is told; `_sanitize` decides from them whether a text is safe."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["BLOCKING", "MAX_ISSUES", "SEVERITIES", "Issue", "IssueType", "Severity"]

IssueType = Literal["sql_injection", "prompt_injection", "shell_injection", "path_traversal", "xss", "ssrf"]
Severity = Literal["low", "medium", "high", "critical"]

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
# An input is unsafe when any issue is at least this bad; low and medium are reported only.
BLOCKING: frozenset[Severity] = frozenset({"high", "critical"})
# Issues reported per detector and text: a text with thousands of <script> tags is unsafe
# after the first; listing them all would only make the result as big as the attack.
MAX_ISSUES = 50


class Issue(msgspec.Struct, frozen=True):
    """One finding. `span` is `(start, end)` into the text the caller passed (end exclusive),
    whatever normalising or decoding it took to see the attack."""

    type: IssueType
    severity: Severity
    span: tuple[int, int]
    reason: str

