"""The validator: checks a workflow before anything runs, and each task's outcome after it ran.

Listens to: WorkflowSubmitted, WorkflowAdmitted, WorkflowRefused and workflow ends (to
forget), TaskSucceeded, TaskFailed and TaskTimedOut (an attempt that ended so: its later
result is late and not checked); all keyed by run, since a workflow id may run again;
and, when rebuilding, its own WorkflowValidated / WorkflowInvalid / OutcomeChecked.
Emits: WorkflowValidated (with the plan: parallel levels, critical path, speedup) or
WorkflowInvalid (every problem, each naming the task and field); OutcomeChecked per task.
Decides: with `validate_workflow`, `plan` and `check_outcome` (pure functions beside this file).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from actors._settings import Settings
from events import (
    Event,
    OutcomeChecked,
    TaskFailed,
    TaskSpec,
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
    derive_id,
    now,
    run_of,
)

from ._outcome import check_outcome
from ._plan import plan
from ._rules import validate_workflow

__all__ = ["Validator"]


class Validator(Actor):
    name: ClassVar[str] = "validator"
    subjects: ClassVar[tuple[str, ...]] = (
        "ymera.wf.*.submitted", "ymera.wf.*.admitted", "ymera.wf.*.refused", "ymera.wf.*.completed",
        "ymera.wf.*.failed", "ymera.wf.*.cancelled", "ymera.task.*.*.succeeded", "ymera.task.*.*.failed",
        "ymera.task.*.*.timed_out",
    )
    own_subjects: ClassVar[tuple[str, ...]] = (
        "ymera.wf.*.validated", "ymera.wf.*.invalid", "ymera.task.*.*.outcome_checked")
    state_fields: ClassVar[dict[str, Any]] = {
        "submissions": dict[str, WorkflowSubmitted], "admitted": set[str], "specs": dict[str, dict[str, TaskSpec]],
        "unchecked": dict[tuple[str, str], TaskSucceeded], "checked": dict[str, set[str]],
        "ended_attempts": dict[str, set[tuple[str, int]]]}
    state_version: ClassVar[int] = 2  # 2: attempts ended by failure or timeout (fencing)
    # Held until checked, and only then loaded (`_check`): a rebuild loads no past outputs.
    by_reference: ClassVar[frozenset[str]] = frozenset({"TaskSucceeded.output"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Keyed by run (a workflow id may run again once its run ended).
        self.submissions: dict[str, WorkflowSubmitted] = {}  # run -> its submission, until validated
        self.admitted: set[str] = set()  # runs admitted, not yet validated
        self.specs: dict[str, dict[str, TaskSpec]] = {}  # run -> task specs, while it runs
        self.unchecked: dict[tuple[str, str], TaskSucceeded] = {}  # (run, task) -> its success
        self.checked: dict[str, set[str]] = {}  # run -> tasks whose outcome was checked
        # run -> (task, attempt) ended by TaskFailed/TaskTimedOut: a result after that is late.
        self.ended_attempts: dict[str, set[tuple[str, int]]] = {}

    def apply(self, event: Event) -> None:
        run = run_of(event)
        if isinstance(event, WorkflowSubmitted):
            if run not in self.specs:
                self.submissions.setdefault(run, event)
        elif isinstance(event, WorkflowAdmitted):
            if event.causation_id in self.submissions:
                self.admitted.add(event.causation_id)
        elif isinstance(event, WorkflowRefused):
            if event.causation_id is not None:
                self.submissions.pop(event.causation_id, None)
        elif isinstance(event, (WorkflowValidated, WorkflowInvalid)):
            self.admitted.discard(run)
            submission = self.submissions.pop(run, None)
            if isinstance(event, WorkflowValidated) and submission is not None:
                self.specs[run] = {t.id: t for t in submission.tasks}
        elif isinstance(event, TaskSucceeded):
            if (event.task_id not in self.checked.get(run, ()) and run in self.specs
                    and (event.task_id, event.attempt) not in self.ended_attempts.get(run, ())):
                self.unchecked.setdefault((run, event.task_id), event)
        elif isinstance(event, (TaskFailed, TaskTimedOut)):
            if run in self.specs:
                self.ended_attempts.setdefault(run, set()).add((event.task_id, event.attempt))
        elif isinstance(event, OutcomeChecked):
            self.checked.setdefault(run, set()).add(event.task_id)
            self.unchecked.pop((run, event.task_id), None)
        elif isinstance(event, (WorkflowCompleted, WorkflowFailed, WorkflowCancelled)):
            for task_id in self.specs.pop(run, {}):
                self.unchecked.pop((run, task_id), None)
            self.submissions.pop(run, None)
            self.admitted.discard(run)
            self.checked.pop(run, None)
            self.ended_attempts.pop(run, None)

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, WorkflowAdmitted) and event.causation_id in self.admitted:
            return [self._validate(event.causation_id, now())]
        if isinstance(event, TaskSucceeded) and (run_of(event), event.task_id) in self.unchecked:
            return [await self._check(run_of(event), event.task_id, now())]
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        out = [self._validate(run, at) for run in sorted(self.admitted)]
        out += [await self._check(run, task, at) for run, task in list(self.unchecked)]
        return out

    def _validate(self, run: str, at: datetime) -> Event:
        submission = self.submissions[run]
        common: dict[str, Any] = {"id": derive_id(submission.id, "validation"), "ts": at,
                                  "workflow_id": submission.workflow_id, "run_id": run,
                                  "causation_id": submission.id, "actor": self.name}
        problems = validate_workflow(submission, self.settings)
        decision: Event
        if problems:
            decision = WorkflowInvalid(**common, problems=problems)
        else:
            p = plan(submission.tasks)
            decision = WorkflowValidated(**common, levels=p.levels, critical_path=p.critical_path,
                                         estimated_parallel_speedup=p.estimated_parallel_speedup)
        self.apply(decision)
        return decision

    async def _check(self, run: str, task_id: str, at: datetime) -> Event:
        succeeded = await self.resolve(self.unchecked[(run, task_id)])
        problems = check_outcome(self.specs[run][task_id], succeeded.output)
        decision = OutcomeChecked(
            id=derive_id(run, "OutcomeChecked", task_id), ts=at, workflow_id=succeeded.workflow_id, run_id=run,
            causation_id=succeeded.id, actor=self.name, task_id=task_id, attempt=succeeded.attempt,
            passed=not problems, problems=problems)
        self.apply(decision)
        return decision
