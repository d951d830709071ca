"""The assessor: scores every checked task outcome (issue "quality" deepens the heuristics).

Listens to: WorkflowSubmitted (the task specs), TaskSucceeded (output, duration; per attempt,
so the one scored is the attempt the validator checked), OutcomeChecked, the end of a run
(to forget; refusals and invalid runs included), all keyed by run, and, when rebuilding,
its own TaskAssessed.
Emits: TaskAssessed, once per task, with the scores of `_scoring.score`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from actors._settings import Settings
from events import (
    Event,
    OutcomeChecked,
    TaskAssessed,
    TaskSpec,
    TaskSucceeded,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    derive_id,
    now,
    run_of,
)

from ._scoring import score

__all__ = ["Assessor"]


class Assessor(Actor):
    name: ClassVar[str] = "assessor"
    subjects: ClassVar[tuple[str, ...]] = (
        "ymera.wf.*.submitted", "ymera.wf.*.completed", "ymera.wf.*.failed", "ymera.wf.*.cancelled",
        "ymera.wf.*.refused", "ymera.wf.*.invalid",
        "ymera.task.*.*.succeeded", "ymera.task.*.*.outcome_checked",
    )
    own_subjects: ClassVar[tuple[str, ...]] = ("ymera.task.*.*.assessed",)
    state_fields: ClassVar[dict[str, Any]] = {
        "specs": dict[str, dict[str, TaskSpec]], "succeeded": dict[str, dict[tuple[str, int], TaskSucceeded]],
        "to_assess": dict[tuple[str, str], OutcomeChecked], "assessed": dict[str, set[str]]}
    state_version: ClassVar[int] = 2  # 2: successes per run and attempt (fencing)
    # Held until assessed, and only then loaded (`_assess`): a rebuild loads no past outputs.
    by_reference: ClassVar[frozenset[str]] = frozenset({"TaskSucceeded.output"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.specs: dict[str, dict[str, TaskSpec]] = {}  # run -> its task specs
        # run -> (task, attempt) -> its success: the one scored is the attempt checked.
        self.succeeded: dict[str, dict[tuple[str, int], TaskSucceeded]] = {}
        self.to_assess: dict[tuple[str, str], OutcomeChecked] = {}
        self.assessed: dict[str, set[str]] = {}

    def apply(self, event: Event) -> None:
        wf = run_of(event)  # keyed by run: a workflow id may run again
        if isinstance(event, WorkflowSubmitted):
            self.specs.setdefault(wf, {t.id: t for t in event.tasks})
        elif isinstance(event, TaskSucceeded):
            self.succeeded.setdefault(wf, {}).setdefault((event.task_id, event.attempt), event)
        elif isinstance(event, OutcomeChecked):
            if event.task_id not in self.assessed.get(wf, ()):
                self.to_assess.setdefault((wf, event.task_id), event)
        elif isinstance(event, TaskAssessed):
            self.assessed.setdefault(wf, set()).add(event.task_id)
            self.to_assess.pop((wf, event.task_id), None)
        elif isinstance(event, (WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowRefused,
                                WorkflowInvalid)):
            tasks = self.specs.pop(wf, {})
            self.assessed.pop(wf, None)
            self.succeeded.pop(wf, None)
            for task_id in tasks:
                self.to_assess.pop((wf, task_id), None)

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, OutcomeChecked):
            return await self._assess([(run_of(event), event.task_id)], now())
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return await self._assess(list(self.to_assess), at)

    async def _assess(self, keys: list[tuple[str, str]], at: datetime) -> list[Event]:
        out: list[Event] = []
        for key in keys:
            checked = self.to_assess.get(key)
            succeeded = self.succeeded.get(key[0], {}).get((key[1], checked.attempt)) if checked else None
            spec = self.specs.get(key[0], {}).get(key[1])
            if checked is None or succeeded is None or spec is None:
                continue
            succeeded = await self.resolve(succeeded)
            s = score(spec, succeeded.output, duration_ms=succeeded.duration_ms,
                      timeout_seconds=spec.timeout_seconds or self.settings.task_timeout_seconds,
                      outcome_passed=checked.passed, outcome_problems=checked.problems)
            assessed = TaskAssessed(
                id=derive_id(key[0], "TaskAssessed", key[1]), ts=at, workflow_id=checked.workflow_id,
                run_id=key[0], causation_id=checked.id,
                actor=self.name, task_id=key[1], attempt=succeeded.attempt, accuracy=s.accuracy,
                completeness=s.completeness, consistency=s.consistency, efficiency=s.efficiency,
                maintainability=s.maintainability, overall=s.overall)
            self.apply(assessed)
            out.append(assessed)
        return out
