"""The code in an output, and whether it parses (`expect.language`) and lints clean (`expect.lint`).

The code is the output's fenced blocks (```` ``` ```` or `~~~`) when it has any, else the whole
text. A block's tag (the first word after the fence) says its language: blocks tagged with the
checked language or one of its aliases, and untagged blocks, are the code; blocks tagged with
another language (a ```` ```bash ```` line showing how to run it) are left out. An output whose
every block is tagged with another language has no code in the language, and fails.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlglot
import yaml
from sqlglot import exp

from events import CheckResult

from ._ruff import RuffError, ruff

__all__ = ["LANGUAGES", "LINT_RULES", "Block", "code_blocks", "lint", "parses"]

# Each language the checks parse, and the fence tags that mark a block of it.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "json": ("json",),
    "python": ("python", "py", "python3", "py3"),
    "sql": ("sql", "postgresql", "postgres", "mysql", "sqlite"),
    "yaml": ("yaml", "yml"),
}
# A block tagged with a dialect is read in it; any other SQL in sqlglot's generic dialect.
_SQL_DIALECTS = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
# What a SQL statement parses to; a bare name or expression ("hello world" reads as `hello AS world`) is no statement.
# Named, not imported: sqlglot's versions add and move classes.
_SQL_STATEMENTS = tuple(getattr(exp, name) for name in (
    "Query", "DML", "DDL", "Select", "Union", "Insert", "Update", "Delete", "Merge", "Copy", "Create", "Alter", "Drop",
    "Command", "Transaction", "Commit", "Rollback", "Use", "Set", "Pragma", "Describe", "Show", "Grant", "Revoke",
    "Analyze", "Cache", "Uncache", "Refresh", "Kill") if hasattr(exp, name))
# ruff's own default rules, named so that a newer ruff does not change what fails: syntax
# errors, pyflakes (F: unused imports and names, undefined names), pycodestyle's E4/E7/E9.
LINT_RULES = "E4,E7,E9,F"
_SHOWN = 3  # findings named in a lint reason
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")


@dataclass(frozen=True)
class Block:
    """One piece of code: its text, its tag ("" untagged or the whole text), the output's line it
    starts on, and whether its fence was never closed (an answer cut off mid-block)."""

    text: str
    tag: str
    line: int
    unclosed: bool = False


def code_blocks(text: str, language: str) -> tuple[list[Block], str | None]:
    """The code in `language` in `text`, and why there is none (every block is another language's)."""
    blocks = _fenced(text)
    if not blocks:
        return [Block(text, "", 1)], None
    tags = LANGUAGES[language]
    mine = [b for b in blocks if b.tag in tags or not b.tag]
    if mine:
        return mine, None
    others = ", ".join(dict.fromkeys(b.tag for b in blocks))
    return [], f"no {language} code: the output's fenced blocks are tagged {others}"


def _fenced(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        fence, tag = opened.group(1), opened.group(2).lower()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence[0] * len(fence)) and not lines[j].strip().strip(fence[0])),
                   None)
        body = lines[i + 1 : end if end is not None else len(lines)]
        blocks.append(Block("\n".join(body) + "\n", tag, i + 2, unclosed=end is None))
        i = end + 1 if end is not None else len(lines)
    return blocks


def parses(output: Any, language: str) -> tuple[CheckResult, list[Block]]:
    """Whether the code in `output` parses as `language`, and the code (for lint and tests)."""
    name = f"parses:{language}"
    if not isinstance(output, str):
        if language == "json":
            return CheckResult(name, True, "structured output"), []
        output = _json_text(output)
    blocks, none = code_blocks(output, language)
    if none is not None:
        return CheckResult(name, False, none), []
    fenced = blocks[0].line > 1 or blocks[0].tag != ""
    for n, block in enumerate(blocks, 1):
        problem = _parse_problem(block, language)
        if problem is not None:
            where = f" (fenced block {n} of {len(blocks)}, from line {block.line})" if fenced else ""
            cut = "; its fence is never closed: a cut-off answer?" if block.unclosed else ""
            return CheckResult(name, False, f"{problem}{where}{cut}"), blocks
    return CheckResult(name, True, f"{len(blocks)} blocks" if len(blocks) > 1 else ""), blocks


def _parse_problem(block: Block, language: str) -> str | None:
    text = block.text
    if not text.strip():
        return "empty"
    if language == "python":
        try:
            ast.parse(text)
        except SyntaxError as exc:  # its line counted in the output, not the block
            at = f" at line {block.line + exc.lineno - 1}" if exc.lineno is not None else ""
            return f"{exc.msg}{at}: {_source_line(text, exc.lineno)}"
        except ValueError as exc:  # a NUL byte
            return str(exc)
        return None
    if language == "json":
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            return str(exc)
        return None
    if language == "yaml":
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            at = f" at line {block.line + mark.line}" if mark is not None else ""
            return f"{exc.problem or exc.context or 'not YAML'}{at}"
        except yaml.YAMLError as exc:
            return " ".join(str(exc).split())
        if not any(isinstance(d, dict | list) for d in documents):
            return "it reads as plain text, not YAML data (a mapping or a list)"
        return None
    return _sql_problem(text, _SQL_DIALECTS.get(block.tag))


def _sql_problem(text: str, dialect: str | None) -> str | None:
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        at = f" at line {first['line']}" if first.get("line") else ""
        return f"{first.get('description') or exc}{at}"
    except sqlglot.errors.TokenError as exc:
        return str(exc)
    if not statements:
        return "no SQL statement"
    for statement in statements:
        if not isinstance(statement, _SQL_STATEMENTS):
            return f"{statement.sql()[:60]!r} is not a SQL statement"
    return None


def _source_line(text: str, lineno: int | None) -> str:
    lines = text.splitlines()
    if lineno is None or not 1 <= lineno <= len(lines):
        return "(end of the code)"
    return repr(lines[lineno - 1].strip()[:80])


def _json_text(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)


async def lint(code: str) -> CheckResult:
    """ruff on `code` with `LINT_RULES` (`_ruff.py`): passes when it finds nothing. Lines are the
    code's (its blocks joined by a blank line), not the output's."""
    name = "lint:ruff"
    try:
        findings = await ruff(code, LINT_RULES)
    except RuffError as exc:
        return CheckResult(name, False, str(exc))
    if not findings:
        return CheckResult(name, True)
    codes = ", ".join(dict.fromkeys(f.code or "E999" for f in findings[:_SHOWN])) + (", …" if len(findings) > _SHOWN
                                                                                       else "")
    detail = "; ".join(f"code line {f.row or '?'}: {f.code or 'syntax'} {f.message}" for f in findings[:_SHOWN])
    count = f"{len(findings)} finding" + ("s" if len(findings) != 1 else "")
    return CheckResult(name, False, f"{count}: {codes}; {detail}")
