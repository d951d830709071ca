"""The runs of every workflow, folded from events: one projection behind `ymera run` (its
progress and its summary), `ymera status`, `ymera runs`, the Python API's result and the tests.

A workflow id names a workflow; each execution of it is a run, named by the id of the
`WorkflowSubmitted` that started it (`events.run_of`). For each run this holds its state,
each task's state and attempts, and the reason of every failure, skip, refusal and cancel.
An event that names no run (written before runs existed, or a client's cancel that names
only the workflow) belongs to its workflow's latest run. `MessageRejected` belongs to no
run and changes nothing: a stray message on a workflow's subject is not part of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from events import (
    RUN_ENDS,
    CancelRefused,
    CancelRequested,
    CheckResult,
    Event,
    Problem,
    TaskAssessed,
    TaskFailed,
    TaskHeartbeat,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowAdmitted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
    run_of,
)

__all__ = ["RUN_STATE_OF", "TERMINAL", "AttemptFailure", "Run", "Runs", "TaskRun", "WorkflowRuns"]

RunState = Literal["submitted", "admitted", "validated", "running", "completed", "failed", "cancelled", "invalid",
                   "refused"]
# A run in one of these has ended, and never leaves it.
TERMINAL: frozenset[str] = frozenset(kind.verb for kind in RUN_ENDS)  # completed, failed, cancelled, …
# The state of a run after each event that moves it (a terminal state excepted).
RUN_STATE_OF: dict[type, RunState] = {
    WorkflowSubmitted: "submitted",
    WorkflowAdmitted: "admitted",
    WorkflowRefused: "refused",
    WorkflowValidated: "validated",
    WorkflowInvalid: "invalid",
    TaskReady: "running",
    TaskStarted: "running",
    TaskSucceeded: "running",
    TaskFailed: "running",
    WorkflowCompleted: "completed",
    WorkflowFailed: "failed",
    WorkflowCancelled: "cancelled",
}
# A task in one of these is done with; `retrying` waits for its next attempt.
TASK_FINAL: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "cancelled"})
_IN_FLIGHT = frozenset({"ready", "running"})


class AttemptFailure(msgspec.Struct):
    attempt: int
    reason: str


class TaskRun(msgspec.Struct):
    """One task of a run: waiting, ready, running (it outlived its first heartbeat), retrying,
    succeeded, failed, skipped or cancelled."""

    max_attempts: int
    state: str = "waiting"
    attempts: int = 0
    # Why it failed, was skipped or was cancelled; None while it has not ended so.
    reason: str | None = None
    # Every failed attempt, in order, with its reason (a retried success keeps them too).
    failures: list[AttemptFailure] = []
    quality: float | None = None
    duration_ms: float | None = None
    model: str | None = None
    cost_usd: float | None = None
    # The outcome checks of its latest attempt that got as far as them (TaskSucceeded/TaskFailed.checks).
    checks: list[CheckResult] = []


class Run(msgspec.Struct):
    """One execution of a workflow."""

    workflow_id: str
    run_id: str
    submitted_at: datetime
    principal: str
    tasks: dict[str, TaskRun]
    state: RunState = "submitted"
    # Why it failed, was refused or was cancelled.
    reason: str | None = None
    # Why it is invalid: every problem, each naming the task and field.
    problems: list[Problem] = []
    cancel_requested: str | None = None
    ended_at: datetime | None = None
    overall_quality: float | None = None
    duration_ms: float | None = None
    levels: list[list[str]] = []
    critical_path: list[str] = []
    estimated_parallel_speedup: float | None = None
    # What its model calls may spend (`WorkflowSubmitted.budget_usd`); None: no budget of its own.
    budget_usd: float | None = None

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL


class Runs(msgspec.Struct):
    """Every run, and each workflow's runs in the order they were submitted."""

    runs: dict[str, Run] = {}
    by_workflow: dict[str, list[str]] = {}

    def of(self, workflow_id: str) -> list[Run]:
        return [self.runs[r] for r in self.by_workflow.get(workflow_id, ())]

    def latest(self, workflow_id: str) -> Run | None:
        """The run `ymera status` shows: the latest one that was not refused (a refused
        submission never ran), or the latest refused one when every run was."""
        runs = self.of(workflow_id)
        return next((r for r in reversed(runs) if r.state != "refused"), runs[-1] if runs else None)

    def active(self, workflow_id: str) -> Run | None:
        """The run that has not ended: the admitted one, else the latest still undecided."""
        live = [r for r in self.of(workflow_id) if not r.ended]
        return next((r for r in reversed(live) if r.state != "submitted"), live[-1] if live else None)


class WorkflowRuns:
    """Projection "workflow_runs": every run of every workflow, task by task."""

    name = "workflow_runs"

    def initial(self) -> Runs:
        return Runs()

    def apply(self, state: Runs, event: Event) -> Runs:
        if isinstance(event, WorkflowSubmitted):
            if event.id not in state.runs:
                state.runs[event.id] = Run(
                    workflow_id=event.workflow_id, run_id=event.id, submitted_at=event.ts, principal=event.principal,
                    tasks={t.id: TaskRun(max_attempts=t.retry.max_attempts) for t in event.tasks},
                    budget_usd=event.budget_usd)
                state.by_workflow.setdefault(event.workflow_id, []).append(event.id)
            return state
        run = state.runs.get(run_of(event) or _latest(state, event.workflow_id))
        if run is not None:
            _apply(run, event)
        return state


def _latest(state: Runs, workflow_id: str) -> str:
    runs = state.by_workflow.get(workflow_id)
    return runs[-1] if runs else ""


def _apply(run: Run, event: Event) -> None:
    if run.ended:
        task = run.tasks.get(getattr(event, "task_id", ""))
        if isinstance(event, TaskAssessed) and task is not None:
            task.quality = event.overall  # a failed task may be scored after its run ended
        return
    new_state = RUN_STATE_OF.get(type(event))
    if new_state is not None:
        run.state = new_state
    if isinstance(event, WorkflowRefused):
        run.reason, run.ended_at = event.reason, event.ts
    elif isinstance(event, WorkflowInvalid):
        run.problems, run.ended_at = list(event.problems), event.ts
    elif isinstance(event, WorkflowValidated):
        run.levels, run.critical_path = event.levels, event.critical_path
        run.estimated_parallel_speedup = event.estimated_parallel_speedup
    elif isinstance(event, CancelRequested):
        run.cancel_requested = event.reason or "cancelled on request"
    elif isinstance(event, CancelRefused):
        run.cancel_requested = None  # not the asker's to cancel: the run goes on
    elif isinstance(event, (WorkflowCompleted, WorkflowFailed)):
        _end(run, event)
    elif isinstance(event, WorkflowCancelled):
        _cancel(run, event)
    else:
        task = run.tasks.get(getattr(event, "task_id", ""))
        if task is not None:
            _apply_task(task, event)


def _apply_task(task: TaskRun, event: Event) -> None:
    if isinstance(event, TaskAssessed):
        task.quality = event.overall
        return
    if isinstance(event, TaskRetryScheduled) and task.state == "succeeded":
        # A quality re-run (docs/engine.md): the result is set aside while a stronger model tries.
        task.state, task.reason = "retrying", event.reason
        return
    if task.state in TASK_FINAL:
        return
    if isinstance(event, TaskReady):
        if event.attempt > task.attempts:
            task.state, task.attempts = "ready", event.attempt
    elif isinstance(event, (TaskStarted, TaskHeartbeat)):
        if event.attempt == task.attempts and task.state == "ready":
            task.state = "running"
    elif isinstance(event, TaskSucceeded):
        # The success of the attempt in flight counts (as with the distributor): its output
        # passed the task's checks in the executor.
        if event.attempt == task.attempts and task.state in _IN_FLIGHT:
            task.state, task.duration_ms, task.reason = "succeeded", event.duration_ms, None
            task.model, task.cost_usd, task.checks = event.model, event.cost_usd, list(event.checks)
            if event.quality is not None:  # no model wrote it: scored in its attempt
                task.quality = event.quality.overall
    elif isinstance(event, (TaskFailed, TaskTimedOut)):
        # Only the attempt in flight can fail; a late report of an earlier one changes nothing.
        if event.attempt == task.attempts and task.state in _IN_FLIGHT:
            reason = event.error if isinstance(event, TaskFailed) else event.reason
            task.failures.append(AttemptFailure(event.attempt, reason))
            if isinstance(event, TaskFailed) and event.checks:
                task.checks = list(event.checks)
            retryable = event.retryable if isinstance(event, TaskFailed) else True
            final = not retryable or event.attempt >= task.max_attempts
            task.state, task.reason = ("failed", reason) if final else ("retrying", None)
    elif isinstance(event, TaskRetryScheduled):
        task.state = "retrying"
    elif isinstance(event, TaskSkipped):
        task.state, task.reason = "skipped", event.reason


def _end(run: Run, event: WorkflowCompleted | WorkflowFailed) -> None:
    """The distributor's results are the last word on each task."""
    run.ended_at, run.overall_quality, run.duration_ms = event.ts, event.overall_quality, event.duration_ms
    if isinstance(event, WorkflowFailed):
        run.reason = event.reason
    for result in event.results:
        # A task unknown so far came in a submission whose task list was read from a blob.
        task = run.tasks.setdefault(result.task_id, TaskRun(max_attempts=result.attempts))
        task.state, task.attempts = result.status, result.attempts
        task.reason = result.error if result.status != "succeeded" else None
        if result.quality is not None:
            task.quality = result.quality
        task.duration_ms = result.duration_ms if result.duration_ms is not None else task.duration_ms
        task.model = result.model or task.model
        task.cost_usd = result.cost_usd if result.cost_usd is not None else task.cost_usd


def _cancel(run: Run, event: WorkflowCancelled) -> None:
    """Every task that had not ended is cancelled (it had been released) or skipped (it never was)."""
    run.ended_at = event.ts
    run.reason = event.reason or run.cancel_requested or "cancelled on request"
    for task in run.tasks.values():
        if task.state in TASK_FINAL:
            continue
        if task.attempts > 0:
            task.state, task.reason = "cancelled", f"the workflow was cancelled: {run.reason}"
        else:
            task.state, task.reason = "skipped", f"not run: the workflow was cancelled: {run.reason}"
