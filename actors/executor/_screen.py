"""Every output is scanned before it flows on (`guard.scan_output`): secrets and personal data
are redacted in what the `TaskSucceeded` carries (but for strings that are merely
high-entropy: a digest looks like a token), and every finding is an `OutputFlagged` event
published with it, counting for the alerts secret_leak, pii_exposure, harmful_content.

Each string of the output is scanned (a dict's values, a list's items: `field` names the
path, `output.summary`, `output[2]`); a span is replaced by `[REDACTED:<type>]` in the string
as it arrived, so what lies past the scanner's limit still flows on, unread, and the event
says so (`truncated`). Harmful passages are reported and left in place: they are evidence for
whoever reviews the alert. A large output is scanned in a thread, off the executor's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from events import SecurityFinding
from guard import Finding, scan_output

__all__ = ["Screened", "screen"]

IN_THREAD_CHARS = 64 * 1024  # a string this long is scanned off the event loop (~5 ms a 64 KiB)
_REDACTED = ("secret", "pii")
# A string that is merely random-looking (a digest, an id) is reported, never changed: the
# scanner cannot tell a leaked token from a sha256 the task was asked for.
_GUESSES = ("high_entropy",)


class Screened:
    """An output as it may flow on, and what was found in it."""

    def __init__(self) -> None:
        self.findings: list[SecurityFinding] = []
        self.redacted = False
        self.truncated = False


async def screen(output: Any) -> tuple[Any, Screened]:
    """The output with its secrets and personal data redacted, and the findings."""
    found = Screened()
    if isinstance(output, str) and len(output) > IN_THREAD_CHARS:
        return await asyncio.to_thread(_walk, output, "output", found), found
    return _walk(output, "output", found), found


def _walk(value: Any, field: str, found: Screened) -> Any:
    if isinstance(value, str):
        return _text(value, field, found) if value else value
    if isinstance(value, list):
        return [_walk(item, f"{field}[{i}]", found) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _walk(item, f"{field}.{key}", found) for key, item in value.items()}
    return value


def _text(text: str, field: str, found: Screened) -> str:
    result = scan_output(text)
    found.truncated = found.truncated or result.truncated
    if not result.findings:
        return text
    found.findings.extend(SecurityFinding(kind=f.kind, type=f.type, severity=f.severity, field=field, span=f.span,
                                          reason=f.reason, alert=f.alert) for f in result.findings)
    hidden = sorted((f for f in result.findings if f.kind in _REDACTED and f.type not in _GUESSES),
                    key=lambda f: f.span)
    if not hidden:
        return text
    found.redacted = True
    return _redact(text, hidden)


def _redact(text: str, hidden: list[Finding]) -> str:
    parts, at = [], 0
    for finding in hidden:
        start, end = finding.span
        if start < at:
            continue  # inside one redacted already
        parts += [text[at:start], f"[REDACTED:{finding.type}]"]
        at = end
    parts.append(text[at:])
    return "".join(parts)
