"""What the scorer reads off one answer before it scores: its code and the languages of it, the
language asked for, and the marks of an answer that cannot be good (a refusal, a repeat of the
prompt or of its input, a cut-off end, a stub, code that does not parse)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from events import TaskSpec

from ._code import (
    CodeBlock,
    PythonFacts,
    asked_language,
    code_blocks,
    prose_of,
    python_facts,
    same_language,
    unbalanced,
)
from ._text import cut_off, refusal, repeated_share, word_count

__all__ = ["CODE_TASK_TYPES", "Evidence", "gather", "text_of"]

CODE_TASK_TYPES = frozenset({"code_generation", "testing"})
REPEAT_SHARE = 0.6  # of the answer's word triples found in the task's own text
COPY_SHARE = 0.8  # ... found in a dependency's output, the answer at least half as long as it
_NOT_REQUEST = frozenset({"language", "model", "system", "provider", "max_tokens", "temperature"})
_TODO = re.compile(r"(?:#|//|--)\s*(?:TODO|FIXME)\b|\bTODO:", re.I)


@dataclass
class Evidence:
    text: str  # the answer as text
    request: str  # what the task asked, in words: its description and text parameters
    given: dict[str, str]  # dependency id -> its output as text
    blocks: list[CodeBlock]
    python: list[PythonFacts]  # one per Python block, in order
    asked: str  # the language asked for, "" if none
    wrong_language: list[str] = field(default_factory=list)  # the languages written that are not it
    refused: str | None = None
    repeats: float = 0.0  # share of the answer repeating the task's text
    copies: str | None = None  # the dependency whose output the answer copies
    cut: str | None = None  # why the answer looks cut off
    stubs: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # Python syntax errors (not at the end)

    @property
    def repeated(self) -> bool:
        return self.repeats >= REPEAT_SHARE


def text_of(output: Any) -> str:
    """The output's text: itself if a string, else every string inside it, one per line."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return "\n".join(text_of(v) for v in output.values() if v is not None)
    if isinstance(output, list | tuple):
        return "\n".join(text_of(v) for v in output if v is not None)
    return ""


def gather(spec: TaskSpec, output: Any, inputs: dict[str, Any], *, answer: bool = True) -> Evidence:
    """The evidence about `output`. Only a model's `answer` is read for what the task asked
    (relevance, language, the marks of a bad answer); any output for its code."""
    text = text_of(output)
    if not answer:
        blocks = code_blocks(text) if text else []
        return Evidence(text=text, request="", given={}, blocks=blocks,
                        python=[python_facts(b) for b in blocks if b.language == "python"], asked="")
    request = "\n".join([spec.description, *(v for k, v in spec.parameters.items()
                                             if isinstance(v, str) and k not in _NOT_REQUEST)])
    given = {dep: text_of(value) for dep, value in inputs.items()}
    blocks = code_blocks(text)
    given_blocks = [b for value in given.values() for b in code_blocks(value)]
    asked = asked_language(spec.parameters.get("language"), request, given_blocks)
    ev = Evidence(text=text, request=request, given=given, blocks=blocks,
                  python=[python_facts(b) for b in blocks if b.language == "python"], asked=asked)
    if asked:
        ev.wrong_language = list(dict.fromkeys(b.language for b in blocks
                                               if b.language and not same_language(b.language, asked)))
    ev.refused = refusal(text)
    if word_count(text) >= 3 and request.strip():
        ev.repeats = repeated_share(text, request)
    for dep, source in given.items():
        if len(text.strip()) >= len(source.strip()) / 2 and repeated_share(text, source) >= COPY_SHARE:
            ev.copies = dep
            break
    ev.cut = _cut(text, blocks, ev.python)
    ev.broken = [f.problem for f in ev.python if not f.parses and not f.cut_off]
    if spec.type in CODE_TASK_TYPES:
        ev.stubs = [name for f in ev.python for name in f.stubs]
        if any(_TODO.search(b.text) for b in blocks):
            ev.stubs.append("TODO left in the code")
    return ev


def _cut(text: str, blocks: list[CodeBlock], python: list[PythonFacts]) -> str | None:
    if blocks and blocks[-1].unclosed:
        return "ends inside an unclosed ``` block"
    cut_python = [f.problem for f in python if f.cut_off]
    if cut_python:
        return f"its Python stops mid-way: {cut_python[0]}"
    if "```" not in text and blocks and blocks[-1].language != "python":  # unfenced code: the whole answer
        open_brackets = unbalanced(blocks[-1].text)
        return f"its code ends with {open_brackets} bracket(s) still open" if open_brackets else None
    return None if text.rstrip().endswith("```") else cut_off(prose_of(text))
