"""Outcome checks on real outputs: each check's pass/fail and the reason a user reads, and the
validator's refusal of expectations that cannot be checked (docs/quality.md, "Outcome checks").

Ruff is the binary the `ruff` package installs; tests run in the real code sandbox.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

import events
from actors._checks import failure_line
from actors.executor import check_outcome
from actors.validator import validate_workflow
from config import Settings
from events import CheckResult, Expectations, TaskSpec
from ymera._progress import checks_line

GOOD = '''Here is the function, with a docstring:

```python
def add(a: int, b: int) -> int:
    """The sum of a and b."""
    return a + b
```

Run the tests with:

```bash
pytest -q
```
'''
# Cut off mid-block: the fence never closes, the call never does.
TRUNCATED = "Here it is:\n\n```python\ndef add(a: int, b: int) -> int:\n    return add_two(a,\n"
UNUSED = "```python\nimport os\n\n\ndef add(a, b):\n    total = a + b\n    return a + b\n```\n"
WRONG = "```python\ndef add(a, b):\n    return a - b\n```\n"
TESTS = "def test_small():\n    assert add(1, 2) == 3\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n\n\n" \
        "def test_module():\n    import solution\n    assert solution.add(2, 2) == 4\n"
SCHEMA = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}
REPORT = """# Overview

The service rate-limits clients with a token bucket.

## 1. Design

Tokens refill at a fixed rate.

**Risks:** clock skew between replicas.
"""


def spec(**expect: Any) -> TaskSpec:
    return TaskSpec(id="t", type="llm", expect=Expectations(**expect))


async def checked(output: Any, **expect: Any) -> list[tuple[str, bool, str]]:
    return [(c.check, c.passed, c.reason) for c in await check_outcome(spec(**expect), output)]


async def test_good_code_passes_every_code_check_and_the_bash_block_is_left_out() -> None:
    assert await checked(GOOD, language="python", lint=True, tests=TESTS, min_length=50) == [
        ("min_length", True, ""),
        ("parses:python", True, ""),
        ("lint:ruff", True, ""),
        ("tests", True, "3 of 3 passed"),
    ]


async def test_code_that_does_not_parse_fails_and_lint_and_tests_are_not_run() -> None:
    result = await checked(TRUNCATED, language="python", lint=True, tests=TESTS)
    assert result == [
        ("parses:python", False, "'(' was never closed at line 5: 'return add_two(a,' (fenced block 1 of 1, from "
                                 "line 4); its fence is never closed: a cut-off answer?"),
        ("lint:ruff", False, "not run: the code does not parse"),
        ("tests", False, "not run: the code does not parse"),
    ]


async def test_code_that_fails_lint_names_the_findings() -> None:
    assert await checked(UNUSED, language="python", lint=True) == [
        ("parses:python", True, ""),
        ("lint:ruff", False, "2 findings: F401, F841; code line 1: F401 `os` imported but unused; code line 5: F841 "
                             "Local variable `total` is assigned to but never used"),
    ]


async def test_code_whose_tests_fail_counts_them_and_names_the_failures() -> None:
    assert await checked(WRONG, language="python", tests=TESTS) == [
        ("parses:python", True, ""),
        ("tests", False, "2 of 3 failed; test_small: AssertionError (tests.py line 2); test_module: AssertionError "
                         "(tests.py line 11)"),
    ]


@pytest.mark.parametrize(("code", "tests", "reason"), [
    ("raise SystemExit(3)\n", TESTS, "not run: the code fails as it loads: SystemExit: 3 (solution.py line 1)"),
    ("def add(a, b):\n    return a + b\n", "import not_a_module\n\n\ndef test_a():\n    pass\n",
     "not run: the tests fail as they load: ModuleNotFoundError: No module named 'not_a_module' (tests.py line 1)"),
    ("import os\nos._exit(0)\n", TESTS, "the run ended without a report (exit 0): no error output"),
    ("import socket\n", "def test_net():\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n",
     "1 of 1 failed; test_net: OSError: [Errno 101] Network is unreachable (tests.py line 2)"),
], ids=["code exits as it loads", "tests fail to load", "code ends the process", "no network"])
async def test_tests_that_cannot_run_say_why(code: str, tests: str, reason: str) -> None:
    assert await checked(code, language="python", tests=tests) == [("parses:python", True, ""),
                                                                    ("tests", False, reason)]


async def test_json_that_breaks_its_schema_names_each_error_by_path() -> None:
    answer = 'The record:\n\n```json\n{"name": 7, "age": -1}\n```\n'
    assert await checked(answer, json_schema=SCHEMA) == [
        ("json_schema", False, "2 errors: at $.age: -1 is less than the minimum of 0; at $.name: 7 is not of type "
                               "'string'"),
    ]
    assert await checked({"name": "Ada", "age": 36}, json_schema=SCHEMA) == [("json_schema", True, "")]
    assert await checked('{"name": "Ada"', json_schema=SCHEMA) == [
        ("json_schema", False, "the output is not JSON: Input data was truncated")]


async def test_a_schema_elsewhere_is_never_fetched() -> None:
    """jsonschema would fetch a remote $ref by default; the check refuses to (the validator refuses
    such a schema first; this is a log written before it did)."""
    fetched: list[str] = []

    async def schema(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.json_response({"type": "object"})

    app = web.Application()
    app.router.add_get("/person.json", schema)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/person.json"
        assert await checked({"name": "Ada"}, json_schema={"$ref": url}) == [
            ("json_schema", False, f"the schema cannot be applied: Unresolvable: {url}")]
    finally:
        await runner.cleanup()
    assert fetched == []


async def test_missing_and_empty_sections_are_named() -> None:
    wanted = ["Overview", "Design", "Risks", "Tests"]
    assert await checked(REPORT, sections=wanted) == [
        ("sections", False, "missing 1 of 4: 'Tests'; headings found: 'Overview', '1. Design'")]
    truncated = REPORT + "\nTests\n-----\n"
    assert await checked(truncated, sections=wanted) == [
        ("sections", False, "empty: 'Tests'; headings found: 'Overview', '1. Design', 'Tests'")]
    assert await checked(truncated + "Two unit tests.\n", sections=wanted) == [("sections", True, "")]


async def test_a_truncated_answer_under_min_length_fails_with_an_excerpt() -> None:
    assert await checked("The answer is", min_length=40, contains=["answer"]) == [
        ("contains", True, ""),
        ("min_length", False, "expected at least 40 characters, got 13; output: 'The answer is'"),
    ]


@pytest.mark.parametrize(("output", "language", "reason"), [
    ('{"a": [1, 2]}', "json", ""),
    ('{"a": [1, 2}', "json", "JSON is malformed: expected ',' or ']' (byte 11)"),
    ({"already": "data"}, "json", "structured output"),
    ("```yaml\nname: ymera\nitems: [1, 2]\n```", "yaml", ""),
    ("items: [1, 2\n", "yaml", "expected ',' or ']', but got '<stream end>' at line 2"),
    ("Just a sentence of prose.", "yaml", "it reads as plain text, not YAML data (a mapping or a list)"),
    ("SELECT name FROM users WHERE age > 30;", "sql", ""),
    ("```postgresql\nSELECT id FROM t LIMIT 1;\n```", "sql", ""),
    ("SELECT * FROM users WHERE", "sql",
     "Required keyword: 'this' missing for <class 'sqlglot.expressions.query.Where'> at line 1"),
    ("hello world", "sql", "'hello AS world' is not a SQL statement"),
    ("```bash\nls -l\n```\n```text\nfile\n```", "python", "no python code: the output's fenced blocks are tagged "
                                                           "bash, text"),
], ids=["json", "bad json", "structured json", "yaml", "bad yaml", "prose as yaml", "sql", "sql dialect tag",
        "bad sql", "no sql statement", "no block of the language"])
async def test_each_language_parses_with_a_real_parser(output: Any, language: str, reason: str) -> None:
    [(check, passed, said)] = await checked(output, language=language)
    assert (check, passed, said) == (f"parses:{language}", not reason or reason == "structured output", reason)


async def test_a_failed_attempt_names_each_failed_check_on_one_line() -> None:
    checks = await check_outcome(spec(language="python", lint=True, tests=TESTS, max_length=20), UNUSED)
    assert failure_line(checks) == (
        "outcome check failed: max_length: expected at most 20 characters, got 76; output: '```python\\nimport "
        "os\\n\\n\\ndef add(a, b):\\n    total = a + b\\n    return a + b\\n```\\n'; lint:ruff: 2 findings: F401, "
        "F841; code line 1: F401 `os` imported but unused; code line 5: F841 Local variable `total` is assigned to "
        "but never used")
    assert checks_line(checks) == ("checks: max_length ✗ (expected at most 20 characters, got 76), parses:python ✓, "
                                   "lint:ruff ✗ (2 findings: F401, F841), tests ✓ (3 of 3 passed)")


def test_a_long_reason_is_cut_in_the_checks_line() -> None:
    line = checks_line([CheckResult("pattern", False, "expected the output to match " + "x" * 100)])
    assert line == "checks: pattern ✗ (expected the output to match " + "x" * 50 + "…)"


# ---- the validator refuses what cannot be checked ------------------------------------------------


def problems(**expect: Any) -> list[tuple[str, str | None, str | None]]:
    task = TaskSpec(id="gen", type="noop", expect=Expectations(**expect))
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=[task])
    return [(p.message, p.task_id, p.field) for p in validate_workflow(submission, Settings())]


@pytest.mark.parametrize(("expect", "message", "field"), [
    ({"json_schema": {"type": "nope"}},
     "expect.json_schema is not a valid JSON Schema: 'nope' is not valid under any of the given schemas at $.type",
     "expect.json_schema"),
    ({"json_schema": {"properties": {"a": {"minimum": "zero"}}}},
     "expect.json_schema is not a valid JSON Schema: 'zero' is not of type 'number' at $.properties.a.minimum",
     "expect.json_schema"),
    ({"json_schema": {"$ref": "https://example.com/person.json"}},
     "expect.json_schema is not a valid JSON Schema: $ref 'https://example.com/person.json' is not in the schema "
     "(schemas elsewhere are not fetched)", "expect.json_schema"),
    ({"json_schema": {"$ref": "#/$defs/person"}},
     "expect.json_schema is not a valid JSON Schema: $ref '#/$defs/person' points to nothing in the schema",
     "expect.json_schema"),
    ({"language": "rust"}, "expect.language 'rust' is not one the checks parse; known: json, python, sql, yaml",
     "expect.language"),
    ({"lint": True}, "expect.lint needs expect.language: python (ruff lints Python code); expect.language is not set",
     "expect.lint"),
    ({"language": "sql", "lint": True},
     "expect.lint needs expect.language: python (ruff lints Python code); expect.language is 'sql'", "expect.lint"),
    ({"language": "json", "tests": "def test_a():\n    pass\n"},
     "expect.tests needs expect.language: python (the tests run against Python code); expect.language is 'json'",
     "expect.tests"),
    ({"language": "python", "tests": "def test_a(:\n    pass\n"},
     "expect.tests does not parse as Python: invalid syntax at line 1", "expect.tests"),
    ({"language": "python", "tests": "assert add(1, 2) == 3\n"},
     "expect.tests defines no test function: write top-level functions named test_… that assert", "expect.tests"),
    ({"sections": ["Design", " "]}, "expect.sections[1] is empty: name a heading", "expect.sections[1]"),
    ({"sections": ["Design", "design "]}, "expect.sections names 'design' twice", "expect.sections[1]"),
], ids=["schema keyword", "schema value", "remote ref", "dangling ref", "unknown language", "lint without language",
        "lint for sql", "tests for json", "tests that do not parse", "tests without a test", "empty section",
        "repeated section"])
def test_the_validator_refuses_expectations_that_cannot_be_checked(expect: dict[str, Any], message: str,
                                                                    field: str) -> None:
    assert problems(**expect) == [(message, "gen", field)]


def test_the_validator_accepts_every_check_together() -> None:
    assert problems(contains=["def"], min_length=10, json_schema=SCHEMA, sections=["Design"], language="python",
                    lint=True, tests=TESTS) == []
