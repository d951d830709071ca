"""The distributor's state: every active workflow and its tasks, folded from events.

Only `apply` changes it, and only from event fields, so a restarted distributor folds the
stream and arrives at exactly the state the dead one had, concurrency slots included:
a slot is a released attempt without an end, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from events import (
    RUN_ENDS,
    BlobRef,
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

__all__ = ["ENDED_KEPT", "DistributorState", "TaskState", "WorkflowState"]

ENDED_KEPT = 100_000  # ended runs remembered (store.Recent): as many as the once-gate's ids


TaskStatus = Literal["waiting", "running", "attempt_failed", "retry_wait", "succeeded", "failed", "skipped"]
FINAL = frozenset({"succeeded", "failed", "skipped"})


@dataclass
class TaskState:
    spec: TaskSpec
    index: int
    remaining_deps: int
    status: TaskStatus = "waiting"
    attempt: int = 0
    released_at: datetime | None = None
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
    cancel_reason: str | None = None
    budget_usd: float | None = None  # what its model calls may spend (the submission's)

    @property
    def running(self) -> int:
        """Tasks holding one of the workflow's slots: released, and not ended yet."""
        return sum(1 for t in self.tasks.values() if t.status == "running")


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
            wf.cancel_reason = event.reason or "cancelled on request"
        else:
            task_id = getattr(event, "task_id", None)
            task = wf.tasks.get(task_id) if task_id is not None else None
            if task is not None:
                _apply_task(wf, task, event)


def _new_workflow(event: WorkflowSubmitted) -> WorkflowState:
    tasks: dict[str, TaskState] = {}
    dependents: dict[str, list[str]] = {}
    for i, spec in enumerate(event.tasks):
        tasks[spec.id] = TaskState(spec=spec, index=i, remaining_deps=len(set(spec.dependencies)))
        for dep in set(spec.dependencies):
            dependents.setdefault(dep, []).append(spec.id)
    return WorkflowState(event.workflow_id, event.id, event.ts, tasks, dependents, event.max_parallel_tasks,
                         budget_usd=event.budget_usd)


def _apply_task(wf: WorkflowState, task: TaskState, event: Event) -> None:
    if task.status in FINAL:
        if isinstance(event, TaskAssessed):
            task.quality = event.overall
        return
    if isinstance(event, TaskReady):
        if event.attempt >= task.attempt:
            task.status, task.attempt = "running", event.attempt
            task.released_at, task.last_seen, task.retry_at = event.ts, None, None
            wf.activated = True
    elif isinstance(event, (TaskStarted, TaskHeartbeat)):
        if event.attempt == task.attempt and task.status == "running":
            task.last_seen = event.ts
    elif isinstance(event, TaskSucceeded):
        # Only the result of the attempt still running counts (its output passed the task's
        # checks in the executor). In stream order, anything else comes after its attempt
        # ended: timed out, failed, or superseded by a later attempt.
        if event.attempt == task.attempt and task.status == "running":
            task.status = "succeeded"
            task.output, task.output_ref = event.output, event.blobs.get("output")
            task.duration_ms, task.model, task.cost_usd = event.duration_ms, event.model, event.cost_usd
            for child in wf.dependents.get(task.spec.id, ()):
                wf.tasks[child].remaining_deps -= 1
        else:
            task.late.append(event.attempt)
    elif isinstance(event, (TaskFailed, TaskTimedOut)):
        current = event.attempt == task.attempt and task.status == "running"
        if isinstance(event, TaskTimedOut):
            if task.timing_out == event.attempt:
                task.timing_out = None
        elif not current:
            task.late.append(event.attempt)
        if current:
            task.status, task.failed_at = "attempt_failed", event.ts
            if isinstance(event, TaskFailed):
                task.error, task.retryable, task.retry_after = event.error, event.retryable, event.retry_after_seconds
            else:
                task.error, task.retryable, task.retry_after = event.reason, True, None
    elif isinstance(event, TaskRetryScheduled):
        if task.status == "attempt_failed":
            task.status, task.retry_at = "retry_wait", event.not_before
    elif isinstance(event, TaskSkipped):
        task.status, task.error = "skipped", event.reason
    elif isinstance(event, TaskAssessed):
        task.quality = event.overall
