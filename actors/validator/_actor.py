"""The validator: checks a workflow before anything runs.

Listens to: WorkflowSubmitted, WorkflowAdmitted, WorkflowRefused and workflow ends (to
forget), keyed by run, since a workflow id may run again; and, when rebuilding, its own
WorkflowValidated / WorkflowInvalid.
Emits: WorkflowValidated (with the plan: parallel levels, critical path, speedup) or
WorkflowInvalid (every problem, each naming the task and field).
Decides: with `validate_workflow` and `plan` (pure functions beside this file). Each task's
outcome is checked by the attempt that produced it (the executor), against the same `expect`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import (
    RUN_ENDS,
    Event,
    WorkflowAdmitted,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
    derive_id,
    now,
    run_of,
)

from ._plan import plan
from ._rules import validate_workflow

__all__ = ["Validator"]

# The ends of a run it reads: all but its own invalid, folded when decided.
_ENDS_READ: tuple[type[Event], ...] = tuple(kind for kind in RUN_ENDS if kind is not WorkflowInvalid)


class Validator(Actor):
    name: ClassVar[str] = "validator"
    reads: ClassVar[tuple[type[Event], ...]] = (WorkflowSubmitted, WorkflowAdmitted, *_ENDS_READ)
    own: ClassVar[tuple[type[Event], ...]] = (WorkflowValidated, WorkflowInvalid)
    state_fields: ClassVar[dict[str, Any]] = {"submissions": dict[str, WorkflowSubmitted], "admitted": set[str],
                                              "validated": set[str]}
    state_version: ClassVar[int] = 3  # 3: outcomes are checked by the executor

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Keyed by run (a workflow id may run again once its run ended).
        self.submissions: dict[str, WorkflowSubmitted] = {}  # run -> its submission, until validated
        self.admitted: set[str] = set()  # runs admitted, not yet validated
        self.validated: set[str] = set()  # runs validated that have not ended: a copy of their submission is old

    def apply(self, event: Event) -> None:
        run = run_of(event)
        if isinstance(event, WorkflowSubmitted):
            if run not in self.validated:
                self.submissions.setdefault(run, event)
        elif isinstance(event, WorkflowAdmitted):
            if event.causation_id in self.submissions:
                self.admitted.add(event.causation_id)
        elif isinstance(event, WorkflowRefused):
            if event.causation_id is not None:
                self.submissions.pop(event.causation_id, None)
        elif isinstance(event, (WorkflowValidated, WorkflowInvalid)):
            self.admitted.discard(run)
            if self.submissions.pop(run, None) is not None and isinstance(event, WorkflowValidated):
                self.validated.add(run)
        elif isinstance(event, RUN_ENDS):  # (its own invalid and a refusal are folded above)
            self.submissions.pop(run, None)
            self.admitted.discard(run)
            self.validated.discard(run)

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, WorkflowAdmitted) and event.causation_id in self.admitted:
            return [self._validate(event.causation_id, now())]
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return [self._validate(run, at) for run in sorted(self.admitted)]

    def _validate(self, run: str, at: datetime) -> Event:
        submission = self.submissions[run]
        common: dict[str, Any] = {"id": derive_id(submission.id, "validation", key=self.settings.id_key), "ts": at,
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
