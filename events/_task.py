"""The life of one task attempt: released, alive (once it outlives its first heartbeat), ended, scored.

An attempt's result says which executor ran it and when it began, so an attempt that ended
before its first heartbeat needs no `TaskStarted` of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec

from ._envelope import BlobRef, EventBase, Name
from ._workflow import TaskSpec

__all__ = [
    "CheckResult",
    "OutcomeChecked",
    "Quality",
    "TaskAssessed",
    "TaskFailed",
    "TaskHeartbeat",
    "TaskReady",
    "TaskRetryScheduled",
    "TaskSkipped",
    "TaskStarted",
    "TaskSucceeded",
    "TaskTimedOut",
    "Verdict",
    "assessment_of",
]

Attempt = Annotated[int, msgspec.Meta(ge=1)]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class CheckResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """One outcome check an attempt applied to its output (`TaskSpec.expect`): which, whether it
    passed, and why not (or, for a pass worth explaining, what it measured)."""

    check: str  # e.g. "pattern", "json_schema", "sections", "parses:python", "lint:ruff", "tests"
    passed: bool
    reason: str = ""


class Verdict(msgspec.Struct, frozen=True, omit_defaults=True):
    """The judge model's grading of an answer against its task (docs/quality.md, "LLM judge")."""

    model: str  # the judge's model, provider/model
    relevance: Score  # does it answer this task, in the language and on the inputs it was given
    correctness: Score  # is what it says (or the code it gives) right
    completeness: Score  # does it do all the task asked
    reasons: list[str] = []  # the judge's own words, a few short sentences


class Quality(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The score of an output no model wrote, computed in its attempt by the rules the assessor
    applies (docs/quality.md, "Scores"): what its `TaskAssessed` would say."""

    task_type: str
    agent: str | None = None
    accuracy: Score
    completeness: Score
    consistency: Score
    efficiency: Score
    maintainability: Score
    overall: Score
    reasons: dict[str, list[str]] = {}


class _TaskEvent(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "task"

    task_id: Name


class TaskReady(_TaskEvent, frozen=True, kw_only=True):
    """The distributor releases one attempt of a task; `inputs` are its dependencies' outputs."""

    verb: ClassVar[str] = "ready"
    blob_fields: ClassVar[tuple[str, ...]] = ("inputs", "spec")

    attempt: Attempt
    spec: TaskSpec | None = None
    inputs: dict[str, Any] = {}
    # Dependencies whose outputs are too large to travel inline: each is a blob the executor
    # loads (`load_blob`) into `inputs` before the attempt runs.
    input_refs: dict[str, BlobRef] = {}
    # The dependencies whose outputs are untrusted content (`TaskSpec.untrusted`, inherited down
    # the graph): the executor scans each one that reaches a model's prompt before the call.
    untrusted_inputs: list[str] = []
    # The attempt's time limit, seconds: the task's own or TASK_TIMEOUT_SECONDS.
    timeout_seconds: float | None = None
    # The workflow's budget for model calls (WorkflowSubmitted.budget_usd), which its calls are held against.
    budget_usd: float | None = None
    # The models this task's earlier attempts in this run ran on, oldest first: a retry falls
    # back to the next candidate model (`llm.Selector`).
    tried_models: list[str] = []
    # Why this attempt must run on a stronger model than the last of `tried_models` (a quality
    # re-run: the earlier attempt's score was below the workflow's threshold); None: no need.
    upgrade: str | None = None
    # The run whose recorded model responses answer this attempt's calls (`ymera replay
    # --offline`, the replayed part of `ymera fork`): no provider is called.
    replay_of: str | None = None


class TaskStarted(_TaskEvent, frozen=True, kw_only=True):
    """An attempt outlived its first heartbeat: from here on the distributor watches its heartbeats."""

    verb: ClassVar[str] = "started"

    attempt: Attempt
    executor: str


class TaskHeartbeat(_TaskEvent, frozen=True, kw_only=True):
    verb: ClassVar[str] = "heartbeat"

    attempt: Attempt
    executor: str
    beat: int = 0


class TaskSucceeded(_TaskEvent, frozen=True, kw_only=True):
    """An attempt produced an output that meets the task's `expect` (the executor checked it)."""

    verb: ClassVar[str] = "succeeded"
    blob_fields: ClassVar[tuple[str, ...]] = ("output",)

    attempt: Attempt
    output: Any = None
    duration_ms: float = 0.0
    model: str | None = None
    cost_usd: float | None = None
    usage: dict[str, int] = {}
    executor: str = ""  # who ran the attempt
    started_at: datetime | None = None  # when it began
    # The run whose recorded model responses produced this output (a replayed task): it says
    # nothing new of its model, and the performance tracker does not count its score.
    replay_of: str | None = None
    # The outcome checks applied to the output, in the order they ran (all passed).
    checks: list[CheckResult] = []
    # The judge's verdict on the output, where a judge model is configured; else, or when it
    # gave none, `unjudged` says why (the assessor then scores relevance lexically).
    judged: Verdict | None = None
    unjudged: str = ""
    # Its score, for a kind no model writes (noop, echo, python, the tools, MCP): a pure function
    # of the task and this success, computed in the attempt; no `TaskAssessed` follows it. None:
    # a model wrote the output, and the assessor scores it.
    quality: Quality | None = None


class TaskFailed(_TaskEvent, frozen=True, kw_only=True):
    verb: ClassVar[str] = "failed"

    attempt: Attempt
    error: str
    retryable: bool = True
    duration_ms: float = 0.0
    # e.g. "timeout", "rate_limited", "server_error", "bad_request", "cut_off" (the model stopped
    # at its token limit: the answer is incomplete), "outcome" (its output failed the task's
    # `expect`), "budget" (no budget covers the model call), "not_granted" (a tool the task was not
    # granted), "untrusted_input" (an attack in untrusted content bound for its prompt), "error"
    kind: str = "error"
    # A provider's Retry-After: the distributor waits at least this long before retrying.
    retry_after_seconds: float | None = None
    executor: str = ""
    started_at: datetime | None = None
    model: str | None = None  # the model an LLM attempt asked for, when it got as far as asking
    # With kind "outcome": every check applied to the output, failed ones included.
    checks: list[CheckResult] = []


class TaskTimedOut(_TaskEvent, frozen=True, kw_only=True):
    """The distributor gave up on an attempt: past its time limit, or its heartbeats stopped."""

    verb: ClassVar[str] = "timed_out"

    attempt: Attempt
    reason: str


class TaskRetryScheduled(_TaskEvent, frozen=True, kw_only=True):
    """The distributor will release `attempt` (the next one) once `not_before` has passed."""

    verb: ClassVar[str] = "retry_scheduled"

    attempt: Attempt
    not_before: datetime
    reason: str


class TaskSkipped(_TaskEvent, frozen=True, kw_only=True):
    """A task that will not run, because a dependency ended without success."""

    verb: ClassVar[str] = "skipped"

    reason: str


class OutcomeChecked(_TaskEvent, frozen=True, kw_only=True):
    """Written by Ymera 0.1 only, whose validator checked each output after the attempt; an
    attempt now applies its task's checks itself, and a failed check is a failed attempt.
    Kept so logs written then still decode."""

    verb: ClassVar[str] = "outcome_checked"

    attempt: Attempt
    passed: bool
    problems: list[str] = []


class TaskAssessed(_TaskEvent, frozen=True, kw_only=True):
    verb: ClassVar[str] = "assessed"

    attempt: Attempt
    # What was scored, for the performance tracker (quality per model and task type).
    task_type: str = ""
    agent: str | None = None
    model: str | None = None
    replay_of: str | None = None  # a replayed result's (TaskSucceeded.replay_of): the tracker passes it over
    accuracy: Score
    completeness: Score
    consistency: Score
    efficiency: Score
    maintainability: Score
    overall: Score
    # Why each score is what it is, per dimension ("accuracy", ..., "overall"): short sentences.
    reasons: dict[str, list[str]] = {}


def assessment_of(event: object) -> TaskAssessed | None:
    """The score an event gives a task attempt, in one shape for every reader of quality: a
    `TaskAssessed` itself, or what a success scored in its attempt (`TaskSucceeded.quality`)
    says, as the assessment it stands for (its id and time the success's); else None."""
    if isinstance(event, TaskAssessed):
        return event
    if not isinstance(event, TaskSucceeded) or event.quality is None:
        return None
    q = event.quality
    return TaskAssessed(
        id=event.id, ts=event.ts, workflow_id=event.workflow_id, run_id=event.run_id, causation_id=event.id,
        actor=event.actor, task_id=event.task_id, attempt=event.attempt, task_type=q.task_type, agent=q.agent,
        model=event.model, replay_of=event.replay_of, accuracy=q.accuracy, completeness=q.completeness,
        consistency=q.consistency, efficiency=q.efficiency, maintainability=q.maintainability, overall=q.overall,
        reasons=q.reasons)
