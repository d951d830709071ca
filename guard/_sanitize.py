"""The security manager's input sanitiser: is a text safe to pass on, and what would be.

    sanitize_input("'; DROP TABLE users; --")
    {"safe": False, "issues": [{"type": "sql_injection", "severity": "critical", "span": (0, 23),
      "reason": "SQL injection: a quote closes the string and a second statement follows: DROP TABLE users"}],
     "sanitized": "[removed: sql_injection]", "context": "text", "truncated": False, "scanned": 23}

Six detectors (`_detect_*`) read a normalised view of the text (`_textview`: no invisible
characters, look-alikes mapped to ASCII); base64 and percent-encoded runs are decoded and
read again (two layers deep), their findings pointing at the encoded run.

Contexts say where the text goes; each detector runs in every context, and the context
makes its own check strict:

    text    free text (a task description, a comment): only confirmed attack shapes block;
            local URLs and shallow relative paths are reported low. The default.
    prompt  text for an LLM prompt whose model may use tools: prompt injection is critical;
            private, loopback and link-local URLs block (a tool could fetch them).
    sql     a value for an SQL string or number: any quote break that parses into more than a
            value blocks.
    shell   a value for a command line: any operator, substitution, redirection or newline
            outside quotes blocks (shlex decides).
    path    a path joined under a base directory: climbing above it, absolute paths and NUL
            bytes block (posixpath.normpath decides).
    html    text rendered as HTML: nothing is discounted, and `sanitized` is cleaned by nh3.
    url     a URL that will be fetched: the whole text is judged as one, with or without a
            scheme; private, loopback, link-local and metadata hosts block.

An unknown context is read as "text"; the result's "context" says which was used.

Severity: critical (takes over the machine, its data or the model), high (an attack shape,
confirmed), medium (an attack shape that ordinary text also takes: a plain install line
piping curl into sh, markup inside Markdown code), low (worth a look: a local URL in free
text). The input is unsafe when any issue is high or critical; every such issue has a reason.

`sanitized` is the text with each high or critical span neutralised: XSS spans are cleaned
by nh3 (harmless markup survives), other spans replaced by `[removed: <type>]`; then every
invisible character is dropped, lone surrogates become U+FFFD, the text is NFKC-normalised,
and look-alike letters in words that mix scripts ("paypal" with a Cyrillic U+0430 for an 'a') become the
ASCII they imitate (whole words in one script, Russian say, are left alone). In the "html"
context the result is then cleaned by nh3 as a whole. It is text fit to show or log, not a
licence to interpolate: SQL still takes bound parameters, shells still take argument lists.

At most MAX_SCAN_CHARS (256 Ki) characters are scanned; a longer text is scanned up to there,
"truncated" is True and "scanned" says how far (the security actor refuses descriptions over
100,000 characters, so admitted text is always scanned whole). Decoding reads at most as many
characters again. Scanning is linear: every pattern is bounded, and sqlglot parses at most 12
short fragments a text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import msgspec
import nh3

from ._detect_path import find_path_traversal
from ._detect_prompt import find_prompt_injection
from ._detect_shell import find_shell_injection
from ._detect_sql import find_sql_injection
from ._detect_ssrf import find_ssrf
from ._detect_xss import find_xss
from ._issue import BLOCKING, MAX_ISSUES, SEVERITIES, Issue
from ._textview import INVISIBLE, View, confusable_ascii, encoded_runs, strip_invisible

__all__ = ["CONTEXTS", "MAX_SCAN_CHARS", "Sanitized", "sanitize_input", "scan_input"]

CONTEXTS = ("text", "prompt", "sql", "shell", "path", "html", "url")
MAX_SCAN_CHARS = 262_144
_MAX_DEPTH = 2  # base64 inside base64, percent-encoding inside base64: deeper is not worth the time

_DETECTORS: tuple[Callable[[str, str], list[Issue]], ...] = (
    find_sql_injection, find_prompt_injection, find_shell_injection, find_path_traversal, find_xss, find_ssrf)


class Sanitized(msgspec.Struct, frozen=True):
    """The typed result; `sanitize_input` returns it as a dict."""

    safe: bool
    issues: list[Issue]
    sanitized: str
    context: str
    truncated: bool
    scanned: int


def sanitize_input(text: str, context: str = "text") -> dict[str, Any]:
    """`{"safe", "issues", "sanitized", "context", "truncated", "scanned"}` for `text` bound for
    `context`; each issue a dict with "type", "severity", "span" (start, end) and "reason"."""
    result = scan_input(text, context)
    return {
        "safe": result.safe,
        "issues": [{"type": i.type, "severity": i.severity, "span": i.span, "reason": i.reason} for i in result.issues],
        "sanitized": result.sanitized,
        "context": result.context,
        "truncated": result.truncated,
        "scanned": result.scanned,
    }


def scan_input(text: str, context: str = "text") -> Sanitized:
    """The typed form of `sanitize_input`."""
    if not isinstance(text, str):
        raise TypeError(f"sanitize_input: text must be str, not {type(text).__name__}")
    used = context if context in CONTEXTS else "text"
    head = text[:MAX_SCAN_CHARS]
    issues = _dedupe(_findings(head, used, 0, [MAX_SCAN_CHARS]))
    return Sanitized(
        safe=not any(i.severity in BLOCKING for i in issues),
        issues=issues,
        sanitized=_sanitized(text, issues, used),
        context=used,
        truncated=len(text) > len(head),
        scanned=len(head),
    )


def _findings(text: str, context: str, depth: int, budget: list[int]) -> list[Issue]:
    """Every detector's issues in `text`, spans in `text`; then those of its encoded runs."""
    view = View.of(text)
    found = []
    for detect in _DETECTORS:
        for issue in detect(view.text, context)[:MAX_ISSUES]:
            start, end = view.source_span(*issue.span)
            found.append(Issue(issue.type, issue.severity, (start, end), issue.reason + _disguise(text[start:end])))
    if depth < _MAX_DEPTH:
        for start, end, decoded, encoding in encoded_runs(view.text):
            budget[0] -= len(decoded)
            if budget[0] < 0:
                break
            span = view.source_span(start, end)
            for inner in _findings(decoded, context, depth + 1, budget):
                found.append(Issue(inner.type, inner.severity, span, f"{inner.reason} (decoded from {encoding})"))
    return found


def _disguise(source: str) -> str:
    """How the span was disguised, for the reason: invisible characters or look-alikes."""
    if source.isascii():
        return ""
    if any(c in INVISIBLE or 0xE0000 <= ord(c) <= 0xE007F for c in source):
        return " (hidden with invisible characters)"
    if any(not c.isascii() and (confusable_ascii(c) or unicodedata.normalize("NFKC", c).isascii()) for c in source):
        return " (written with look-alike characters)"
    return ""


def _dedupe(issues: list[Issue]) -> list[Issue]:
    """One issue per type and span, the most severe; in text order."""
    best: dict[tuple[str, tuple[int, int]], Issue] = {}
    for issue in issues:
        key = (issue.type, issue.span)
        kept = best.get(key)
        if kept is None or SEVERITIES.index(issue.severity) > SEVERITIES.index(kept.severity):
            best[key] = issue
    return sorted(best.values(), key=lambda i: (i.span, i.type))


def _sanitized(text: str, issues: list[Issue], context: str) -> str:
    out = _neutralise(text, [i for i in issues if i.severity in BLOCKING])
    out = strip_invisible(out)
    if not out.isascii():
        out = _LONE_SURROGATE.sub("\ufffd", out)
        out = unicodedata.normalize("NFKC", out)
        out = _MIXED_WORD.sub(_unmix, out[:MAX_SCAN_CHARS]) + out[MAX_SCAN_CHARS:]
    if context == "html":
        out = nh3.clean(out)
    return out


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MIXED_WORD = re.compile(r"(?<!\w)\w*[^\x00-\x7f]\w*")  # anchored at word starts: linear


def _unmix(word: re.Match[str]) -> str:
    """A word mixing ASCII letters with look-alike letters of the scripts that have them
    (Cyrillic, Greek, Armenian, ...), in ASCII. Other characters (an ideograph next to "Python",
    punctuation, accented Latin letters NFKC kept) stay as they are."""
    text = word.group()
    if not any(c.isascii() and c.isalpha() for c in text):
        return text
    return "".join(_ascii_letter(c) for c in text)


_LOOKALIKE_SCRIPTS = ("CYRILLIC ", "GREEK ", "ARMENIAN ", "CHEROKEE ", "COPTIC ", "LISU ", "LATIN ")


def _ascii_letter(char: str) -> str:
    if char.isascii() or not char.isalpha() or not unicodedata.name(char, "").startswith(_LOOKALIKE_SCRIPTS):
        return char
    ascii_form = confusable_ascii(char)
    return ascii_form if ascii_form is not None and ascii_form.isalpha() else char


def _neutralise(text: str, blocking: list[Issue]) -> str:
    """`text` with each blocking span (overlapping spans merged) made harmless."""
    groups: list[tuple[int, int, set[str]]] = []
    for issue in sorted(blocking, key=lambda i: i.span):
        start, end = issue.span
        if groups and start < groups[-1][1]:
            last = groups[-1]
            groups[-1] = (last[0], max(last[1], end), last[2] | {issue.type})
        else:
            groups.append((start, end, {issue.type}))
    pieces = []
    at = 0
    for start, end, types in groups:
        pieces.append(text[at:start])
        if types == {"xss"}:
            pieces.append(nh3.clean(_LONE_SURROGATE.sub("\ufffd", text[start:end])))
        else:
            pieces.append(f"[removed: {', '.join(sorted(types))}]")
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
