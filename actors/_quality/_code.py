"""The code in an answer and what can be read off it without running it: its blocks, the
language each is written in and the one the task asked for, whether Python parses (and, if not,
whether it was cut off), its complexity, its stubs, its tests, and the names it defines.

Complexity is a small AST count of our own (McCabe's): 1 per function, plus 1 per `if`,
`elif`, loop, `except`, conditional expression, comprehension condition, `match` case and
extra operand of `and`/`or`. Nesting depth counts `if`/loops/`with`/`try`/`match` blocks
inside one another. Languages other than Python are recognised by their marks (a fence's
tag, else signature lines such as `public class`, `func f(`, `#include`) and checked only for
balanced brackets.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["CodeBlock", "PythonFacts", "asked_language", "code_blocks", "defined_names", "prose_of", "python_facts",
           "same_language", "unbalanced"]


@dataclass(frozen=True)
class CodeBlock:
    """One piece of code in an answer: a fenced block (dedented), or the whole answer when it
    is unfenced code. `unclosed`: its fence never closes (the answer ends inside it)."""

    language: str  # normalised ("python", "java", ...), "" when not recognised
    text: str
    unclosed: bool = False
    tree: ast.Module | None = field(default=None, compare=False, repr=False)  # Python that parses, parsed once


class PythonFacts(msgspec.Struct, frozen=True):
    parses: bool
    problem: str = ""  # the syntax error, with its line
    cut_off: bool = False  # the syntax error is at the end: the code stops mid-way
    complexity: int = 1  # the most complex function's (or the module's) McCabe count
    complex_name: str = ""
    depth: int = 0  # deepest nesting of blocks
    stubs: tuple[str, ...] = ()  # functions whose body is only `pass`, `...` or NotImplementedError
    functions: int = 0
    test_points: int = 0  # asserts, pytest.raises blocks and parametrized cases


_ALIASES = {
    "py": "python", "python3": "python", "pytest": "python", "js": "javascript", "node": "javascript",
    "jsx": "javascript", "ts": "typescript", "tsx": "typescript", "sh": "bash", "shell": "bash",
    "zsh": "bash", "console": "bash", "golang": "go", "c++": "cpp", "cc": "cpp", "hpp": "cpp",
    "rs": "rust", "kt": "kotlin", "cs": "csharp", "c#": "csharp", "rb": "ruby", "postgresql": "sql",
    "mysql": "sql", "sqlite": "sql", "yml": "yaml",
}
_FAMILIES = ({"javascript", "typescript"}, {"c", "cpp"})
_NOT_CODE = frozenset({"", "text", "txt", "plain", "plaintext", "markdown", "md", "output", "json", "yaml", "toml",
                       "ini", "csv", "diff", "log"})

_M = re.M
_SIGNS: dict[str, tuple[tuple[re.Pattern[str], int], ...]] = {
    "python": ((re.compile(r"^\s*(?:async\s+)?def \w+\(.*\)\s*(?:->[^:]+)?:\s*$", _M), 3),
               (re.compile(r"^\s*(?:from [\w.]+ import \w|import \w+(?:\.\w+)*(?:\s+as\s+\w+)?\s*$)", _M), 2),
               (re.compile(r"^\s*class \w+(?:\(.*\))?:\s*$", _M), 3), (re.compile(r"\bself\.\w"), 1),
               (re.compile(r"^\s*(?:elif|except|with)\b.*:\s*$", _M), 2)),
    "java": ((re.compile(r"^\s*(?:public|private|protected)\s+(?:static\s+|final\s+)*[\w<>\[\]]+\s+\w+\s*[(;=]",
                         _M), 3),
             (re.compile(r"^\s*(?:public\s+)?(?:final\s+|abstract\s+)?class \w+[^:\n]*\{", _M), 3),
             (re.compile(r"^\s*import (?:static )?(?:java|javax|android|androidx|org|com)\.[\w.*]+;", _M), 3),
             (re.compile(r"System\.out\.|@Override|@Test\b"), 2)),
    "javascript": ((re.compile(r"^\s*(?:export\s+)?(?:async\s+)?function\b", _M), 3),
                   (re.compile(r"^\s*(?:const|let|var)\s+\w+\s*=", _M), 2), (re.compile(r"=>"), 1),
                   (re.compile(r"console\.log|module\.exports|require\(|document\."), 3)),
    "typescript": ((re.compile(r":\s*(?:string|number|boolean)\b"), 2),
                   (re.compile(r"^\s*(?:export\s+)?interface\s+\w+", _M), 3)),
    "go": ((re.compile(r"^\s*package\s+\w+\s*$", _M), 3), (re.compile(r"^\s*func\s+(?:\([^)]*\)\s*)?\w+\(", _M), 3),
           (re.compile(r":="), 1), (re.compile(r"\bfmt\."), 2)),
    "rust": ((re.compile(r"^\s*(?:pub\s+)?fn\s+\w+", _M), 3), (re.compile(r"\blet\s+mut\b"), 3),
             (re.compile(r"^\s*(?:impl\b|use\s+\w+::)", _M), 3)),
    "cpp": ((re.compile(r"^\s*#include\s*[<\"]", _M), 3), (re.compile(r"\bstd::"), 2)),
    "sql": ((re.compile(r"^\s*(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:TABLE|INDEX|VIEW)|WITH)\b",
                        _M | re.I), 3), (re.compile(r"\bFROM\s+\w", re.I), 1)),
    "bash": ((re.compile(r"^#!.*\b(?:ba|z)?sh\b", _M), 4), (re.compile(r"^\s*set -[euxo]", _M), 2),
             (re.compile(r"^\s*(?:fi|done|esac)\s*$", _M), 2), (re.compile(r"\$\{?\w+"), 1)),
}
# A language named in a task's description; "Go" only capitalised (the verb is everywhere).
_NAMED = (
    ("python", re.compile(r"\b(?:python|pytest)\b", re.I)),
    ("java", re.compile(r"\b(?:java|junit)\b(?!script)", re.I)),
    ("javascript", re.compile(r"\b(?:javascript|node\.js)\b", re.I)),
    ("typescript", re.compile(r"\btypescript\b", re.I)),
    ("go", re.compile(r"\b(?:Go|golang)\b")), ("rust", re.compile(r"\brust\b", re.I)),
    ("sql", re.compile(r"\bSQL\b")), ("bash", re.compile(r"\b(?:bash|shell script)\b", re.I)),
    ("cpp", re.compile(r"\bC\+\+")), ("kotlin", re.compile(r"\bkotlin\b", re.I)),
)
_UNFENCED_CODE = re.compile(
    r"^[ \t]*(?:(?:async\s+)?def\s+\w+\s*\(|class\s+\w+|(?:export\s+)?(?:async\s+)?function\b|fn\s+\w+\s*[<(]"
    r"|func\s+\w+\s*\(|import\s+[\w.{*\"']|from\s+[\w.]+\s+import\b|package\s+\w|#include\b"
    r"|(?:const|let|var)\s+\w+\s*=|(?:public|private|protected)\s+\w)", re.M)
_FENCE_LINE = re.compile(r"^[ \t]*```+[ \t]*([^\s`]*)")
_STRINGS = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`[^`\n]*`")
_OTHER_NAMES = re.compile(r"\b(?:def|class|func|function|fn|let|const|var|struct|interface|type)\s+(\w{3,})")
_PAIRS = {")": "(", "]": "[", "}": "{"}
# Syntax errors that mean the code stops mid-way, wherever Python reports them.
_CUT_MESSAGES = ("never closed", "EOF", "unterminated", "expected an indented")


def normalise(language: str) -> str:
    name = language.strip().lower()
    return _ALIASES.get(name, name)


def same_language(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in _FAMILIES)


def code_blocks(text: str) -> list[CodeBlock]:
    """The code in an answer: its fenced blocks (prose and data fences skipped), else the whole
    text if it reads as code."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    open_tag: str | None = None
    body: list[str] = []
    for line in lines:
        fence = _FENCE_LINE.match(line)
        if fence is None:
            if open_tag is not None:
                body.append(line)
            continue
        if open_tag is None:
            open_tag, body = normalise(fence.group(1)), []
        else:
            blocks.append(_block(open_tag, "\n".join(body)))
            open_tag = None
    if open_tag is not None:
        blocks.append(_block(open_tag, "\n".join(body), unclosed=True))
    if blocks or "```" in text:
        return [b for b in blocks if b.language not in _NOT_CODE or _detect(b.text)]
    return [_block("", text)] if _UNFENCED_CODE.search(text) else []


def _block(tag: str, text: str, unclosed: bool = False) -> CodeBlock:
    code = textwrap.dedent(text).strip("\n")
    language = (tag if tag not in _NOT_CODE else "") or _detect(code)
    return CodeBlock(language, code, unclosed, _parse(code) if language == "python" else None)


def prose_of(text: str) -> str:
    """The answer without its fenced blocks."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if _FENCE_LINE.match(line):
            inside = not inside
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _detect(code: str) -> str:
    scores = {lang: sum(weight for sign, weight in signs if sign.search(code)) for lang, signs in _SIGNS.items()}
    if scores["python"] and _parse(code) is not None:
        return "python"
    if scores["typescript"] and scores["javascript"]:
        scores["typescript"] += scores["javascript"]
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else ""


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def asked_language(spec_language: Any, request: str, given: list[CodeBlock]) -> str:
    """The language the task asked for: its `language` parameter, else the one language its
    description names, else the language of the code it was given; "" if none."""
    if isinstance(spec_language, str) and spec_language.strip():
        return normalise(spec_language)
    named = [lang for lang, pattern in _NAMED if pattern.search(request)]
    if len(named) == 1:
        return named[0]
    if named:
        return ""
    languages = {b.language for b in given if b.language}
    return languages.pop() if len(languages) == 1 else ""


def python_facts(block: CodeBlock) -> PythonFacts:
    code = block.text
    try:
        tree = block.tree or ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 0
        message = getattr(exc, "msg", str(exc))
        last = len(code.rstrip().splitlines())
        at_end = line >= last or any(m in message for m in _CUT_MESSAGES)
        return PythonFacts(parses=False, problem=f"{message} (line {line})", cut_off=at_end)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    counts = [(_mccabe(f), f.name) for f in functions] or [(_mccabe(tree), "<module>")]
    worst = max(counts, key=lambda c: c[0])
    return PythonFacts(parses=True, complexity=worst[0], complex_name=worst[1], depth=_depth(tree),
                       stubs=tuple(f.name for f in functions if _is_stub(f)), functions=len(functions),
                       test_points=_test_points(tree))


_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.match_case)
_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match)


def _mccabe(node: ast.AST) -> int:
    count = 1
    for child in ast.walk(node):
        if isinstance(child, _BRANCHES):
            count += 1
        elif isinstance(child, ast.BoolOp):
            count += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            count += len(child.ifs)
    return count


def _depth(node: ast.AST, level: int = 0) -> int:
    deepest = level
    for child in ast.iter_child_nodes(node):
        nested = level + 1 if isinstance(child, _BLOCKS) else level
        deepest = max(deepest, _depth(child, nested))
    return deepest


def _is_stub(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # a docstring
    return all(isinstance(s, ast.Pass)
               or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis)
               or (isinstance(s, ast.Raise) and "NotImplementedError" in ast.unparse(s)) for s in body)


def _test_points(tree: ast.AST) -> int:
    points = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            points += 1
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("raises", "parametrize")):
            if ast.unparse(node.func).endswith("raises"):
                points += 1
            elif len(node.args) > 1 and isinstance(node.args[1], ast.List | ast.Tuple):
                points += max(0, len(node.args[1].elts) - 1)  # the cases beyond the one the assert counts
    return points


def defined_names(block: CodeBlock) -> tuple[list[str], list[str]]:
    """The functions and classes a piece of code defines, and every name it defines (those,
    parameters, attributes, assigned names), each in order, three letters or more and no
    dunders: what a review of it, tests of it or documentation for it would mention."""
    definitions: list[str] = []
    names: list[str] = []
    if block.tree is None:
        names = _OTHER_NAMES.findall(block.text)
    else:
        for node in ast.walk(block.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                definitions.append(node.name)
                names.append(node.name)
            elif isinstance(node, ast.arg) and node.arg not in ("self", "cls"):
                names.append(node.arg)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.append(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.append(node.id)
    return _kept(definitions), _kept(names)


def _kept(names: list[str]) -> list[str]:
    return [n for n in dict.fromkeys(names) if len(n.strip("_")) >= 3 and not n.startswith("__")]


def unbalanced(code: str) -> int:
    """How many brackets are left open at the end of the code (strings skipped)."""
    stack: list[str] = []
    for char in _STRINGS.sub("", code):
        if char in "([{":
            stack.append(char)
        elif char in _PAIRS and stack and stack[-1] == _PAIRS[char]:
            stack.pop()
    return len(stack)
