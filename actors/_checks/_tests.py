"""`expect.tests`: a task's test functions run against the Python code in its output, in the
code sandbox (`tools.run_code`: its own process, no network, rlimits, a wall-clock limit).

The code is loaded as the module `solution` (so `import solution` and `from solution import f`
work) and its top-level names are in the tests' globals too; its `if __name__ == "__main__"`
block does not run. Every top-level function of the tests whose name starts with `test` is
called, in the order they are defined (an `async def` one is run to its end); one passes when it
returns without raising. What the code and the tests print goes to stderr, never into the report.

This is a quality check, not a security boundary: the sandbox is that. Code written to fool its
own tests could, by reading this runner, forge its report; a model's honest mistakes cannot.
"""

from __future__ import annotations

import ast
import secrets

import msgspec

import tools
from events import CheckResult

__all__ = ["TESTS_SECONDS", "run_tests", "test_names"]

TESTS_SECONDS = 10.0
_LIMITS = tools.Limits(time=TESTS_SECONDS, cpu=int(TESTS_SECONDS), output=256 * 1024)
_SHOWN = 3  # failures named in a reason

# The child: read the report's marker, load the solution, run each test, report on the real stdout.
_RUNNER = r'''
import asyncio, inspect, json, sys, traceback, types

def _error(exc):
    text = " ".join(str(exc).split())[:200]
    line = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in ("tests.py", "solution.py"):
            line = f" ({frame.filename} line {frame.lineno})"
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__) + line

def _main():
    marker = sys.stdin.readline().strip()
    real, sys.stdout = sys.stdout, sys.stderr
    report = {"stage": "solution", "error": "", "passed": [], "failed": []}
    solution = types.ModuleType("solution")
    solution.__file__ = "solution.py"
    sys.modules["solution"] = solution
    try:
        exec(compile(SOLUTION, "solution.py", "exec"), solution.__dict__)
        report["stage"] = "tests"
        namespace = {k: v for k, v in vars(solution).items() if not k.startswith("__")}
        namespace["__name__"] = "tests"
        exec(compile(TESTS, "tests.py", "exec"), namespace)
        report["stage"] = "run"
    except BaseException as exc:
        report["error"] = _error(exc)
    else:
        for name, test in list(namespace.items()):
            if not (name.startswith("test") and inspect.isfunction(test) and test.__module__ == "tests"):
                continue
            try:
                result = test()
                if inspect.isawaitable(result):
                    asyncio.run(result)
            except BaseException as exc:
                report["failed"].append([name, _error(exc)])
            else:
                report["passed"].append(name)
    real.write(marker + " " + json.dumps(report) + "\n")
    real.flush()

_main()
'''


class _Report(msgspec.Struct):
    stage: str
    error: str
    passed: list[str]
    failed: list[tuple[str, str]]


def test_names(tests: str) -> list[str]:
    """The test functions `tests` defines at its top level (it must parse as Python)."""
    return [node.name for node in ast.parse(tests).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")]


async def run_tests(code: str, tests: str) -> CheckResult:
    """Run `tests` against `code` in the sandbox; passes when every test does."""
    marker = secrets.token_hex(16)
    program = f"SOLUTION = {code!r}\nTESTS = {tests!r}\n{_RUNNER}"
    try:
        ran = await tools.run_code(program, limits=_LIMITS, stdin=marker + "\n", on_output_cap="truncate")
    except tools.ToolError as exc:
        return CheckResult("tests", False, f"not run to the end: the sandbox {exc.reason}")
    line = next((x for x in reversed(ran.stdout.splitlines()) if x.startswith(marker + " ")), None)
    if line is None:
        tail = ran.stderr.strip().splitlines()
        return CheckResult("tests", False, f"the run ended without a report (exit {ran.exit_code}): "
                                           f"{tail[-1][:200] if tail else 'no error output'}")
    report = msgspec.json.decode(line[len(marker) + 1 :], type=_Report)
    if report.stage == "solution":
        return CheckResult("tests", False, f"not run: the code fails as it loads: {report.error}")
    if report.stage == "tests":
        return CheckResult("tests", False, f"not run: the tests fail as they load: {report.error}")
    total = len(report.passed) + len(report.failed)
    if not report.failed:
        return CheckResult("tests", total > 0, f"{total} of {total} passed" if total else "no test functions ran")
    shown = "; ".join(f"{name}: {error}" for name, error in report.failed[:_SHOWN])
    more = f"; and {len(report.failed) - _SHOWN} more" if len(report.failed) > _SHOWN else ""
    return CheckResult("tests", False, f"{len(report.failed)} of {total} failed; {shown}{more}")
