"""The assessor: scores every task's result, off the critical path (issue "quality" deepens the heuristics).

Listens to: WorkflowSubmitted (the task specs), TaskSucceeded (output, duration), TaskFailed
and TaskTimedOut (an attempt that ended so: a success of it after that is late), the end of
a run (to forget; refusals and invalid runs included), all keyed by run, and, when
rebuilding, its own TaskAssessed.
Emits: TaskAssessed, once per task, for the success the distributor takes as the task's
result: the first of an attempt not ended before it, in stream order (its rule, so the two
agree live and in every rebuild). The distributor releases dependents on the success itself
and ends a workflow once every success is scored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import (
    RUN_ENDS,
    Event,
    TaskAssessed,
    TaskFailed,
    TaskSpec,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowSubmitted,
    derive_id,
    now,
    run_of,
)

from ._scoring import score

__all__ = ["Assessor"]


class Assessor(Actor):
    name: ClassVar[str] = "assessor"
    reads: ClassVar[tuple[type[Event], ...]] = (WorkflowSubmitted, *RUN_ENDS, TaskSucceeded, TaskFailed, TaskTimedOut)
    own: ClassVar[tuple[type[Event], ...]] = (TaskAssessed,)
    state_fields: ClassVar[dict[str, Any]] = {
        "specs": dict[str, dict[str, TaskSpec]], "ended_attempts": dict[str, set[tuple[str, int]]],
        "to_assess": dict[tuple[str, str], TaskSucceeded], "assessed": dict[str, set[str]]}
    state_version: ClassVar[int] = 3  # 3: scores the success itself (the executor checks outcomes)
    # Held until assessed, and only then loaded (`_assess`): a rebuild loads no past outputs.
    by_reference: ClassVar[frozenset[str]] = frozenset({"TaskSucceeded.output"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # All keyed by run: a workflow id may run again.
        self.specs: dict[str, dict[str, TaskSpec]] = {}  # run -> its task specs
        # run -> (task, attempt) ended by TaskFailed/TaskTimedOut: a success after that is late.
        self.ended_attempts: dict[str, set[tuple[str, int]]] = {}
        self.to_assess: dict[tuple[str, str], TaskSucceeded] = {}  # (run, task) -> its result, until scored
        self.assessed: dict[str, set[str]] = {}  # run -> tasks scored

    def apply(self, event: Event) -> None:
        run = run_of(event)
        if isinstance(event, WorkflowSubmitted):
            self.specs.setdefault(run, {t.id: t for t in event.tasks})
        elif isinstance(event, TaskSucceeded):
            if (run in self.specs and event.task_id not in self.assessed.get(run, ())
                    and (event.task_id, event.attempt) not in self.ended_attempts.get(run, ())):
                self.to_assess.setdefault((run, event.task_id), event)
        elif isinstance(event, (TaskFailed, TaskTimedOut)):
            if run in self.specs and (run, event.task_id) not in self.to_assess:
                self.ended_attempts.setdefault(run, set()).add((event.task_id, event.attempt))
        elif isinstance(event, TaskAssessed):
            self.assessed.setdefault(run, set()).add(event.task_id)
            self.to_assess.pop((run, event.task_id), None)
        elif isinstance(event, RUN_ENDS):
            for task_id in self.specs.pop(run, {}):
                self.to_assess.pop((run, task_id), None)
            self.assessed.pop(run, None)
            self.ended_attempts.pop(run, None)

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, TaskSucceeded):
            return await self._assess([(run_of(event), event.task_id)], now())
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return await self._assess(list(self.to_assess), at)

    async def _assess(self, keys: list[tuple[str, str]], at: datetime) -> list[Event]:
        out: list[Event] = []
        for key in keys:
            succeeded = self.to_assess.get(key)
            spec = self.specs.get(key[0], {}).get(key[1])
            if succeeded is None or spec is None:
                continue
            succeeded = await self.resolve(succeeded)
            # A success passed the task's checks: the executor reports one that fails them as failed.
            s = score(spec, succeeded.output, duration_ms=succeeded.duration_ms,
                      timeout_seconds=spec.timeout_seconds or self.settings.task_timeout_seconds,
                      outcome_passed=True, outcome_problems=())
            assessed = TaskAssessed(
                id=derive_id(key[0], "TaskAssessed", key[1]), ts=at, workflow_id=succeeded.workflow_id,
                run_id=key[0], causation_id=succeeded.id,
                actor=self.name, task_id=key[1], attempt=succeeded.attempt, accuracy=s.accuracy,
                completeness=s.completeness, consistency=s.consistency, efficiency=s.efficiency,
                maintainability=s.maintainability, overall=s.overall)
            self.apply(assessed)
            out.append(assessed)
        return out
