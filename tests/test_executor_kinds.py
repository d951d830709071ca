"""One attempt of each task kind, without NATS: noop, sleep, echo, templates, time limits, python tasks."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from actors.executor import Outcome, TaskError
from actors.registry import TASK_KINDS
from config import Settings
from events import TaskSpec
from tests.support import attempt, wait_until

SETTINGS = Settings(python_modules=("tests.pytasks",))


def task(type_: str, description: str = "", **parameters: Any) -> TaskSpec:
    """A task of `type_`, granted the tool its kind uses (tests/test_grants.py tests the grant)."""
    kind = TASK_KINDS.get(type_)
    tools = [kind.tool] if kind is not None and kind.tool is not None else []
    return TaskSpec(id="t", type=type_, description=description, parameters=parameters, tools=tools)


async def run(spec: TaskSpec, inputs: dict[str, Any] | None = None, *, timeout: float = 30.0,
              settings: Settings = SETTINGS) -> Outcome:
    return await attempt(spec, inputs or {}, settings, timeout=timeout)


async def failure(spec: TaskSpec, inputs: dict[str, Any] | None = None, *, timeout: float = 30.0,
                  settings: Settings = SETTINGS) -> TaskError:
    with pytest.raises(TaskError) as caught:
        await run(spec, inputs, timeout=timeout, settings=settings)
    return caught.value


async def test_noop_succeeds_with_no_output() -> None:
    assert await run(task("noop")) == Outcome(output=None)


async def test_sleep_waits_the_given_seconds_and_reports_them() -> None:
    started = time.monotonic()
    outcome = await run(task("sleep", seconds=0.2))
    assert time.monotonic() - started >= 0.2
    assert outcome.output == {"slept": 0.2}


async def test_sleep_refuses_a_negative_duration() -> None:
    error = await failure(task("sleep", seconds=-1))
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert str(error) == "parameters.seconds must be a number between 0 and 86400, not -1"


async def test_sleep_refuses_more_than_a_day() -> None:
    error = await failure(task("sleep", seconds=1e12))
    assert (error.kind, str(error)) == ("bad_request", "parameters.seconds must be a number between 0 and 86400, "
                                                       "not 1000000000000.0")


async def test_echo_returns_its_text_parameter() -> None:
    assert (await run(task("echo", "ignored", text="hello"))).output == "hello"


async def test_echo_returns_a_non_string_text_unchanged() -> None:
    assert (await run(task("echo", text={"n": [1, 2]}))).output == {"n": [1, 2]}


async def test_echo_without_text_returns_its_rendered_description() -> None:
    outcome = await run(task("echo", "plan: {{ tasks.design.output }}"), {"design": "three layers"})
    assert outcome.output == "plan: three layers"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{tasks.a.output}}", "alpha"),
        ("{{   tasks.a.output   }}!", "alpha!"),
        ("{{ tasks.n.output }} + {{ tasks.n.output }}", "42 + 42"),
        ("{{ tasks.obj.output }}", '{"k":[1,true,null]}'),
        ("{{ tasks.none.output }}", "null"),
        ("no references {{ here }}", "no references {{ here }}"),
    ],
)
async def test_templates_insert_strings_as_is_and_anything_else_as_compact_json(template: str, expected: str) -> None:
    inputs = {"a": "alpha", "n": 42, "obj": {"k": [1, True, None]}, "none": None}
    assert (await run(task("echo", text=template), inputs)).output == expected


async def test_templates_render_strings_nested_in_lists_and_objects() -> None:
    text = {"items": ["{{ tasks.a.output }}", 3, {"deep": "x{{tasks.a.output}}"}]}
    outcome = await run(task("echo", text=text), {"a": "A"})
    assert outcome.output == {"items": ["A", 3, {"deep": "xA"}]}


async def test_a_reference_to_a_task_that_is_not_a_dependency_is_a_bad_request() -> None:
    error = await failure(task("echo", "see {{ tasks.ghost.output }}"), {"a": "alpha"})
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert str(error) == (
        "description: {{ tasks.ghost.output }} refers to task 'ghost', which is not a direct dependency of this "
        "task: add 'ghost' to its dependencies (a task receives only its direct dependencies' outputs)")


async def test_an_unknown_reference_in_a_nested_parameter_names_where_it_is() -> None:
    error = await failure(task("echo", text={"items": ["ok", "{{tasks.ghost.output}}"]}))
    assert str(error) == ("parameters.text.items[1]: {{ tasks.ghost.output }} refers to task 'ghost', "
                          "which is not a direct dependency of this task: add 'ghost' to its dependencies "
                          "(a task receives only its direct dependencies' outputs)")


async def test_an_unknown_task_type_is_a_bad_request() -> None:
    error = await failure(task("teleport"))
    assert (error.kind, error.retryable, str(error)) == ("bad_request", False, "unknown task type 'teleport'")


async def test_a_task_over_its_time_limit_fails_with_a_retryable_timeout() -> None:
    started = time.monotonic()
    error = await failure(task("sleep", seconds=5), timeout=0.2)
    assert time.monotonic() - started < 2
    assert (error.kind, error.retryable, error.retry_after) == ("timeout", True, None)
    assert str(error) == "timed out after 0.2s"


async def test_an_llm_task_without_a_configured_model_is_a_bad_request() -> None:
    error = await failure(task("llm", "hi"))
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert str(error) == (
        "no LLM is configured: set a provider's key (e.g. GEMINI_API_KEY or GROQ_API_KEY_1; docs/llm.md lists "
        "the providers) or YMERA_LLM_BASE_URL (any OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for "
        "Ollama) with YMERA_LLM_MODEL; or give the task both base_url and model parameters")


# -- python tasks ------------------------------------------------------------------------------


async def test_python_task_returns_the_functions_result_despite_its_prints() -> None:
    outcome = await run(task("python", function="tests.pytasks:add", args={"a": 2, "b": 3}))
    assert outcome == Outcome(output=5)


async def test_python_task_cannot_read_any_providers_key_or_the_key_encryption_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GROQ_API_KEY_1", "GEMINI_API_KEY", "YMERA_LLM_API_KEY", "YMERA_KEK", "MY_SETTING"):
        monkeypatch.setenv(name, "secret")
    outcome = await run(task("python", function="tests.pytasks:secrets_seen"))
    assert outcome == Outcome(output=["MY_SETTING"])  # other settings pass through


async def test_python_task_awaits_a_coroutine_function() -> None:
    outcome = await run(task("python", function="tests.pytasks:shout", args={"text": "{{ tasks.a.output }}"}),
                        {"a": "quiet"})
    assert outcome.output == "QUIET"


async def test_python_task_passes_dependency_outputs_to_a_function_taking_inputs() -> None:
    outcome = await run(task("python", function="tests.pytasks:with_inputs", args={"key": "a"}),
                        {"a": {"rows": 3}})
    assert outcome.output == {"rows": 3}


async def test_python_task_exception_is_a_retryable_error_named_by_its_type() -> None:
    error = await failure(task("python", function="tests.pytasks:fail", args={"message": "boom"}))
    assert (error.kind, error.retryable, str(error)) == ("error", True, "ValueError: boom")
    assert error.detail is not None
    assert 'raise ValueError(message)' in error.detail


async def test_python_task_over_its_time_limit_kills_the_child_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    spec = task("python", function="tests.pytasks:slow", args={"seconds": 30, "pid_file": str(pid_file)})
    started = time.monotonic()
    error = await failure(spec, timeout=2)
    assert time.monotonic() - started < 6
    assert (error.kind, error.retryable, str(error)) == ("timeout", True, "timed out after 2s")
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: no such process any more


async def test_a_python_task_whose_process_dies_is_a_retryable_error_quoting_its_last_words() -> None:
    error = await failure(task("python", function="tests.pytasks:crash", args={"code": 3}))
    assert (error.kind, error.retryable) == ("error", True)
    assert str(error) == "python task process exited with code 3 without an answer: about to crash"


async def test_cancelling_a_python_task_kills_its_child_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    spec = task("python", function="tests.pytasks:slow", args={"seconds": 30, "pid_file": str(pid_file)})
    attempt = asyncio.create_task(run(spec))
    await wait_until(pid_file.exists, timeout=10, what="the child to start")
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


@pytest.mark.parametrize(
    ("function", "allowed", "message"),
    [
        ("os:getcwd", ("tests.pytasks",),
         "module 'os' is not allowed for python tasks (YMERA_PYTHON_MODULES allows: tests.pytasks)"),
        ("tests.pytasks_evil:add", ("tests.pytasks",),
         "module 'tests.pytasks_evil' is not allowed for python tasks (YMERA_PYTHON_MODULES allows: tests.pytasks)"),
        ("tests.pytasks:add", (),
         "module 'tests.pytasks' is not allowed for python tasks (YMERA_PYTHON_MODULES allows: none)"),
    ],
)
async def test_python_task_refuses_a_module_outside_the_allow_list(
        function: str, allowed: tuple[str, ...], message: str) -> None:
    error = await failure(task("python", function=function), settings=Settings(python_modules=allowed))
    assert (error.kind, error.retryable, str(error)) == ("bad_request", False, message)


async def test_python_task_allows_a_sub_module_of_an_allowed_entry() -> None:
    outcome = await run(task("python", function="tests.pytasks:add", args={"a": 1, "b": 1}),
                        settings=Settings(python_modules=("tests",)))
    assert outcome.output == 2


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "parameters.function must be 'package.module:function', not None"),
        ({"function": "tests.pytasks.add"}, "parameters.function must be 'package.module:function', "
                                            "not 'tests.pytasks.add'"),
        ({"function": "tests.pytasks:missing"},
         "cannot import tests.pytasks:missing: AttributeError: module 'tests.pytasks' has no attribute 'missing'"),
        ({"function": "tests.pytasks.nothere:f"},
         "cannot import tests.pytasks.nothere:f: ModuleNotFoundError: No module named 'tests.pytasks.nothere'; "
         "'tests.pytasks' is not a package"),
        ({"function": "tests.pytasks:add", "args": {"a": 1}},
         "tests.pytasks:add cannot take these arguments: TypeError: missing a required argument: 'b'"),
        ({"function": "tests.pytasks:add", "args": [1, 2]}, "parameters.args must be an object, not list"),
    ],
)
async def test_python_task_with_a_wrong_function_or_arguments_is_a_bad_request(
        parameters: dict[str, Any], message: str) -> None:
    error = await failure(task("python", **parameters))
    assert (error.kind, error.retryable, str(error)) == ("bad_request", False, message)


async def test_python_task_returning_something_json_cannot_hold_fails_with_a_clear_message() -> None:
    error = await failure(task("python", function="tests.pytasks:returns_object"))
    assert (error.kind, error.retryable) == ("error", False)
    assert str(error) == ("tests.pytasks:returns_object returned output that is not JSON: "
                          "Object of type Widget is not JSON serializable")
