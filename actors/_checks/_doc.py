"""The shape of an output: its JSON against a JSON Schema (`expect.json_schema`), its text's
sections (`expect.sections`).

A section is a heading, of one of three forms, whose text names the section:
- a Markdown ATX heading, `#` to `######` then the text (`## Design`);
- a setext heading, the text on a line underlined by `===` (level 1) or `---` (level 2);
- a labelled part, a line that starts with the text and a colon (`Summary: …`), the label
  optionally in bold (`**Summary:**`, `**Summary**:`).
Names compare case-insensitively with runs of whitespace as one space, leading numbering
(`1.`, `2)`, `IV.`) and a trailing colon left out. A section counts only with content: a
non-blank line before the next heading of its level or above (any heading, for a labelled
part), or text after a labelled part's colon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import msgspec
import referencing
import referencing.exceptions
import referencing.jsonschema

from events import CheckResult

from ._code import code_blocks

__all__ = ["json_schema", "schema_problem", "sections"]

_ERRORS_SHOWN = 2
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LABEL = re.compile(r"^ {0,3}(?:\*\*|__)?([^:*_\n]{1,80}?)(?::(?:\*\*|__)|(?:\*\*|__):|:)(.*)$")
_NUMBERING = re.compile(r"^(?:\d+|[ivxlcdm]+|[a-z])[.)]\s+", re.IGNORECASE)


def _refuse(uri: str) -> referencing.Resource[Any]:
    """No schema is fetched: a check must not reach the network (jsonschema would, by default)."""
    raise referencing.exceptions.NoSuchResource(uri)


_NOTHING_FETCHED: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_NOTHING_FETCHED, format_checker=cls.FORMAT_CHECKER)


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (under the draft its `$schema` names, else
    2020-12), or names a `$ref` it does not hold; None if it is one the check can apply."""
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"{_short(exc.message)} at {exc.json_path}"
    ids = {str(v).rstrip("#") for v in _values(schema, "$id")}
    resolver = _NOTHING_FETCHED.with_resource("urn:ymera:schema", referencing.jsonschema.specification_with(
        cls.META_SCHEMA.get("$schema", ""), default=referencing.jsonschema.DRAFT202012).create_resource(schema)
    ).resolver("urn:ymera:schema")
    for ref in map(str, _values(schema, "$ref")):
        if ref.startswith("#"):
            try:
                resolver.lookup(ref)
            except referencing.exceptions.Unresolvable:
                return f"$ref {ref!r} points to nothing in the schema"
        elif ref.split("#", 1)[0] not in ids:
            return f"$ref {ref!r} is not in the schema (schemas elsewhere are not fetched)"
    return None


def _values(node: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in `node`."""
    if isinstance(node, dict):
        return [*([node[key]] if key in node else []), *(v for value in node.values() for v in _values(value, key))]
    if isinstance(node, list):
        return [v for item in node for v in _values(item, key)]
    return []


def json_schema(output: Any, schema: dict[str, Any]) -> CheckResult:
    """Whether the output's JSON satisfies `schema`: a structured output as it is, a string's
    JSON code (its fenced `json` or untagged blocks, else the whole text), each document."""
    name = "json_schema"
    if isinstance(output, str):
        blocks, none = code_blocks(output, "json")
        if none is not None:
            return CheckResult(name, False, none)
        documents: list[Any] = []
        for block in blocks:
            try:
                documents.append(msgspec.json.decode(block.text))
            except msgspec.DecodeError as exc:
                return CheckResult(name, False, f"the output is not JSON: {exc}")
    else:
        documents = [output]
    validator = _validator(schema)
    for document in documents:
        try:
            errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
        except referencing.exceptions.Unresolvable as exc:  # a $ref the validator did not refuse (an older log)
            return CheckResult(name, False, f"the schema cannot be applied: {_short(str(exc))}")
        if errors:
            shown = "; ".join(f"at {e.json_path}: {_short(e.message)}" for e in errors[:_ERRORS_SHOWN])
            more = f"; and {len(errors) - _ERRORS_SHOWN} more" if len(errors) > _ERRORS_SHOWN else ""
            count = f"{len(errors)} error" + ("s" if len(errors) != 1 else "")
            return CheckResult(name, False, f"{count}: {shown}{more}")
    return CheckResult(name, True)


@dataclass(frozen=True)
class _Heading:
    name: str  # as compared (`_key`)
    text: str  # as written
    level: int  # 1-6 Markdown, 7 a labelled part
    line: int
    inline: bool  # a labelled part with text after its colon


def sections(output: Any, wanted: list[str]) -> CheckResult:
    """Whether the text has each of `wanted` as a section with content (the module docstring)."""
    text = output if isinstance(output, str) else ""
    lines = text.splitlines()
    headings = _headings(lines)
    found: dict[str, bool] = {}
    for h in headings:
        found[h.name] = found.get(h.name, False) or _has_content(h, headings, lines)
    missing = [w for w in wanted if _key(w) not in found]
    empty = [w for w in wanted if _key(w) in found and not found[_key(w)]]
    if not missing and not empty:
        return CheckResult("sections", True)
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} of {len(wanted)}: " + ", ".join(map(repr, missing)))
    if empty:
        parts.append("empty: " + ", ".join(map(repr, empty)))
    markdown = [h.text for h in headings if h.level < 7]
    parts.append("headings found: " + (", ".join(map(repr, markdown[:8])) + (", …" if len(markdown) > 8 else "")
                                       if markdown else "none"))
    return CheckResult("sections", False, "; ".join(parts))


def _headings(lines: list[str]) -> list[_Heading]:
    headings: list[_Heading] = []
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        if (atx := _ATX.match(line)) is not None:
            headings.append(_Heading(_key(atx.group(2)), atx.group(2), len(atx.group(1)), i, False))
        elif (i + 1 < len(lines) and line.strip() and (under := _SETEXT.match(lines[i + 1])) is not None
              and not _LABEL.match(line)):
            headings.append(_Heading(_key(line), line.strip(), 1 if under.group(1)[0] == "=" else 2, i, False))
        elif (label := _LABEL.match(line)) is not None:
            headings.append(_Heading(_key(label.group(1)), label.group(1).strip(), 7, i, bool(label.group(2).strip())))
    return headings


def _has_content(heading: _Heading, headings: list[_Heading], lines: list[str]) -> bool:
    if heading.inline:
        return True
    after = [h for h in headings if h.line > heading.line]
    end = next((h.line for h in after if h.level <= heading.level or heading.level == 7), len(lines))
    starts = {h.line for h in headings if h.level < 7}  # a labelled part inside a section is content
    body = [lines[j] for j in range(heading.line + 1, end)
            if j not in starts and not _SETEXT.match(lines[j])]
    return any(line.strip() for line in body)


def _key(name: str) -> str:
    name = " ".join(name.replace("*", " ").replace("_", " ").split()).rstrip(":").strip()
    return _NUMBERING.sub("", name).casefold()


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
