"""Everything that can be wrong with a submitted workflow, found in a few linear passes.

`validate_workflow` reports every problem at once, each naming its task and field, so a user
fixes a submission in one round instead of one error at a time.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

import llm
from actors import registry
from actors._checks import LANGUAGES, schema_problem, test_names
from config import Settings
from events import InvalidId, Problem, RetryPolicy, TaskSpec, WorkflowSubmitted, check_workflow_id

from ._plan import cycles, levels

__all__ = ["validate_workflow"]

_DEFAULT_RETRY = RetryPolicy()
_WORKFLOW = -1  # the position of problems that belong to no task: they come first

# (position of the task in the submission, field, problem); sorted by the first two at the end.
_Found = list[tuple[int, str, Problem]]


def validate_workflow(submission: WorkflowSubmitted, settings: Settings) -> list[Problem]:
    """Every problem of `submission`, ordered by task (as submitted), then field; [] if it is runnable."""
    tasks = submission.tasks
    found: _Found = []
    _check_workflow(submission, settings, found)
    # Each id names its first task; later tasks with the same id are reported, not looked up.
    first = {tasks[i].id: i for i in range(len(tasks) - 1, -1, -1)}
    templated: list[int] = []
    for i, task in enumerate(tasks):
        if first[task.id] != i:
            _add(found, i, task, "id", f"duplicate task id {task.id!r}: task ids must be unique")
        # A replayed task's calls are answered from the recorded run: its provider need not be configured.
        replayed = submission.replay_of is not None and task.id not in submission.live_tasks
        _check_task(task, i, settings, found, replayed)
        ds = task.dependencies
        if ds and (task.id in ds or not all(map(first.__contains__, ds))):
            _check_dependencies(task, i, first, found)
        if "{{" in task.description or (task.parameters and any(map(_has_template, task.parameters.values()))):
            templated.append(i)
    level = levels(tasks, first)
    if level is None:
        for start, path in cycles(tasks, first):
            found.append((start, "dependencies", Problem(f"cycle: {path}", tasks[start].id, "dependencies")))
    for i in templated:
        _check_references(tasks[i], i, first, found)
    found.sort(key=lambda f: (f[0], f[1]))
    return [problem for _, _, problem in found]


_last: list[tuple[Settings, llm.Models]] = []


def _models(settings: Settings) -> llm.Models:
    """Where an LLM task's calls would go, as the executor resolves them (the same settings, the same answer)."""
    if not _last or _last[0][0] is not settings:
        _last[:] = [(settings, llm.Models(settings, llm.Catalogue.load(settings.models_file)))]
    return _last[0][1]


def _add(found: _Found, i: int, task: TaskSpec, field: str, message: str) -> None:
    found.append((i, field, Problem(message, task.id, field)))


def _check_workflow(submission: WorkflowSubmitted, settings: Settings, found: _Found) -> None:
    try:  # the decoder let it through as an event's workflow id; a user's workflow may not have it
        check_workflow_id(submission.workflow_id)
    except InvalidId as exc:
        found.append((_WORKFLOW, "workflow_id", Problem(str(exc), None, "workflow_id")))
    count, limit = len(submission.tasks), settings.max_tasks_per_workflow
    if count == 0:
        found.append((_WORKFLOW, "tasks", Problem("workflow has no tasks", None, "tasks")))
    if count > limit:
        message = f"workflow has {count} tasks, more than the limit of {limit} (YMERA_MAX_TASKS_PER_WORKFLOW)"
        found.append((_WORKFLOW, "tasks", Problem(message, None, "tasks")))
    parallel = submission.max_parallel_tasks
    if parallel is not None and parallel < 1:
        message = f"max_parallel_tasks must be at least 1, got {parallel}"
        found.append((_WORKFLOW, "max_parallel_tasks", Problem(message, None, "max_parallel_tasks")))
    budget = submission.budget_usd
    if budget is not None and not 0 <= budget < math.inf:
        message = f"budget_usd must be a number of dollars, at least 0, got {budget:g}"
        found.append((_WORKFLOW, "budget_usd", Problem(message, None, "budget_usd")))
    threshold = submission.rerun_below_quality
    if threshold is not None and not 0 <= threshold <= 1:
        message = f"rerun_below_quality must be true, false or a quality between 0 and 1, got {threshold:g}"
        found.append((_WORKFLOW, "rerun_below_quality", Problem(message, None, "rerun_below_quality")))


def _check_fallbacks(task: TaskSpec, i: int, settings: Settings, found: _Found) -> None:
    """`fallback_models`: a list of models, each one a call could be made to here."""
    fallbacks = task.parameters["fallback_models"]
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) and m for m in fallbacks):
        _add(found, i, task, "parameters.fallback_models",
             f"fallback_models must be a list of model names, got {fallbacks!r}")
        return
    for model in fallbacks:
        problem = _models(settings).problem(model)
        if problem is not None:
            _add(found, i, task, "parameters.fallback_models", problem)


def _check_task(task: TaskSpec, i: int, settings: Settings, found: _Found, replayed: bool = False) -> None:
    kind = registry.TASK_KINDS.get(task.type)
    if kind is None:
        known = ", ".join(sorted(registry.TASK_KINDS))  # read now: a kind may be registered after import
        _add(found, i, task, "type", f"unknown task type {task.type!r}; known types: {known}")
    else:
        agent = settings.agents.get(task.agent) if task.agent is not None else None
        if kind.agent and task.agent is None:
            _add(found, i, task, "agent", f"task type {task.type!r} needs an agent; {settings.agents.known()}")
        elif kind.agent and agent is None:
            _add(found, i, task, "agent", f"unknown agent {task.agent!r}; {settings.agents.known()}")
        elif kind.agent and agent is not None and not agent.takes(task.type):
            _add(found, i, task, "agent", f"agent {task.agent!r} does not take task type {task.type!r}; it takes "
                                          + ", ".join(agent.task_types))
        if task.parameters or kind.required_params:
            _check_parameters(task, i, kind, found)
        if kind.llm and not replayed:
            params = task.parameters
            model = params.get("model") or (agent.model if agent is not None else None)
            problem = _models(settings).problem(str(model) if model else None,
                                                str(params["base_url"]) if params.get("base_url") else None)
            if problem is not None:
                _add(found, i, task, "parameters.model" if "model" in params else "type", problem)
            if "fallback_models" in params:
                _check_fallbacks(task, i, settings, found)
        if kind.name == "python":
            _check_python(task, i, settings, found)
        if task.tools or registry.tools_used(task, kind):
            _check_tools(task, i, kind, found)
    timeout = task.timeout_seconds
    if timeout is not None and not 0 < timeout <= registry.MAX_TIMEOUT_SECONDS:
        _add(found, i, task, "timeout_seconds", f"timeout_seconds must be greater than 0 and at most "
                                                f"{registry.MAX_TIMEOUT_SECONDS:g} (24 hours), got {timeout:g}")
    if task.retry != _DEFAULT_RETRY:
        _check_retry(task, i, found)
    if task.expect is not None:
        _check_expectations(task, i, found)


def _check_parameters(task: TaskSpec, i: int, kind: registry.TaskKind, found: _Found) -> None:
    params = task.parameters
    for spec in kind.params:
        field = f"parameters.{spec.name}"
        if spec.name not in params:
            if spec.required:
                _add(found, i, task, field, f"missing required parameter {spec.name!r} ({spec.expected()})")
        elif not spec.accepts(params[spec.name]):
            value = params[spec.name]
            numeric = spec.type in ("number", "integer")
            shown = (numeric and registry.number_in_string(value, spec.type == "integer")) or _show(value)
            _add(found, i, task, field, f"parameter {spec.name!r} must be {spec.expected()}, got {shown}")
    names = kind.param_names
    if params.keys() - names:
        takes = "takes no parameters" if not kind.params else "takes: " + ", ".join(p.name for p in kind.params)
        for name in params:
            if name not in names:
                _add(found, i, task, f"parameters.{name}",
                     f"unknown parameter {name!r}: task type {kind.name!r} {takes}")


def _check_python(task: TaskSpec, i: int, settings: Settings, found: _Found) -> None:
    function = task.parameters.get("function")
    if not isinstance(function, str) or ":" not in function:
        return  # reported as ill-typed or missing
    module = function.partition(":")[0]
    allowed = settings.python_modules
    if not allowed:
        _add(found, i, task, "parameters.function", f"python tasks are disabled: no module is allowed; "
                                                    f"set YMERA_PYTHON_MODULES=pkg1,pkg2 to allow {module!r} "
                                                    f"or its package")
    elif not registry.module_allowed(module, allowed):
        _add(found, i, task, "parameters.function", f"module {module!r} is not allowed for python tasks; allowed: "
                                                    f"{', '.join(allowed)} and their sub-modules "
                                                    f"(YMERA_PYTHON_MODULES)")


def _check_tools(task: TaskSpec, i: int, kind: registry.TaskKind, found: _Found) -> None:
    """The tools the task is granted, and the ones its kind uses: `registry.grant_problem`, the
    rule the executor applies again before each attempt."""
    for problem in registry.tool_problems(task, kind):
        _add(found, i, task, "tools", problem)
    missing = registry.grant_problem(task, kind)
    if missing is not None:
        _add(found, i, task, "tools", missing)


def _check_retry(task: TaskSpec, i: int, found: _Found) -> None:
    retry = task.retry
    if not 1 <= retry.max_attempts <= 10:
        _add(found, i, task, "retry.max_attempts",
             f"retry.max_attempts must be between 1 and 10, got {retry.max_attempts}")
    for field, value in (("initial_delay_seconds", retry.initial_delay_seconds),
                         ("max_delay_seconds", retry.max_delay_seconds)):
        if not 0 <= value <= registry.MAX_RETRY_DELAY_SECONDS:
            _add(found, i, task, f"retry.{field}", f"retry.{field} must be between 0 and "
                                                   f"{registry.MAX_RETRY_DELAY_SECONDS:g} (24 hours), got {value:g}")
    if not retry.backoff_multiplier >= 1:
        _add(found, i, task, "retry.backoff_multiplier",
             f"retry.backoff_multiplier must be >= 1, got {retry.backoff_multiplier:g}")


def _check_expectations(task: TaskSpec, i: int, found: _Found) -> None:
    expect = task.expect
    assert expect is not None
    low, high = expect.min_length, expect.max_length
    if low is not None and low < 0:
        _add(found, i, task, "expect.min_length", f"expect.min_length must be >= 0, got {low}")
    if high is not None and high < 0:
        _add(found, i, task, "expect.max_length", f"expect.max_length must be >= 0, got {high}")
    if low is not None and high is not None and low > high:
        _add(found, i, task, "expect.min_length",
             f"expect.min_length ({low}) is greater than expect.max_length ({high})")
    if expect.pattern is not None:
        try:
            re.compile(expect.pattern)
        except re.error as exc:
            _add(found, i, task, "expect.pattern",
                 f"expect.pattern {expect.pattern!r} is not a valid regular expression: {exc}")
    if expect.json_schema is not None and (problem := schema_problem(expect.json_schema)) is not None:
        _add(found, i, task, "expect.json_schema", f"expect.json_schema is not a valid JSON Schema: {problem}")
    if expect.sections:
        _check_sections(task, i, expect.sections, found)
    _check_code_expectations(task, i, found)


def _check_sections(task: TaskSpec, i: int, sections: list[str], found: _Found) -> None:
    seen: set[str] = set()
    for n, name in enumerate(sections):
        key = " ".join(name.split()).casefold()
        if not key:
            _add(found, i, task, f"expect.sections[{n}]", f"expect.sections[{n}] is empty: name a heading")
        elif key in seen:
            _add(found, i, task, f"expect.sections[{n}]", f"expect.sections names {name.strip()!r} twice")
        seen.add(key)


def _check_code_expectations(task: TaskSpec, i: int, found: _Found) -> None:
    """`language` one the checks parse; `lint` and `tests` only for Python, the tests themselves
    Python that parses and defines a test function."""
    expect = task.expect
    assert expect is not None
    language = expect.language
    if language is not None and language not in LANGUAGES:
        _add(found, i, task, "expect.language",
             f"expect.language {language!r} is not one the checks parse; known: {', '.join(sorted(LANGUAGES))}")
    given = f"expect.language is {language!r}" if language is not None else "expect.language is not set"
    if expect.lint and language != "python":
        _add(found, i, task, "expect.lint",
             f"expect.lint needs expect.language: python (ruff lints Python code); {given}")
    if expect.tests is None:
        return
    if language != "python":
        _add(found, i, task, "expect.tests",
             f"expect.tests needs expect.language: python (the tests run against Python code); {given}")
    try:
        names = test_names(expect.tests)
    except SyntaxError as exc:
        _add(found, i, task, "expect.tests",
             f"expect.tests does not parse as Python: {exc.msg} at line {exc.lineno}")
        return
    if not names:
        _add(found, i, task, "expect.tests",
             "expect.tests defines no test function: write top-level functions named test_… that assert")


def _check_dependencies(task: TaskSpec, i: int, first: dict[str, int], found: _Found) -> None:
    for dep in dict.fromkeys(task.dependencies):
        if dep == task.id:
            _add(found, i, task, "dependencies", "depends on itself")
        elif dep not in first:
            _add(found, i, task, "dependencies", f"depends on unknown task {dep!r}")


def _check_references(task: TaskSpec, i: int, first: dict[str, int], found: _Found) -> None:
    """Each `{{ tasks.<id>.output }}` in the task must name a direct dependency: `registry.reference_problem`."""
    texts = [("description", task.description)]
    texts += [(f"parameters.{name}", s) for name, value in task.parameters.items() for s in _strings(value)]
    dependencies = set(task.dependencies)
    for field, text in texts:
        for ref in dict.fromkeys(registry.template_references(text)):
            problem = registry.reference_problem(ref, dependencies, task_id=task.id, task_ids=first)
            if problem is not None:
                _add(found, i, task, field, problem)


def _has_template(value: Any) -> bool:
    return any("{{" in s for s in _strings(value))


def _strings(value: Any) -> list[str]:
    """Every string inside a parameter value (a JSON value), nested ones included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _show(value: Any) -> str:
    """A parameter value as JSON, bounded, for a message."""
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
