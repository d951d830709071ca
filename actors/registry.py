"""Which task types exist: each one's declaration (`TaskKind`: its parameters, whether it needs
an agent or a model, the tool it uses, whether its output is untrusted) and its handler
(`run(task, inputs, ctx)`), registered together; and which tools a task may be granted
(`_grants.py`).

The one place that says so: the validator checks submissions against the declarations and
the executor runs the handlers. A new task kind is one module and one `register` call; a
handler takes what it needs (an HTTP client, key pools, MCP clients)
from the `Context` each executor builds from its settings at start, never from globals.
Which agents exist is data (`config/_agents.py`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
import msgspec

import llm
from config import MAX_TIMEOUT_SECONDS
from events import TaskSpec

from ._grants import (
    MCP_PREFIX,
    TOOLS,
    grant_problem,
    register_mcp_servers,
    register_tool,
    tool_problems,
    tools_used,
)
from ._outcome import Outcome

if TYPE_CHECKING:
    import tools
    from config import Settings

__all__ = [
    "HANDLERS",
    "MAX_RETRY_DELAY_SECONDS",
    "MAX_SLEEP_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "MCP_PREFIX",
    "NO_LLM",
    "TASK_KINDS",
    "TEMPLATE_REFERENCE",
    "TOOLS",
    "Context",
    "Handler",
    "Param",
    "TaskKind",
    "agent_task_types",
    "grant_problem",
    "module_allowed",
    "number_in_string",
    "reference_problem",
    "register",
    "register_mcp_servers",
    "register_tool",
    "template_references",
    "tool_problems",
    "tools_used",
    "untrusted_outputs",
]

ParamType = Literal["any", "string", "number", "integer", "object", "boolean"]

# What a user reads when an llm or agent task has no model: the validator refuses the
# workflow with it, and the executor fails an attempt with it should one slip through.
NO_LLM = llm.NO_LLM

# Upper bounds on what a submission may ask for: a day each. Anything longer is a mistake or
# belongs outside Ymera (and the distributor adds these to the clock: a date past year 9999
# would not even be representable).
MAX_SLEEP_SECONDS = MAX_TIMEOUT_SECONDS  # a sleep task's `seconds`: it could not outlast its time limit anyway
MAX_RETRY_DELAY_SECONDS = 86_400.0  # `retry.initial_delay_seconds` and `retry.max_delay_seconds`

# `{{ tasks.<id>.output }}` in a description or a string parameter: the output of one of the
# task's direct dependencies (see `reference_problem`).
TEMPLATE_REFERENCE = re.compile(r"\{\{\s*tasks\.([^\s.{}]+)\.output\s*\}\}")

# A number in exponent form that YAML 1.1 (PyYAML, msgspec.yaml) reads as a string: 1e12,
# 1.0e12, 2E-3. YAML 1.1 wants a dot and a signed exponent: 1.0e+12.
_EXPONENT_NUMBER = re.compile(r"([-+]?)([0-9]+)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)")

_ARTICLE = {"any": "", "string": "a ", "number": "a ", "integer": "an ", "object": "an ", "boolean": "a "}


class Param(msgspec.Struct, frozen=True):
    """One parameter of a task type: its JSON type, whether it is required, its bounds."""

    name: str
    type: ParamType
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # A string parameter must match this in full; `example` shows the shape to a user.
    pattern: str | None = None
    example: str | None = None

    def expected(self) -> str:
        """What a valid value is, as a user reads it: 'a number between 0 and 2'."""
        if self.type == "any":
            return "any JSON value"
        if self.example is not None:
            return f"a {self.type} like {self.example}"
        text = _ARTICLE[self.type] + self.type
        low, high = _fmt(self.minimum), _fmt(self.maximum)
        if self.minimum is not None and self.maximum is not None:
            return f"{text} between {low} and {high}"
        if self.minimum is not None:
            return f"{text} >= {low}"
        if self.maximum is not None:
            return f"{text} <= {high}"
        return text

    def accepts(self, value: Any) -> bool:
        kind = self.type
        if kind == "any":
            return True
        if kind == "string":
            return isinstance(value, str) and (self.pattern is None or re.fullmatch(self.pattern, value) is not None)
        if kind == "object":
            return isinstance(value, dict)
        if kind == "boolean":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if kind == "integer" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


class TaskKind(msgspec.Struct, frozen=True):
    """A task type. `agent`: runs as an agent's LLM call and needs `agent` set; `llm`: needs a model.
    `tool`: the tool (a name in `TOOLS`) every task of this kind uses, which the task must be
    granted (`TaskSpec.tools`). `untrusted`: its output is untrusted content unless the task says
    otherwise (`TaskSpec.untrusted`): what a tool returns, a page fetched."""

    name: str
    description: str
    params: tuple[Param, ...] = ()
    agent: bool = False
    llm: bool = False
    tool: str | None = None
    untrusted: bool = False
    # Tools a task of this kind uses as well when a parameter has a value, (parameter, value,
    # tool): `sql` with `write: true` uses `sql_write` too, so the kind's tool grants only the
    # lesser use and the greater one is granted on its own.
    extra_tools: tuple[tuple[str, Any, str], ...] = ()
    # The parameter naming the MCP server a task of this kind calls, which it must be granted as
    # mcp:<server> (the `mcp` kind's `server`).
    server_param: str | None = None

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params)

    def parameter_problem(self, params: dict[str, Any]) -> str | None:
        """The first of `params` this kind does not accept, or a required one missing, in words;
        None if none. For a handler, should a submission slip past the validator (which reports
        every problem, by field)."""
        for param in self.params:
            if param.name in params and not param.accepts(params[param.name]):
                return f"parameters.{param.name} must be {param.expected()}, not {params[param.name]!r}"
            if param.required and param.name not in params:
                return f"missing required parameter {param.name!r}"
        return None

    @property
    def required_params(self) -> bool:
        return any(p.required for p in self.params)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


_LLM_PARAMS = (
    Param("prompt", "string"),
    Param("system", "string"),
    Param("model", "string"),
    Param("base_url", "string"),
    Param("temperature", "number", minimum=0, maximum=2),
    Param("max_tokens", "integer", minimum=1),
    Param("stream", "boolean"),  # true: the answer comes as a stream (OpenAI, Anthropic, Gemini formats)
    # The price the executor uses to report `cost_usd` from the token usage.
    Param("cost_per_1k_tokens", "number", minimum=0),
    # Models to fall back to, in order, when the task's `model` fails (a retry takes the next).
    Param("fallback_models", "any"),
)

_DIRECT = (
    TaskKind("noop", "Does nothing and succeeds; a join point or a placeholder."),
    TaskKind("sleep", "Waits `seconds`, then succeeds.",
             (Param("seconds", "number", required=True, minimum=0, maximum=MAX_SLEEP_SECONDS),)),
    TaskKind("echo", "Returns `text`, or the task's description when `text` is absent.", (Param("text", "any"),)),
    TaskKind(
        "python",
        "Calls an allowed Python function with `args` as keyword arguments and returns its result.",
        (
            Param("function", "string", required=True,
                  pattern=r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", example="package.module:function"),
            Param("args", "object"),
        ),
        tool="python", untrusted=True,
    ),
    TaskKind("llm", "One chat completion: `prompt` (or the description) to the configured model.",
             _LLM_PARAMS, llm=True),
)

_AGENT_TYPES = {
    "code_generation": "Write the code the task describes: complete, runnable, with brief comments where needed.",
    "code_review": "Review the code given: name each defect, risk and improvement, most important first.",
    "analysis": "Analyse the subject given: its parts, what matters, and the conclusions it supports.",
    "summarization": "Summarise the material given: its main points, faithfully and briefly.",
    "testing": "Write tests for what is given: the cases that matter, edge cases, and what each checks.",
    "documentation": "Write documentation for what is given: purpose, usage, examples, caveats.",
    "design": "Design what the task asks for: components, their responsibilities, interfaces, trade-offs.",
    "research": "Research the question: what is known, from which sources, and what remains uncertain.",
}

TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (
        *_DIRECT,
        *(TaskKind(name, text, (*_LLM_PARAMS, Param("language", "string")), agent=True, llm=True)
          for name, text in _AGENT_TYPES.items()),
    )
}

def agent_task_types() -> tuple[str, ...]:
    """The task types an agent may take: every registered kind that runs as an agent."""
    return tuple(name for name, kind in TASK_KINDS.items() if kind.agent)


@dataclass(frozen=True)
class Context:
    """What handlers share within one executor, built from its settings at start."""

    settings: Settings
    http: aiohttp.ClientSession  # one pool of connections for every request the executor makes
    llm: llm.LLMClient  # the providers with keys, their key pools, the model catalogue
    mcp: Mapping[str, tools.McpClient] = field(default_factory=dict)  # a client per declared MCP server


class Handler(Protocol):
    async def __call__(self, task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
        """One attempt of `task`, `inputs` being its direct dependencies' outputs; a `TaskError`
        says how it failed and whether a retry may help. Exactly one attempt: retrying is the
        distributor's decision."""
        ...


HANDLERS: dict[str, Handler] = {}


def register(kind: TaskKind, handler: Handler) -> None:
    """Add a task kind (or give a declared one its handler): the validator accepts tasks of it,
    the executor runs them with `handler`."""
    if kind.name in HANDLERS:
        raise ValueError(f"task kind {kind.name!r} has a handler already")
    if TASK_KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"task kind {kind.name!r} is declared already, differently")
    for tool in (kind.tool, *(extra for _, _, extra in kind.extra_tools)):
        if tool is not None and tool not in TOOLS:
            raise ValueError(f"task kind {kind.name!r} uses tool {tool!r}, which is not registered (register_tool)")
    TASK_KINDS[kind.name] = kind
    HANDLERS[kind.name] = handler


def untrusted_outputs(tasks: Iterable[TaskSpec]) -> set[str]:
    """The tasks whose output is untrusted content: those that bring it in (`untrusted: true`, or
    their kind's default: a tool's output), and every task downstream of one, since a task's
    output may carry what it read (an echo, a python function, a model repeating what it was
    told). `untrusted: false` says a task brings none in itself; it cannot launder what it
    receives. Linear in tasks and edges, whatever the graph (cycles and unknown ids included)."""
    specs = list(tasks)
    dependents: dict[str, list[str]] = {}
    for spec in specs:
        for dep in spec.dependencies:
            dependents.setdefault(dep, []).append(spec.id)
    marked = [s.id for s in specs if s.untrusted or (s.untrusted is None and _untrusted_kind(s.type))]
    found = set(marked)
    while marked:
        for dependent in dependents.get(marked.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                marked.append(dependent)
    return found


def _untrusted_kind(name: str) -> bool:
    kind = TASK_KINDS.get(name)
    return kind is not None and kind.untrusted


def module_allowed(module: str, allowed: Iterable[str]) -> bool:
    """Whether `module` is one of `allowed` or a sub-module of one (`pkg.sub` under `pkg`)."""
    return any(module == a or module.startswith(a + ".") for a in allowed)


def template_references(text: str) -> list[str]:
    """The task ids that `text` refers to with `{{ tasks.<id>.output }}`, in order of appearance."""
    return TEMPLATE_REFERENCE.findall(text) if "{{" in text else []


def number_in_string(value: Any, integer: bool = False) -> str | None:
    """For a string where a number belongs, the words a user needs: "the string '1e12' (YAML 1.1 …)"; else None.

    With `integer`, the advice is the integer written out (1e3: 1000) when the number is whole.
    """
    if not isinstance(value, str):
        return None
    match = _EXPONENT_NUMBER.fullmatch(value)
    if match is None:
        return None
    sign, whole, fraction, exp_sign, exponent = match.groups()
    if fraction is not None and exp_sign:
        return None  # YAML 1.1 reads this as a number: it was quoted on purpose
    yaml11 = f"{sign}{whole}.{fraction or '0'}e{exp_sign or '+'}{exponent}"
    number = float(value)
    if integer and abs(number) < 1e15 and number.is_integer():
        yaml11 = str(int(number))
    return f"the string {value!r} (YAML 1.1 reads {value} as a string; write {yaml11})"


def reference_problem(ref: str, dependencies: Container[str], *, task_id: str | None = None,
                      task_ids: Container[str] | None = None) -> str | None:
    """What is wrong with `{{ tasks.<ref>.output }}` in a task with these direct `dependencies`; None if nothing.

    The one rule, for the validator (which also knows the task's own id and every `task_ids`)
    and the executor (which knows the inputs it was handed): a task may refer to the output of
    a direct dependency only, because those are the outputs the distributor hands an attempt.
    A task reading the output of an ancestor further up lists it as a dependency too; that
    changes nothing in when it runs.
    """
    if ref in dependencies:
        return None
    template = "{{ tasks.%s.output }}" % ref  # noqa: UP031 - an f-string would need {{{{ }}}}
    if task_ids is not None and ref not in task_ids:
        return f"{template} refers to unknown task {ref!r}"
    if ref == task_id:
        return f"{template} refers to this task's own output"
    return (f"{template} refers to task {ref!r}, which is not a direct dependency of this task: add {ref!r} to its "
            "dependencies (a task receives only its direct dependencies' outputs)")
