"""The distributor's state: every active workflow and its tasks, folded from events.

Only `apply` changes it, and only from event fields, so a restarted distributor folds the
stream and arrives at exactly the state the dead one had, concurrency slots included:
a slot is a released attempt without an end, and nothing else.

A workflow that re-runs low quality (`WorkflowSubmitted.rerun_below_quality`) holds the
success of each task whose kind calls a model until the assessor scores it: below the
threshold, the result is kept aside and the task is re-run once on a stronger model, and the
better of the two becomes its result (docs/engine.md, "Quality re-runs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from actors import registry
from events import (
    RUN_ENDS,
    BlobRef,
    CancelRefused,
    CancelRequested,
    Event,
    TaskAssessed,
    TaskFailed,
    TaskHeartbeat,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowSubmitted,
    WorkflowValidated,
    run_of,
)
from store import Recent

__all__ = ["ENDED_KEPT", "GRACE_SECONDS", "CancelAsk", "DistributorState", "KeptResult", "TaskState", "TaskStatus",
           "WorkflowState", "can_retry"]

ENDED_KEPT = 100_000  # ended runs remembered (store.Recent): as many as the once-gate's ids
# Grace past an attempt's own time limit before the distributor gives up on it.
GRACE_SECONDS = 5.0


# "scoring": a success waiting for its score before it releases its dependents; "below_quality":
# scored below the workflow's threshold, its re-run not scheduled yet.
TaskStatus = Literal["waiting", "running", "attempt_failed", "retry_wait", "scoring", "below_quality", "succeeded",
                     "failed", "skipped"]
FINAL = frozenset({"succeeded", "failed", "skipped"})


@dataclass
class KeptResult:
    """A success set aside while its task is re-run for quality: the task's result unless the re-run does better."""

    attempt: int
    output: Any
    output_ref: BlobRef | None
    duration_ms: float | None
    model: str | None
    cost_usd: float | None
    quality: float


@dataclass
class TaskState:
    spec: TaskSpec
    index: int
    remaining_deps: int
    status: TaskStatus = "waiting"
    attempt: int = 0
    released_at: datetime | None = None
    # The released attempt's time limit (its TaskReady's; None in a release from before it was
    # carried, and then the setting's), and when the distributor gives up on it: released_at + limit + grace.
    limit: float | None = None
    due: datetime | None = None
    last_seen: datetime | None = None  # TaskStarted or the latest TaskHeartbeat
    retry_at: datetime | None = None
    failed_at: datetime | None = None
    retryable: bool = True
    retry_after: float | None = None
    error: str | None = None
    output: Any = None
    output_ref: BlobRef | None = None
    duration_ms: float | None = None
    model: str | None = None
    cost_usd: float | None = None
    quality: float | None = None
    # The attempt whose TaskTimedOut this distributor decided and has not yet read back from the
    # stream: it is not decided again, and takes effect only in stream order (docs/engine.md).
    timing_out: int | None = None
    # Attempts whose result arrived after the attempt had ended (timed out, failed, or a later
    # attempt released): recorded as late, never the task's result.
    late: list[int] = field(default_factory=list)
    # The models of the attempts that ended with a result, oldest first (a timed-out one has none).
    tried_models: list[str] = field(default_factory=list)
    # Its success waits for its score before it releases dependents: the workflow re-runs low
    # quality and the task's kind calls a model.
    gated: bool = False
    kept: KeptResult | None = None  # the success set aside while the task is re-run for quality
    upgrade: str | None = None  # why its attempts since `kept` run on a stronger model
    scored_at: datetime | None = None  # when `kept` was scored: its re-run is due from then
    # Its output is untrusted content (`registry.untrusted_outputs`): its dependents' attempts say so.
    untrusted: bool = False


def can_retry(task: TaskState) -> bool:
    """Attempts remain under the retry policy, counted from the quality re-run if there was one
    (the re-run is one attempt beyond the policy)."""
    first = task.kept.attempt if task.kept is not None else 0
    return task.retryable and task.attempt - first < task.spec.retry.max_attempts


@dataclass
class CancelAsk:
    """A cancel of a run not decided yet: the distributor honours it (the run ends cancelled) or
    refuses it (`CancelRefused`, which folded removes it) by who asked (`_decide.cancel_refusal`)."""

    id: str  # the CancelRequested's
    principal: str | None
    reason: str


@dataclass
class WorkflowState:
    """One run of a workflow; `submission_id` is its run id."""

    workflow_id: str
    submission_id: str
    submitted_at: datetime
    tasks: dict[str, TaskState]
    dependents: dict[str, list[str]]
    max_parallel: int | None
    validated_seq: int | None = None  # queue position among validated workflows
    activated: bool = False  # has released a task: it holds a workflow slot
    principal: str = ""  # who submitted it (the submission's; its client key's where clients sign)
    cancels: list[CancelAsk] = field(default_factory=list)  # asked for, in stream order, not yet decided
    budget_usd: float | None = None  # what its model calls may spend (the submission's)
    rerun_below: float | None = None  # a model task scored below this is re-run once (the submission's)
    replay_of: str | None = None  # the run whose recorded responses answer its model calls ...
    live_tasks: set[str] = field(default_factory=set)  # ... but for these tasks'
    # Indexes over `tasks`, changed only where a status or a count changes (`_move`, `_succeed`):
    # a decision looks at the tasks it may concern, not at every task of a 10,000-task workflow.
    by_status: dict[TaskStatus, set[str]] = field(default_factory=dict)  # task ids by status
    ready: set[str] = field(default_factory=set)  # waiting, with every dependency succeeded
    unscored: set[str] = field(default_factory=set)  # succeeded, and its score not read yet

    @property
    def running(self) -> int:
        """Tasks holding one of the workflow's slots: released, and not ended yet."""
        return len(self.by_status.get("running", ()))

    def having(self, *statuses: TaskStatus) -> list[TaskState]:
        """The tasks in any of `statuses`, in the workflow's order."""
        found = [self.tasks[i] for status in statuses for i in self.by_status.get(status, ())]
        found.sort(key=lambda t: t.index)
        return found


@dataclass
class DistributorState:
    # Keyed by run (the submission's id): a workflow id may run again once its run ended.
    workflows: dict[str, WorkflowState] = field(default_factory=dict)
    # The last runs that ended, so a late copy of their submission starts nothing: bounded
    # by a constant, not by history (store.Recent).
    ended: Recent = field(default_factory=lambda: Recent(ENDED_KEPT))
    _validations: int = 0

    @property
    def active_slots(self) -> int:
        return sum(1 for w in self.workflows.values() if w.activated)

    def timing_out(self, event: TaskTimedOut) -> None:
        """Mark a timeout as decided, before the stream has it (see `TaskState.timing_out`)."""
        for run in self.runs_of(event):
            wf = self.workflows.get(run)
            task = wf.tasks.get(event.task_id) if wf is not None else None
            if task is not None and task.attempt == event.attempt and task.status == "running":
                task.timing_out = event.attempt

    def runs_of(self, event: Event) -> list[str]:
        """The active runs an event concerns: its own; without a run id (a client's cancel that
        names only the workflow, an event from before runs), every active run of its workflow."""
        run = run_of(event)
        if run:
            return [run]
        return [r for r, w in self.workflows.items() if w.workflow_id == event.workflow_id]

    def apply(self, event: Event) -> None:
        """Fold one event."""
        if isinstance(event, WorkflowSubmitted):
            if event.id not in self.workflows and event.id not in self.ended:
                self.workflows[event.id] = _new_workflow(event)
            return
        for run in self.runs_of(event):
            self._apply(run, event)

    def _apply(self, run: str, event: Event) -> None:
        wf = self.workflows.get(run)
        if wf is None:
            return
        if isinstance(event, RUN_ENDS):
            del self.workflows[run]
            self.ended.add(run)
            return
        if isinstance(event, WorkflowValidated):
            if wf.validated_seq is None:
                self._validations += 1
                wf.validated_seq = self._validations
        elif isinstance(event, CancelRequested):
            if all(ask.id != event.id for ask in wf.cancels):
                wf.cancels.append(CancelAsk(event.id, event.principal, event.reason or "cancelled on request"))
        elif isinstance(event, CancelRefused):
            wf.cancels = [ask for ask in wf.cancels if ask.id != event.causation_id]
        else:
            task_id = getattr(event, "task_id", None)
            task = wf.tasks.get(task_id) if task_id is not None else None
            if task is not None:
                _apply_task(wf, task, event)


def _new_workflow(event: WorkflowSubmitted) -> WorkflowState:
    tasks: dict[str, TaskState] = {}
    dependents: dict[str, list[str]] = {}
    untrusted = registry.untrusted_outputs(event.tasks)
    for i, spec in enumerate(event.tasks):
        kind = registry.TASK_KINDS.get(spec.type)
        gated = event.rerun_below_quality is not None and kind is not None and kind.llm
        tasks[spec.id] = TaskState(spec=spec, index=i, remaining_deps=len(set(spec.dependencies)), gated=gated,
                                   untrusted=spec.id in untrusted)
        for dep in set(spec.dependencies):
            dependents.setdefault(dep, []).append(spec.id)
    return WorkflowState(event.workflow_id, event.id, event.ts, tasks, dependents, event.max_parallel_tasks,
                         principal=event.principal, budget_usd=event.budget_usd, rerun_below=event.rerun_below_quality,
                         replay_of=event.replay_of, live_tasks=set(event.live_tasks),
                         by_status={"waiting": set(tasks)},
                         ready={task_id for task_id, task in tasks.items() if task.remaining_deps == 0})


def _move(wf: WorkflowState, task: TaskState, status: TaskStatus) -> None:
    """The one place a task's status changes, keeping the workflow's indexes true."""
    was, task_id = task.status, task.spec.id
    if was == status:
        return
    wf.by_status[was].discard(task_id)
    wf.by_status.setdefault(status, set()).add(task_id)
    if was == "waiting":
        wf.ready.discard(task_id)
    task.status = status


def _score(wf: WorkflowState, task: TaskState, quality: float) -> None:
    task.quality = quality
    wf.unscored.discard(task.spec.id)


def _apply_task(wf: WorkflowState, task: TaskState, event: Event) -> None:
    if task.status in FINAL:
        # The score of the attempt that succeeded (a gated task's score was its last step).
        if isinstance(event, TaskAssessed) and not task.gated and event.attempt == task.attempt:
            _score(wf, task, event.overall)
        return
    if isinstance(event, TaskReady):
        # A copy of the current attempt's release after its result changes nothing.
        if event.attempt > task.attempt or (event.attempt == task.attempt and task.status == "running"):
            _move(wf, task, "running")
            task.attempt, task.limit = event.attempt, event.timeout_seconds or task.spec.timeout_seconds
            task.released_at, task.last_seen, task.retry_at = event.ts, None, None
            task.due = None if task.limit is None else event.ts + timedelta(seconds=task.limit + GRACE_SECONDS)
            wf.activated = True
    elif isinstance(event, (TaskStarted, TaskHeartbeat)):
        if event.attempt == task.attempt and task.status == "running":
            task.last_seen = event.ts
    elif isinstance(event, TaskSucceeded):
        # Only the result of the attempt still running counts (its output passed the task's
        # checks in the executor). In stream order, anything else comes after its attempt
        # ended: timed out, failed, or superseded by a later attempt.
        if event.attempt == task.attempt and task.status == "running":
            if event.model is not None:
                task.tried_models.append(event.model)
            task.output, task.output_ref = event.output, event.blobs.get("output")
            task.duration_ms, task.model, task.cost_usd = event.duration_ms, event.model, event.cost_usd
            if task.gated:
                _move(wf, task, "scoring")  # its dependents wait for the score
            else:
                if event.quality is not None:  # scored in its attempt: no TaskAssessed follows
                    _score(wf, task, event.quality.overall)
                _succeed(wf, task)
        elif not _counted(task, event.attempt):
            task.late.append(event.attempt)
    elif isinstance(event, (TaskFailed, TaskTimedOut)):
        current = event.attempt == task.attempt and task.status == "running"
        if isinstance(event, TaskTimedOut):
            if task.timing_out == event.attempt:
                task.timing_out = None
        elif not current:
            task.late.append(event.attempt)
        if current:
            _move(wf, task, "attempt_failed")
            task.failed_at = event.ts
            if isinstance(event, TaskFailed):
                task.error, task.retryable, task.retry_after = event.error, event.retryable, event.retry_after_seconds
                if event.model is not None:
                    task.tried_models.append(event.model)
            else:
                task.error, task.retryable, task.retry_after = event.reason, True, None
            if task.kept is not None and not can_retry(task):
                _restore(task, task.kept)  # the quality re-run failed for good: the kept result stands
                _succeed(wf, task)
    elif isinstance(event, TaskRetryScheduled):
        if task.status in ("attempt_failed", "below_quality"):
            _move(wf, task, "retry_wait")
            task.retry_at = event.not_before
    elif isinstance(event, TaskSkipped):
        _move(wf, task, "skipped")
        task.error = event.reason
    elif isinstance(event, TaskAssessed):
        if not task.gated:
            if event.attempt == task.attempt:  # not a score of an earlier attempt's late success
                _score(wf, task, event.overall)
        elif task.status == "scoring" and event.attempt == task.attempt:
            _scored(wf, task, event)


def _counted(task: TaskState, attempt: int) -> bool:
    """A copy of a success already taken: the one being scored, or the one kept aside."""
    return ((task.status == "scoring" and attempt == task.attempt)
            or (task.kept is not None and attempt == task.kept.attempt))


def _succeed(wf: WorkflowState, task: TaskState) -> None:
    _move(wf, task, "succeeded")
    if task.quality is None:
        wf.unscored.add(task.spec.id)
    for child_id in wf.dependents.get(task.spec.id, ()):
        child = wf.tasks[child_id]
        child.remaining_deps -= 1
        if child.remaining_deps == 0 and child.status == "waiting":
            wf.ready.add(child_id)


def _scored(wf: WorkflowState, task: TaskState, event: TaskAssessed) -> None:
    """A gated task's success has its score: it stands, or is kept aside for one re-run, or
    (the re-run's) the better of the two stands, the re-run on a tie."""
    threshold = wf.rerun_below
    assert threshold is not None  # a task is gated only when the workflow has one
    kept = task.kept
    if kept is None and event.overall < threshold:
        task.kept = KeptResult(task.attempt, task.output, task.output_ref, task.duration_ms, task.model,
                               task.cost_usd, event.overall)
        _move(wf, task, "below_quality")
        task.scored_at = event.ts
        on = f" ({task.model})" if task.model else ""
        task.upgrade = (f"quality {event.overall:g} of attempt {task.attempt}{on} is below {threshold:g}: "
                        "re-run once on a stronger model")
        return
    _score(wf, task, event.overall)
    if kept is not None and kept.quality > event.overall:
        _restore(task, kept)
    _succeed(wf, task)


def _restore(task: TaskState, kept: KeptResult) -> None:
    task.output, task.output_ref, task.duration_ms = kept.output, kept.output_ref, kept.duration_ms
    task.model, task.cost_usd, task.quality = kept.model, kept.cost_usd, kept.quality
