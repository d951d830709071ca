"""The assessor: scores every answer a model wrote from evidence, off the critical path (docs/quality.md, "Scores").

Listens to: WorkflowSubmitted (the task specs), TaskSucceeded (output, duration), TaskFailed
and TaskTimedOut (an attempt that ended so: a success of it after that is late), the end of
a run (to forget; refusals and invalid runs included), all keyed by run, and, when
rebuilding, its own TaskAssessed.
Emits: TaskAssessed, once per attempt that succeeded with an answer a model wrote, for the
success the distributor takes: the first of an attempt not ended before it, in stream order
(its rule, so the two agree live and in every rebuild). A task has one such success, or two
when the distributor re-runs it for quality: the first scored success of a task keeps the id
it always had (run, "TaskAssessed", task), a later one's id names its attempt too. A success of
a kind no model writes carries its score, computed in the attempt by the same rules
(`TaskSucceeded.quality`), and gets no TaskAssessed. The distributor releases dependents on
the success itself (or, for a model task of a workflow that re-runs low quality, on its
score) and ends a workflow once every success is scored.

It keeps each scored success of a run that another task depends on, by reference (its output
stays a blob reference when it is one), the better of a task's two when it was re-run for
quality as the distributor decides: the outputs a task's dependents were given, which the
scorer compares their answers with. Before scoring it has ruff lint the Python in the output
(`actors._quality`), so the scorer itself stays pure; the judge's verdict, when the executor
got one, is in the success itself.
A run's end forgets all of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

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

from .._quality import lint_answer, score

__all__ = ["Assessor"]


class _Peek(msgspec.Struct):
    """What tells a success scored in its attempt, read before the whole event is decoded."""

    type: str = ""
    run_id: str = ""
    task_id: str = ""
    quality: msgspec.Raw = msgspec.Raw()  # left as it is: empty when there is none


_PEEK = msgspec.json.Decoder(_Peek)


class Assessor(Actor):
    name: ClassVar[str] = "assessor"
    reads: ClassVar[tuple[type[Event], ...]] = (WorkflowSubmitted, *RUN_ENDS, TaskSucceeded, TaskFailed, TaskTimedOut)
    own: ClassVar[tuple[type[Event], ...]] = (TaskAssessed,)
    # Off a step's critical path (a release waits for the success, not its score): a score may
    # come 10 ms later for the assessor to wake once for a trickle of successes.
    linger_seconds: ClassVar[float] = 0.01
    state_fields: ClassVar[dict[str, Any]] = {
        "specs": dict[str, dict[str, TaskSpec]], "ended_attempts": dict[str, set[tuple[str, int]]],
        "to_assess": dict[tuple[str, str, int], TaskSucceeded], "assessed": dict[str, dict[str, set[int]]],
        "outputs": dict[str, dict[str, tuple[float, TaskSucceeded]]], "depended": dict[str, set[str]]}
    # 3: scores the success itself (the executor checks outcomes); 4: per attempt (quality re-runs);
    # 5: keeps the scored successes, whose outputs the scorer compares their dependents with
    state_version: ClassVar[int] = 5
    # Held until assessed, and only then loaded (`_assess`): a rebuild loads no past outputs.
    by_reference: ClassVar[frozenset[str]] = frozenset({"TaskSucceeded.output"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # All keyed by run: a workflow id may run again.
        self.specs: dict[str, dict[str, TaskSpec]] = {}  # run -> its task specs
        # run -> (task, attempt) ended by TaskFailed/TaskTimedOut: a success after that is late.
        self.ended_attempts: dict[str, set[tuple[str, int]]] = {}
        # (run, task, attempt) -> its result, until scored
        self.to_assess: dict[tuple[str, str, int], TaskSucceeded] = {}
        self.assessed: dict[str, dict[str, set[int]]] = {}  # run -> task -> its attempts scored
        # run -> task -> (overall, success) of the success that stands: its dependents' input
        self.outputs: dict[str, dict[str, tuple[float, TaskSucceeded]]] = {}
        # run -> the tasks some task depends on: only their outputs are kept (up to 64 KiB each inline)
        self.depended: dict[str, set[str]] = {}

    def apply(self, event: Event) -> None:
        run = run_of(event)
        if isinstance(event, WorkflowSubmitted):
            if run not in self.specs:
                self.specs[run] = {t.id: t for t in event.tasks}
                self.depended[run] = {dep for t in event.tasks for dep in t.dependencies}
        elif isinstance(event, TaskSucceeded):
            if (run not in self.specs or event.attempt in self.assessed.get(run, {}).get(event.task_id, ())
                    or (event.task_id, event.attempt) in self.ended_attempts.get(run, ())):
                return
            if event.quality is None:
                self.to_assess.setdefault((run, event.task_id, event.attempt), event)
            elif event.task_id in self.depended[run]:
                # Scored in its attempt (no model wrote it, so it is never re-run for quality):
                # the first success not ended before it stands, as the distributor takes it.
                self.outputs.setdefault(run, {}).setdefault(event.task_id, (event.quality.overall, event))
        elif isinstance(event, (TaskFailed, TaskTimedOut)):
            if run in self.specs and (run, event.task_id, event.attempt) not in self.to_assess:
                self.ended_attempts.setdefault(run, set()).add((event.task_id, event.attempt))
        elif isinstance(event, TaskAssessed):
            self.assessed.setdefault(run, {}).setdefault(event.task_id, set()).add(event.attempt)
            succeeded = self.to_assess.pop((run, event.task_id, event.attempt), None)
            kept = self.outputs.get(run, {}).get(event.task_id)
            # The distributor's rule: of a task's two scored successes the better stands, the re-run on a tie.
            if succeeded is not None and event.task_id in self.depended.get(run, ()) and (
                    kept is None or event.overall >= kept[0]):
                self.outputs.setdefault(run, {})[event.task_id] = (event.overall, succeeded)
        elif isinstance(event, RUN_ENDS):
            self.specs.pop(run, None)
            for key in [k for k in self.to_assess if k[0] == run]:
                del self.to_assess[key]
            self.assessed.pop(run, None)
            self.ended_attempts.pop(run, None)
            self.outputs.pop(run, None)
            self.depended.pop(run, None)

    def passes_over(self, data: bytes) -> bool:
        # Most successes carry their score: only those a task of their run depends on are kept.
        try:
            peek = _PEEK.decode(data)
        except msgspec.DecodeError:
            return False  # decoded in full, for the store writer's reason
        scored = peek.type == "TaskSucceeded" and len(peek.quality) > 0 and bytes(peek.quality) != b"null"
        return scored and peek.task_id not in self.depended.get(peek.run_id, ())

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, TaskSucceeded) and event.quality is None:
            return await self._assess([(run_of(event), event.task_id, event.attempt)], now())
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return await self._assess(list(self.to_assess), at)

    async def _assess(self, keys: list[tuple[str, str, int]], at: datetime) -> list[Event]:
        out: list[Event] = []
        for key in keys:
            run, task_id, attempt = key
            succeeded = self.to_assess.get(key)
            spec = self.specs.get(run, {}).get(task_id)
            if succeeded is None or spec is None:
                continue
            succeeded = await self.resolve(succeeded)
            inputs = await self._inputs(run, spec)
            lint = await lint_answer(succeeded.output)  # None: no Python in it, or no ruff
            # A success passed the task's checks: the executor reports one that fails them as failed.
            s = score(spec, succeeded.output, duration_ms=succeeded.duration_ms,
                      timeout_seconds=spec.timeout_seconds or self.settings.task_timeout_seconds,
                      checks=succeeded.checks, inputs=inputs, lint=lint, judged=succeeded.judged)
            # The task's first score keeps the id it always had; a re-run's names its attempt.
            parts = (task_id, attempt) if self.assessed.get(run, {}).get(task_id) else (task_id,)
            assessed = TaskAssessed(
                id=derive_id(run, "TaskAssessed", *parts, key=self.settings.id_key), ts=at,
                workflow_id=succeeded.workflow_id, run_id=run, causation_id=succeeded.id,
                actor=self.name, task_id=task_id, attempt=attempt, task_type=spec.type, agent=spec.agent,
                model=succeeded.model, replay_of=succeeded.replay_of, accuracy=s.accuracy,
                completeness=s.completeness, consistency=s.consistency, efficiency=s.efficiency,
                maintainability=s.maintainability, overall=s.overall, reasons=s.reasons)
            self.apply(assessed)
            out.append(assessed)
        return out

    async def _inputs(self, run: str, spec: TaskSpec) -> dict[str, object]:
        """The outputs of the task's dependencies, as it was given them: each one's success that
        stands (or, not scored yet, its latest success waiting to be)."""
        inputs: dict[str, object] = {}
        kept = self.outputs.get(run, {})
        for dep in dict.fromkeys(spec.dependencies):
            if dep in kept:
                event: TaskSucceeded | None = kept[dep][1]
            else:
                waiting = [k for k in self.to_assess if k[0] == run and k[1] == dep]
                event = self.to_assess[max(waiting)] if waiting else None
            if event is not None:
                inputs[dep] = (await self.resolve(event)).output
        return inputs
