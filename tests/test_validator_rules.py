"""The validator's rules: every problem a user can see, with its exact text, task and field."""

from __future__ import annotations

from typing import Any

import pytest

import events
from actors import registry
from actors.executor import check_outcome
from actors.validator import validate_workflow
from config import BUILTIN_AGENTS, LLMSettings, Settings
from events import Expectations, RetryPolicy, TaskSpec

LLM = LLMSettings(base_url="http://localhost:11434/v1", model="m")
SETTINGS = Settings(llm=LLM, python_modules=("json", "mypkg.tools"))
TYPES = ("analysis, code, code_generation, code_review, command, design, documentation, echo, files, git, http, llm, "
         "mcp, noop, python, research, sleep, sql, summarization, testing")
AGENTS = "built-in agents: analyst, architect, coding_agent, developer, researcher, reviewer, tester, writer"
NO_LLM = ("no LLM is configured: set a provider's key (e.g. GEMINI_API_KEY or GROQ_API_KEY_1; docs/llm.md lists "
          "the providers) or YMERA_LLM_BASE_URL (any OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for "
          "Ollama) with YMERA_LLM_MODEL; or give the task both base_url and model parameters")
NOT_A_DEPENDENCY = ("which is not a direct dependency of this task: add 'b' to its dependencies "
                    "(a task receives only its direct dependencies' outputs)")


def task(id: str = "a", type: str = "noop", **fields: Any) -> TaskSpec:
    return TaskSpec(id=id, type=type, **fields)


def submit(*tasks: TaskSpec, **fields: Any) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=list(tasks),
                                    **fields)


Found = list[tuple[str, str | None, str | None]]


def problems(*tasks: TaskSpec, settings: Settings = SETTINGS, **fields: Any) -> Found:
    found = validate_workflow(submit(*tasks, **fields), settings)
    return [(p.message, p.task_id, p.field) for p in found]


def sleep(seconds: Any) -> TaskSpec:
    return task(type="sleep", parameters={"seconds": seconds})


def llm(**parameters: Any) -> TaskSpec:
    return task(type="llm", parameters=parameters)


def python(id: str = "a", **fields: Any) -> TaskSpec:
    """A python task, granted the tool it uses (tests/test_grants.py tests the grant)."""
    return task(id, type="python", tools=["python"], **fields)


def ref(id: str) -> str:
    return "{{ tasks.%s.output }}" % id  # noqa: UP031


CASES: list[tuple[str, list[TaskSpec], dict[str, Any], Settings, tuple[str, str | None, str | None]]] = [
    ("no tasks", [], {}, SETTINGS, ("workflow has no tasks", None, "tasks")),
    ("too many tasks", [task("a"), task("b"), task("c")], {}, Settings(llm=LLM, max_tasks_per_workflow=2),
     ("workflow has 3 tasks, more than the limit of 2 (YMERA_MAX_TASKS_PER_WORKFLOW)", None, "tasks")),
    ("max_parallel_tasks below 1", [task()], {"max_parallel_tasks": 0}, SETTINGS,
     ("max_parallel_tasks must be at least 1, got 0", None, "max_parallel_tasks")),
    ("negative budget", [task()], {"budget_usd": -1.0}, SETTINGS,
     ("budget_usd must be a number of dollars, at least 0, got -1", None, "budget_usd")),
    ("quality threshold above 1", [task()], {"rerun_below_quality": 1.5}, SETTINGS,
     ("rerun_below_quality must be true, false or a quality between 0 and 1, got 1.5", None, "rerun_below_quality")),
    ("negative quality threshold", [task()], {"rerun_below_quality": -0.1}, SETTINGS,
     ("rerun_below_quality must be true, false or a quality between 0 and 1, got -0.1", None,
      "rerun_below_quality")),
    ("fallback_models not a list", [llm(model="m", fallback_models="groq/x")], {}, SETTINGS,
     ("fallback_models must be a list of model names, got 'groq/x'", "a", "parameters.fallback_models")),
    ("a fallback model no provider here serves", [llm(model="m", fallback_models=["openai/gpt-4o"])], {}, SETTINGS,
     ("model 'openai/gpt-4o': provider openai is not configured: set OPENAI_API_KEY or OPENAI_API_KEY_1, "
      "OPENAI_API_KEY_2, ...", "a", "parameters.fallback_models")),
    ("duplicate id", [task("a"), task("a")], {}, SETTINGS,
     ("duplicate task id 'a': task ids must be unique", "a", "id")),
    ("unknown dependency", [task(dependencies=["ghost"])], {}, SETTINGS,
     ("depends on unknown task 'ghost'", "a", "dependencies")),
    ("self dependency", [task(dependencies=["a"])], {}, SETTINGS, ("depends on itself", "a", "dependencies")),
    ("cycle", [task("a", dependencies=["b"]), task("b", dependencies=["c"]), task("c", dependencies=["a"])], {},
     SETTINGS, ("cycle: a -> b -> c -> a", "a", "dependencies")),
    ("unknown type", [task(type="magic")], {}, SETTINGS,
     (f"unknown task type 'magic'; known types: {TYPES}", "a", "type")),
    ("agent type without agent", [task(type="code_review")], {}, SETTINGS,
     (f"task type 'code_review' needs an agent; {AGENTS}", "a", "agent")),
    ("unknown agent", [task(type="design", agent="wizard")], {}, SETTINGS,
     (f"unknown agent 'wizard'; {AGENTS}", "a", "agent")),
    ("missing required parameter", [task(type="sleep")], {}, SETTINGS,
     ("missing required parameter 'seconds' (a number between 0 and 86400)", "a", "parameters.seconds")),
    ("missing python function", [python()], {}, SETTINGS,
     ("missing required parameter 'function' (a string like package.module:function)", "a",
      "parameters.function")),
    ("string for a number", [sleep("5")], {}, SETTINGS,
     ("parameter 'seconds' must be a number between 0 and 86400, got \"5\"", "a", "parameters.seconds")),
    ("YAML 1.1 exponent string for a number", [sleep("1e5")], {}, SETTINGS,
     ("parameter 'seconds' must be a number between 0 and 86400, got the string '1e5' (YAML 1.1 reads 1e5 as a "
      "string; write 1.0e+5)", "a", "parameters.seconds")),
    ("sleep over a day", [sleep(86_401)], {}, SETTINGS,
     ("parameter 'seconds' must be a number between 0 and 86400, got 86401", "a", "parameters.seconds")),
    ("boolean for a number", [sleep(True)], {}, SETTINGS,
     ("parameter 'seconds' must be a number between 0 and 86400, got true", "a", "parameters.seconds")),
    ("number below its minimum", [sleep(-1)], {}, SETTINGS,
     ("parameter 'seconds' must be a number between 0 and 86400, got -1", "a", "parameters.seconds")),
    ("number above its maximum", [llm(temperature=2.5)], {}, SETTINGS,
     ("parameter 'temperature' must be a number between 0 and 2, got 2.5", "a", "parameters.temperature")),
    ("float for an integer", [llm(max_tokens=1.5)], {}, SETTINGS,
     ("parameter 'max_tokens' must be an integer >= 1, got 1.5", "a", "parameters.max_tokens")),
    ("integer below its minimum", [llm(max_tokens=0)], {}, SETTINGS,
     ("parameter 'max_tokens' must be an integer >= 1, got 0", "a", "parameters.max_tokens")),
    ("number for a string", [llm(prompt=42)], {}, SETTINGS,
     ("parameter 'prompt' must be a string, got 42", "a", "parameters.prompt")),
    ("list for an object", [python(parameters={"function": "json:dumps", "args": [1]})], {},
     SETTINGS, ("parameter 'args' must be an object, got [1]", "a", "parameters.args")),
    ("python function without a module", [python(parameters={"function": "dumps"})], {}, SETTINGS,
     ("parameter 'function' must be a string like package.module:function, got \"dumps\"", "a",
      "parameters.function")),
    ("long value shown bounded", [llm(prompt=["x" * 100])], {}, SETTINGS,
     ("parameter 'prompt' must be a string, got [\"" + "x" * 37 + "…", "a", "parameters.prompt")),
    ("unknown parameter of a kind without parameters", [task(parameters={"x": 1})], {}, SETTINGS,
     ("unknown parameter 'x': task type 'noop' takes no parameters", "a", "parameters.x")),
    ("unknown parameter", [task(type="sleep", parameters={"seconds": 1, "secs": 1})], {}, SETTINGS,
     ("unknown parameter 'secs': task type 'sleep' takes: seconds", "a", "parameters.secs")),
    ("zero timeout", [task(timeout_seconds=0)], {}, SETTINGS,
     ("timeout_seconds must be greater than 0 and at most 86400 (24 hours), got 0", "a", "timeout_seconds")),
    ("timeout over a day", [task(timeout_seconds=86401)], {}, SETTINGS,
     ("timeout_seconds must be greater than 0 and at most 86400 (24 hours), got 86401", "a", "timeout_seconds")),
    ("no attempts", [task(retry=RetryPolicy(max_attempts=0))], {}, SETTINGS,
     ("retry.max_attempts must be between 1 and 10, got 0", "a", "retry.max_attempts")),
    ("too many attempts", [task(retry=RetryPolicy(max_attempts=11))], {}, SETTINGS,
     ("retry.max_attempts must be between 1 and 10, got 11", "a", "retry.max_attempts")),
    ("negative initial delay", [task(retry=RetryPolicy(initial_delay_seconds=-1))], {}, SETTINGS,
     ("retry.initial_delay_seconds must be between 0 and 86400 (24 hours), got -1", "a",
      "retry.initial_delay_seconds")),
    ("negative max delay", [task(retry=RetryPolicy(max_delay_seconds=-0.5))], {}, SETTINGS,
     ("retry.max_delay_seconds must be between 0 and 86400 (24 hours), got -0.5", "a", "retry.max_delay_seconds")),
    ("retry delay over a day", [task(retry=RetryPolicy(max_delay_seconds=1e12))], {},
     SETTINGS, ("retry.max_delay_seconds must be between 0 and 86400 (24 hours), got 1e+12", "a",
                "retry.max_delay_seconds")),
    ("shrinking backoff", [task(retry=RetryPolicy(backoff_multiplier=0.5))], {}, SETTINGS,
     ("retry.backoff_multiplier must be >= 1, got 0.5", "a", "retry.backoff_multiplier")),
    ("reference to an unknown task", [task(description=f"use {ref('ghost')}")], {}, SETTINGS,
     ("{{ tasks.ghost.output }} refers to unknown task 'ghost'", "a", "description")),
    ("reference to the task's own output", [task(type="echo", parameters={"text": ref("a")})], {}, SETTINGS,
     ("{{ tasks.a.output }} refers to this task's own output", "a", "parameters.text")),
    ("reference to a task that is not a dependency", [task("b"), llm(prompt="{{tasks.b.output}}")], {}, SETTINGS,
     (f"{{{{ tasks.b.output }}}} refers to task 'b', {NOT_A_DEPENDENCY}", "a", "parameters.prompt")),
    ("reference to a later task", [llm(prompt=ref("b")), task("b", dependencies=["a"])], {}, SETTINGS,
     (f"{{{{ tasks.b.output }}}} refers to task 'b', {NOT_A_DEPENDENCY}", "a", "parameters.prompt")),
    ("reference nested in a parameter", [task("b"), task(type="echo", parameters={"text": {"k": [ref("b")]}})],
     {}, SETTINGS, (f"{{{{ tasks.b.output }}}} refers to task 'b', {NOT_A_DEPENDENCY}", "a", "parameters.text")),
    ("python with no module allowed", [python(parameters={"function": "json:dumps"})], {},
     Settings(llm=LLM),
     ("python tasks are disabled: no module is allowed; set YMERA_PYTHON_MODULES=pkg1,pkg2 to allow 'json' "
      "or its package", "a", "parameters.function")),
    ("python module not allowed", [python(parameters={"function": "os:system"})], {}, SETTINGS,
     ("module 'os' is not allowed for python tasks; allowed: json, mypkg.tools and their sub-modules "
      "(YMERA_PYTHON_MODULES)", "a", "parameters.function")),
    ("llm without a model", [llm()], {}, Settings(), (NO_LLM, "a", "type")),
    ("agent task without a model", [task(type="research", agent="researcher")], {}, Settings(),
     (NO_LLM, "a", "type")),
    ("min_length above max_length", [task(expect=Expectations(min_length=5, max_length=2))], {}, SETTINGS,
     ("expect.min_length (5) is greater than expect.max_length (2)", "a", "expect.min_length")),
    ("negative min_length", [task(expect=Expectations(min_length=-1))], {}, SETTINGS,
     ("expect.min_length must be >= 0, got -1", "a", "expect.min_length")),
    ("negative max_length", [task(expect=Expectations(max_length=-1))], {}, SETTINGS,
     ("expect.max_length must be >= 0, got -1", "a", "expect.max_length")),
    ("pattern that does not compile", [task(expect=Expectations(pattern="("))], {}, SETTINGS,
     ("expect.pattern '(' is not a valid regular expression: missing ), unterminated subpattern at position 0",
      "a", "expect.pattern")),
]


@pytest.mark.parametrize(("tasks", "fields", "settings", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_problem_is_reported_with_its_message_task_and_field(
    tasks: list[TaskSpec], fields: dict[str, Any], settings: Settings, expected: tuple[str, str | None, str | None]
) -> None:
    assert problems(*tasks, settings=settings, **fields) == [expected]


def test_a_valid_workflow_of_every_kind_has_no_problems() -> None:
    tasks = [
        task("wait", type="sleep", parameters={"seconds": 0}, timeout_seconds=5, priority="HIGH"),
        task("say", type="echo", parameters={"text": {"any": ["json", 1]}}, dependencies=["wait"]),
        python("call", parameters={"function": "mypkg.tools.text:upper", "args": {"s": "x"}},
             retry=RetryPolicy(max_attempts=10, initial_delay_seconds=0, backoff_multiplier=1)),
        task("ask", type="llm", parameters={"prompt": f"about {ref('say')}", "temperature": 0, "max_tokens": 1},
             dependencies=["say"]),
        *(task(name, type=name, agent=agent, parameters={"language": "python"}, dependencies=["ask"],
               description=f"build on {ref('ask')}", expect=Expectations(min_length=1, max_length=1, pattern="x"))
          for name, agent in zip(sorted(registry.agent_task_types()), list(BUILTIN_AGENTS), strict=True)),
        task("read", type="files", parameters={"op": "read", "path": "a.txt"}, tools=["files"]),
        task("get", type="http", parameters={"url": "https://example.org/", "method": "GET"}, tools=["http"]),
        task("rows", type="sql", parameters={"database": "app", "sql": "UPDATE t SET a = ?", "params": [1],
                                             "write": True}, tools=["sql", "sql_write"]),
        task("run", type="command", parameters={"argv": ["ls"]}, tools=["command"]),
        task("log", type="git", parameters={"op": "log", "limit": 5}, tools=["git"]),
        task("calc", type="code", parameters={"code": "echo 1", "language": "shell"}, tools=["code", "shell"]),
        task("end", agent="ignored by noop", dependencies=["ask", "call"]),
    ]
    assert problems(*tasks, max_parallel_tasks=1) == []


def test_every_problem_of_a_workflow_is_reported_at_once_in_task_then_field_order() -> None:
    tasks = [
        task("b", type="sleep", parameters={"seconds": -1, "extra": 1}, timeout_seconds=0),
        task("a", type="code_generation", dependencies=["ghost", "c", "a"], description=ref("b")),
        task("c", type="llm", dependencies=["a"], retry=RetryPolicy(max_attempts=0)),
        task("b"),
    ]
    assert problems(*tasks, settings=Settings(), max_parallel_tasks=0) == [
        ("max_parallel_tasks must be at least 1, got 0", None, "max_parallel_tasks"),
        ("unknown parameter 'extra': task type 'sleep' takes: seconds", "b", "parameters.extra"),
        ("parameter 'seconds' must be a number between 0 and 86400, got -1", "b", "parameters.seconds"),
        ("timeout_seconds must be greater than 0 and at most 86400 (24 hours), got 0", "b", "timeout_seconds"),
        (f"task type 'code_generation' needs an agent; {AGENTS}", "a", "agent"),
        ("depends on unknown task 'ghost'", "a", "dependencies"),
        ("depends on itself", "a", "dependencies"),
        ("cycle: a -> c -> a", "a", "dependencies"),
        (f"{{{{ tasks.b.output }}}} refers to task 'b', {NOT_A_DEPENDENCY}", "a", "description"),
        (NO_LLM, "a", "type"),
        ("retry.max_attempts must be between 1 and 10, got 0", "c", "retry.max_attempts"),
        (NO_LLM, "c", "type"),
        ("duplicate task id 'b': task ids must be unique", "b", "id"),
    ]


def test_each_strongly_connected_component_reports_one_cycle() -> None:
    tasks = [
        task("a", dependencies=["b"]), task("b", dependencies=["a", "c"]), task("c", dependencies=["a"]),
        task("x", dependencies=["y"]), task("y", dependencies=["x"]), task("z", dependencies=["x"]),
    ]
    assert problems(*tasks) == [
        ("cycle: a -> b -> a", "a", "dependencies"),
        ("cycle: x -> y -> x", "x", "dependencies"),
    ]


def test_a_reserved_workflow_id_that_reached_the_validator_is_refused() -> None:
    # The event decoder accepts '_' (events of no workflow); a client publishing on its own may use it.
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="_", tasks=[task()])
    assert [(p.message, p.task_id, p.field) for p in validate_workflow(submission, SETTINGS)] == [
        ("workflow id '_' is reserved for events that belong to no workflow", None, "workflow_id")]


def test_a_task_may_use_the_outputs_of_its_direct_dependencies_only() -> None:
    # The executor is handed its direct dependencies' outputs and nothing else: a reference to
    # an ancestor further up is refused here, not found missing at run time.
    c = task("c", dependencies=["b"], description=f"{ref('a')} {{{{  tasks.b.output}}}}")
    assert problems(c, task("b", dependencies=["a"]), task("a")) == [
        ("{{ tasks.a.output }} refers to task 'a', which is not a direct dependency of this task: add 'a' to its "
         "dependencies (a task receives only its direct dependencies' outputs)", "c", "description")]
    c = task("c", dependencies=["b", "a"], description=c.description)
    assert problems(c, task("b", dependencies=["a"]), task("a")) == []


def test_the_validator_and_the_executor_apply_one_rule_to_references() -> None:
    deps = ["b"]
    for ref_id in ("a", "b", "c"):
        validator = registry.reference_problem(ref_id, set(deps), task_id="c", task_ids={"a", "b", "c"})
        executor = registry.reference_problem(ref_id, {"b": "output of b"})
        assert (validator is None) is (executor is None), ref_id


def test_a_task_may_bring_its_own_model_when_none_is_configured() -> None:
    own = {"base_url": "http://localhost:8080/v1", "model": "qwen"}
    assert problems(llm(**own), task("b", type="analysis", agent="analyst", parameters=own), settings=Settings()) == []
    assert problems(llm(model="qwen"), settings=Settings()) == [(NO_LLM, "a", "parameters.model")]


def test_a_replayed_task_needs_no_configured_provider_and_a_live_one_does() -> None:
    """`ymera replay --offline` answers a replayed task's calls from the recorded run."""
    tasks = (llm(prompt="hi"), task("b", type="llm", parameters={"prompt": "again"}))
    assert problems(*tasks, settings=Settings(), replay_of="run-1", live_tasks=["b"]) == [(NO_LLM, "b", "type")]
    assert problems(*tasks, settings=Settings(), replay_of="run-1") == []


@pytest.mark.parametrize(("function", "allowed"), [
    ("json:dumps", True), ("json.decoder:JSONDecoder", True), ("mypkg.tools:run", True),
    ("mypkg.tools.sub.deep:run", True), ("mypkg:run", False), ("jsonx:load", False), ("mypkg.toolsx:run", False),
])
def test_python_functions_come_from_allowed_modules_or_their_sub_modules(function: str, allowed: bool) -> None:
    found = problems(python(parameters={"function": function}))
    assert (found == []) is allowed


def test_a_deep_chain_submitted_backwards_is_validated_without_recursion() -> None:
    n = 50_000
    tasks = [task(f"t{i}", dependencies=[f"t{i - 1}"] if i else []) for i in reversed(range(n))]
    assert problems(*tasks) == []
    tasks.append(task("t0", dependencies=[f"t{n - 1}"]))
    assert problems(*tasks)[0] == ("duplicate task id 't0': task ids must be unique", "t0", "id")


OUTCOMES: list[tuple[str, Expectations, Any, list[str]]] = [
    ("contains", Expectations(contains=["def ", "return"]), "def f(): pass",
     ["contains: expected the output to contain 'return'; output: 'def f(): pass'"]),
    ("not_contains", Expectations(not_contains=["TODO"]), "x" * 30 + "TODO" + "y" * 100,
     ["not_contains: expected the output not to contain 'TODO'; found at character 30: …'" + "x" * 20 + "TODO"
      + "y" * 56 + "'…"]),
    ("min_length", Expectations(min_length=5), "abc",
     ["min_length: expected at least 5 characters, got 3; output: 'abc'"]),
    ("max_length", Expectations(max_length=2), "abc",
     ["max_length: expected at most 2 characters, got 3; output: 'abc'"]),
    ("pattern", Expectations(pattern=r"^\d+$"), "12a",
     ["pattern: expected the output to match '^\\\\d+$'; output: '12a'"]),
    ("json in a string", Expectations(json=True), "{nope",
     ["json: expected JSON output (an object, an array, or a string that parses as JSON); JSON is malformed: "
      "object keys must be strings (byte 1); output: '{nope'"]),
    ("json of a number", Expectations(json=True), 3,
     ["json: expected JSON output (an object, an array, or a string that parses as JSON); got int '3'"]),
    ("text rules read other outputs as JSON", Expectations(contains=['"k":1'], max_length=3), {"k": 1},
     ['max_length: expected at most 3 characters, got 7; output: \'{"k":1}\'']),
    ("long output excerpted", Expectations(contains=["zzz"]), "a" * 200,
     ["contains: expected the output to contain 'zzz'; output: '" + "a" * 80 + "'…"]),
]


async def failed_checks(spec: TaskSpec, output: Any) -> list[str]:
    """Each failed check as "check: reason" (tests/test_outcome_checks.py has the rest)."""
    return [f"{c.check}: {c.reason}" for c in await check_outcome(spec, output) if not c.passed]


@pytest.mark.parametrize(("expect", "output", "expected"), [c[1:] for c in OUTCOMES], ids=[c[0] for c in OUTCOMES])
async def test_an_outcome_is_checked_against_each_expectation(expect: Expectations, output: Any,
                                                              expected: list[str]) -> None:
    assert await failed_checks(task(expect=expect), output) == expected


@pytest.mark.parametrize("output", ['{"a": 1}', [1], {"a": 1}, "[]"])
async def test_json_outputs_pass_the_json_expectation(output: Any) -> None:
    assert await failed_checks(task(expect=Expectations(json=True)), output) == []


async def test_an_outcome_without_expectations_always_passes() -> None:
    assert await check_outcome(task(), None) == []
