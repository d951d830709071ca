"""The validator: checks a workflow before anything runs, and each task's outcome after it ran.

Listens to: WorkflowSubmitted, WorkflowAdmitted, TaskSucceeded, TaskFailed and TaskTimedOut
(an attempt that ended so, its later result is late and not checked), workflow ends (to
forget), and, when rebuilding, its own WorkflowValidated / WorkflowInvalid / OutcomeChecked.
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
    WorkflowSubmitted,
    WorkflowValidated,
    derive_id,
    now,
)

from ._outcome import check_outcome
from ._plan import plan
from ._rules import validate_workflow

__all__ = ["Validator"]


class Validator(Actor):
    name: ClassVar[str] = "validator"
    subjects: ClassVar[tuple[str, ...]] = (
        "ymera.wf.*.submitted", "ymera.wf.*.admitted", "ymera.wf.*.completed", "ymera.wf.*.failed",
        "ymera.wf.*.cancelled", "ymera.task.*.*.succeeded", "ymera.task.*.*.failed", "ymera.task.*.*.timed_out",
    )
    own_subjects: ClassVar[tuple[str, ...]] = (
        "ymera.wf.*.validated", "ymera.wf.*.invalid", "ymera.task.*.*.outcome_checked")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.submissions: dict[str, WorkflowSubmitted] = {}  # workflow id -> its submission, while active
        self.admitted: set[str] = set()  # admitted, not yet validated
        self.specs: dict[str, dict[str, TaskSpec]] = {}  # workflow id -> task specs, while it runs
        self.unchecked: dict[tuple[str, str], TaskSucceeded] = {}
        self.checked: dict[str, set[str]] = {}  # workflow id -> tasks whose outcome was checked
        # workflow id -> (task, attempt) ended by TaskFailed/TaskTimedOut: a result after that is late.
        self.ended_attempts: dict[str, set[tuple[str, int]]] = {}

    def apply(self, event: Event) -> None:
        wf = event.workflow_id
        if isinstance(event, WorkflowSubmitted):
            if wf not in self.submissions and wf not in self.specs:
                self.submissions[wf] = event
        elif isinstance(event, WorkflowAdmitted):
            if wf in self.submissions and event.causation_id == self.submissions[wf].id:
                self.admitted.add(wf)
        elif isinstance(event, (WorkflowValidated, WorkflowInvalid)):
            self.admitted.discard(wf)
            submission = self.submissions.pop(wf, None)
            if isinstance(event, WorkflowValidated) and submission is not None:
                self.specs[wf] = {t.id: t for t in submission.tasks}
        elif isinstance(event, TaskSucceeded):
            if (event.task_id not in self.checked.get(wf, ()) and wf in self.specs
                    and (event.task_id, event.attempt) not in self.ended_attempts.get(wf, ())):
                self.unchecked.setdefault((wf, event.task_id), event)
        elif isinstance(event, (TaskFailed, TaskTimedOut)):
            if wf in self.specs:
                self.ended_attempts.setdefault(wf, set()).add((event.task_id, event.attempt))
        elif isinstance(event, OutcomeChecked):
            self.checked.setdefault(wf, set()).add(event.task_id)
            self.unchecked.pop((wf, event.task_id), None)
        elif isinstance(event, (WorkflowCompleted, WorkflowFailed, WorkflowCancelled)):
            self.specs.pop(wf, None)
            self.submissions.pop(wf, None)
            self.admitted.discard(wf)
            self.checked.pop(wf, None)
            self.ended_attempts.pop(wf, None)

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, WorkflowAdmitted) and event.workflow_id in self.admitted:
            return [self._validate(event.workflow_id, now())]
        if isinstance(event, TaskSucceeded) and (event.workflow_id, event.task_id) in self.unchecked:
            return [await self._check(event.workflow_id, event.task_id, now())]
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        out = [self._validate(wf, at) for wf in sorted(self.admitted)]
        out += [await self._check(wf, task, at) for wf, task in list(self.unchecked)]
        return out

    def _validate(self, workflow_id: str, at: datetime) -> Event:
        submission = self.submissions[workflow_id]
        common: dict[str, Any] = {"id": derive_id(submission.id, "validation"), "ts": at, "workflow_id": workflow_id,
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

    async def _check(self, workflow_id: str, task_id: str, at: datetime) -> Event:
        succeeded = await self.resolve(self.unchecked[(workflow_id, task_id)])
        problems = check_outcome(self.specs[workflow_id][task_id], succeeded.output)
        decision = OutcomeChecked(
            id=derive_id(workflow_id, "OutcomeChecked", task_id), ts=at, workflow_id=workflow_id,
            causation_id=succeeded.id, actor=self.name, task_id=task_id, attempt=succeeded.attempt,
            passed=not problems, problems=problems)
        self.apply(decision)
        return decision
