"""A workflow as submitted, and the events of its life: admission, validation, the end."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from ._envelope import EventBase, Name

__all__ = [
    "PRIORITY_RANK",
    "RUN_ENDS",
    "CancelRequested",
    "Expectations",
    "Priority",
    "Problem",
    "RetryPolicy",
    "TaskResult",
    "TaskSpec",
    "WorkflowAdmitted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowInvalid",
    "WorkflowRefused",
    "WorkflowSubmitted",
    "WorkflowValidated",
    "run_of",
]

Priority = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
# Released first to last: the distributor's order, and the plan's.
PRIORITY_RANK: dict[str, int] = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How the distributor retries a failed attempt: exponential backoff with jitter."""

    max_attempts: int = 3
    initial_delay_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay_seconds: float = 60.0


class Expectations(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a task's output must satisfy; the attempt (the executor) checks its output against
    it, and an output that fails is a failed attempt. docs/quality.md, "Outcome checks", says
    what each check reads and when it passes."""

    contains: list[str] = []
    not_contains: list[str] = []
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    json: bool = False
    # A JSON Schema the output (read as JSON) must satisfy; the validator checks the schema itself.
    json_schema: dict[str, Any] | None = None
    # Headings (Markdown `#`, setext) or labelled parts (`Summary:`) the text must have, each with content.
    sections: list[str] = []
    # The language of the code in the output (its fenced blocks, else the whole text), which must
    # parse: python, json, yaml or sql.
    language: str | None = None
    # Python code only: ruff finds nothing in it (its default rules: E4, E7, E9, F).
    lint: bool = False
    # Python code only: test functions (`def test_…`) run against it in the code sandbox.
    tests: str | None = None


class TaskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One task of a submitted workflow.

    `type` is the kind of work (`noop`, `echo`, `llm`, an agent task type, ...). It is a
    plain string here so the validator can report an unknown type together with every
    other problem, instead of the decoder stopping at the first. Unknown fields are refused:
    a misspelt `dependencies` must not be silently ignored.
    """

    id: Name
    type: str
    agent: str | None = None
    description: str = ""
    parameters: dict[str, Any] = {}
    dependencies: list[str] = []
    priority: Priority = "MEDIUM"
    timeout_seconds: float | None = None
    retry: RetryPolicy = RetryPolicy()
    expect: Expectations | None = None
    # The tools this task may use: a tool's name (`python`) or an MCP server (`mcp:<server>`).
    # A task whose kind uses a tool it is not granted is refused by the validator, and again by
    # the executor (`actors.registry.grant_problem`).
    tools: list[str] = []
    # Whether this task brings untrusted content into the workflow (a fetched page, a tool's
    # output, text from a user): None means its kind's default (`python`: true). Content that
    # reaches a task from an untrusted one is untrusted too, whatever this says; the executor
    # scans it on every edge into a model's prompt (`actors.registry.untrusted_outputs`).
    untrusted: bool | None = None


class WorkflowSubmitted(EventBase, frozen=True, kw_only=True):
    """A client asks Ymera to run a workflow. Any NATS client may publish this."""

    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "submitted"
    blob_fields: ClassVar[tuple[str, ...]] = ("tasks",)

    name: str = ""
    principal: str = "anonymous"
    tasks: list[TaskSpec] = []
    metadata: dict[str, str] = {}
    # At most this many of the workflow's tasks run at once; None: as many as are ready.
    max_parallel_tasks: int | None = None
    # USD the run may spend on model calls, each call held against it before it is made; None: no limit.
    budget_usd: float | None = None
    # A task whose score is below this is re-run once on a stronger model (its dependents wait for
    # the score); None: never. Workflow files say `rerun_below_quality: true` for QUALITY_THRESHOLD.
    rerun_below_quality: float | None = None
    # A replay or fork of an earlier run: its recorded model responses answer this run's calls,
    # except those of `live_tasks`, which call their models (a fork's task and what follows it).
    replay_of: str | None = None
    live_tasks: list[str] = []


def run_of(event: EventBase) -> str:
    """The run `event` belongs to: a submission starts the run its own id names; any other
    event says so in `run_id` ("" when it belongs to no run, or predates runs)."""
    return event.id if isinstance(event, WorkflowSubmitted) else event.run_id


class WorkflowAdmitted(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "admitted"

    principal: str


class WorkflowRefused(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "refused"

    principal: str
    reason: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """One thing wrong with a workflow, naming where it is."""

    message: str
    task_id: str | None = None
    field: str | None = None


class WorkflowValidated(EventBase, frozen=True, kw_only=True):
    """The workflow is runnable; `levels` are the groups of tasks that may run in parallel."""

    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "validated"
    blob_fields: ClassVar[tuple[str, ...]] = ("levels", "critical_path")

    levels: list[list[str]] = []
    critical_path: list[str] = []
    estimated_parallel_speedup: float = 1.0


class WorkflowInvalid(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "invalid"
    blob_fields: ClassVar[tuple[str, ...]] = ("problems",)

    problems: list[Problem] = []


class CancelRequested(EventBase, frozen=True, kw_only=True):
    """A client asks to end a run (`run_id`; without one, every active run of the workflow).

    `principal` is who asks. Where clients sign (YMERA_NATS_AUTH), readers reject a cancel
    naming a principal other than its signing key's, and the distributor honours it only from
    the run's submitter or an admin (`CancelRefused`); Ymera's clients fill it in."""

    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "cancel_requested"

    reason: str = ""
    principal: str | None = None


class WorkflowCancelled(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "cancelled"

    reason: str = ""


class TaskResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """How one task ended, as reported in the workflow's last event."""

    task_id: str
    status: Literal["succeeded", "failed", "skipped", "cancelled"]
    attempts: int = 0
    quality: float | None = None
    error: str | None = None
    duration_ms: float | None = None
    model: str | None = None
    cost_usd: float | None = None


Quality = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class WorkflowCompleted(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "completed"
    blob_fields: ClassVar[tuple[str, ...]] = ("results",)

    results: list[TaskResult] = []
    overall_quality: Quality | None = None
    duration_ms: float | None = None


class WorkflowFailed(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "wf"
    verb: ClassVar[str] = "failed"
    blob_fields: ClassVar[tuple[str, ...]] = ("results",)

    reason: str
    results: list[TaskResult] = []
    overall_quality: Quality | None = None
    duration_ms: float | None = None


# The events that end a run: it completed, failed or was cancelled, or it never ran (invalid,
# refused). Every actor and projection that forgets a run when it ends reads this one tuple.
RUN_ENDS = (WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowInvalid, WorkflowRefused)
