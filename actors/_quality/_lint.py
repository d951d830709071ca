"""Lint findings for the Python in an answer, from ruff when it is installed.

The scorer stays pure: whoever scores (the assessor, or the executor for an output no model
wrote) runs ruff here (a subprocess, before scoring) and hands the findings in. Without ruff
the findings are None and the scorer says the code was not linted; scores then differ from
a machine with ruff by the lint part of maintainability only. The rules are fixed
(`--isolated`: no project configuration is read), so the same code and the same ruff version
give the same findings.
"""

from __future__ import annotations

from typing import Any

from .._checks import Finding, RuffError, ruff, ruff_blocking
from ._code import code_blocks
from ._evidence import text_of

__all__ = ["RULES", "lint", "lint_answer", "lint_answer_blocking", "lint_blocking"]

# pycodestyle errors and warnings, pyflakes, bugbear; complexity is the scorer's own count.
RULES = "E,W,F,B"
_IGNORED = "W291,W292,W293"  # trailing whitespace and final newlines: artefacts of how answers are cut out
_FILENAME = "answer.py"


def _lines(findings: list[Finding]) -> list[str]:
    return [f"{f.code or 'syntax'} line {f.row}: {f.message}" for f in findings]


def lint_blocking(code: str) -> list[str] | None:
    """Ruff's findings on `code` (one line each: rule, line, message), or None without ruff."""
    try:
        return _lines(ruff_blocking(code, RULES, _IGNORED, _FILENAME))
    except RuffError:
        return None


async def lint(code: str) -> list[str] | None:
    """`lint_blocking` without blocking the event loop."""
    try:
        return _lines(await ruff(code, RULES, _IGNORED, _FILENAME))
    except RuffError:
        return None


def _python_of(output: Any) -> list[str]:
    """The Python blocks of an answer that parse: what there is to lint."""
    return [b.text for b in code_blocks(text_of(output)) if b.tree is not None]


def _merge(found: list[list[str] | None]) -> list[str] | None:
    if any(f is None for f in found):
        return None
    return [line for f in found if f is not None for line in f]


def lint_answer_blocking(output: Any) -> list[str] | None:
    """Ruff's findings on every parsing Python block of an answer (None: no Python, or no ruff)."""
    blocks = _python_of(output)
    return _merge([lint_blocking(code) for code in blocks]) if blocks else None


async def lint_answer(output: Any) -> list[str] | None:
    """`lint_answer_blocking` without blocking the event loop."""
    blocks = _python_of(output)
    return _merge([await lint(code) for code in blocks]) if blocks else None
