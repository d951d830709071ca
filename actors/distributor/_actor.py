"""The distributor: the one owner of each workflow's state machine and the only retry authority.

Listens to: workflow submissions, refusals, validations, cancellations; task starts,
heartbeats, successes (whose outputs passed their checks in the executor; a kind no model
writes scored in the attempt too), failures and assessments (of the answers models wrote),
its own timeouts (and, when rebuilding, its other own events).
Emits: TaskReady (by priority, within the workflow and workflow-count caps),
TaskRetryScheduled (exponential backoff with jitter; or, once, a quality re-run of a model
task scored below the workflow's `rerun_below_quality`), TaskTimedOut (past the time limit, or
heartbeats stopped), TaskSkipped (a dependency failed), WorkflowCompleted / WorkflowFailed /
WorkflowCancelled, each exactly once; CancelRefused (a cancel from neither the run's submitter nor an
admin, where principals are read off client keys: the run goes on).
Decides: from its folded state only (`_decide.py`); the clock is read only on timer passes.
Its state is keyed by run: every event it emits carries the run's id, and every id it
derives is derived from the run (the submission), so a second run's events are its own.
Its own decisions are folded in as soon as they are published, so a decision is never
taken twice while its event is on its way back through the stream; folding them again when
they arrive changes nothing. A timeout is the exception: it is only marked as decided, and
takes effect when read back, so whether an attempt's result came before or after its timeout
is decided by stream order alone, live and in a rebuild alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import (
    CancelRefused,
    CancelRequested,
    Event,
    TaskAssessed,
    TaskFailed,
    TaskHeartbeat,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
)

from ._decide import activate_queued, decide
from ._state import DistributorState

__all__ = ["Distributor"]

# A decision can enable another in the same instant (a failure skips its dependents, and then
# the workflow can end): deciding again after folding reaches that in a round or two.
_MAX_ROUNDS = 4
# Events after which a queued workflow may be able to start.
_OPENS_OR_FREES_A_SLOT = (WorkflowValidated, WorkflowCompleted, WorkflowFailed, WorkflowCancelled)


class Distributor(Actor):
    name: ClassVar[str] = "distributor"
    reads: ClassVar[tuple[type[Event], ...]] = (
        WorkflowSubmitted, WorkflowRefused, WorkflowValidated, WorkflowInvalid, CancelRequested, TaskStarted,
        TaskHeartbeat, TaskSucceeded, TaskFailed, TaskAssessed, TaskTimedOut,
    )
    own: ClassVar[tuple[type[Event], ...]] = (
        WorkflowCompleted, WorkflowFailed, WorkflowCancelled, TaskReady, TaskRetryScheduled, TaskSkipped, CancelRefused)
    tick_seconds: ClassVar[float | None] = 0.25
    state_fields: ClassVar[dict[str, Any]] = {"state": DistributorState, "read_until": datetime | None}
    # 2: late results and timeouts in stream order (fencing); 3: ended runs bounded; 4: a success
    # releases its dependents (the executor checks outcomes); 5: tried models, quality re-runs, replays;
    # 6: untrusted outputs; 7: cancels judged by who asked (the run's principal, cancels not yet decided)
    # 8: tasks indexed by status, an attempt's time limit its release's, a late attempt's score not the task's
    state_version: ClassVar[int] = 8
    # A large output is passed on to dependents as a reference, which the executor loads.
    by_reference: ClassVar[frozenset[str]] = frozenset({"TaskSucceeded.output"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.state = DistributorState()
        self.read_until: datetime | None = None  # the newest timestamp among the events read from the stream

    def apply(self, event: Event) -> None:
        self.state.apply(event)
        if self.read_until is None or event.ts > self.read_until:
            self.read_until = event.ts

    async def react(self, event: Event) -> list[Event]:
        return await self.handle([event])

    async def handle(self, batch: list[Event]) -> list[Event]:
        """Fold the whole batch, then decide once per workflow it touched (a 2,000-task
        workflow would otherwise be re-examined for every one of its events)."""
        last_cause: dict[str, str] = {}  # run -> the last event of the batch that concerned it
        slots_may_free = False
        for event in batch:
            self.apply(event)
            for run in self.state.runs_of(event):
                last_cause[run] = event.id
            slots_may_free |= isinstance(event, _OPENS_OR_FREES_A_SLOT)
        out: list[Event] = []
        for run, cause in last_cause.items():
            out.extend(self._settle(run, None, cause))
        if slots_may_free or any(isinstance(e, _OPENS_OR_FREES_A_SLOT) for e in out):
            started = activate_queued(self.state, self.settings, None)
            self._fold(started)
            out.extend(started)
        return out

    async def reconcile(self, at: datetime) -> list[Event]:
        out: list[Event] = []
        behind = await self._behind()
        for run in list(self.state.workflows):
            out.extend(self._settle(run, at, None, self.read_until if behind else None))
        started = activate_queued(self.state, self.settings, at)
        self._fold(started)
        out.extend(started)
        return out

    async def _behind(self) -> bool:
        """Whether the stream holds events on our subjects that we have not read yet."""
        # Unknown (no bus, the consumer not created yet at start, no answer): judge by the clock.
        return self.bus is not None and bool(await self.bus.pending(self.name))

    def _settle(self, run: str, at: datetime | None, cause: str | None,
                read_until: datetime | None = None) -> list[Event]:
        """Decide and fold until nothing new follows (a skip leads to a skip, then to the end)."""
        out: list[Event] = []
        seen: set[str] = set()
        for _ in range(_MAX_ROUNDS):
            wf = self.state.workflows.get(run)
            if wf is None:
                break
            fresh = [e for e in decide(self.state, wf, self.settings, at, cause, read_until, admins=self._admins())
                     if e.id not in seen]
            if not fresh:
                break
            seen.update(e.id for e in fresh)
            self._fold(fresh)
            out.extend(fresh)
        return out

    def _admins(self) -> frozenset[str] | None:
        """Who besides a run's submitter may cancel it, where a cancel's principal is the client key
        that signed it: this connection rejects a client's event naming another (bus/_seal.py).
        None elsewhere: a principal is what a client says, and every cancel is honoured."""
        seals = self.bus.seals if self.bus is not None else None
        return frozenset(self.settings.admins) if seals is not None and seals.clients_sign else None

    def _fold(self, decided: list[Event]) -> None:
        for event in decided:
            if isinstance(event, TaskTimedOut):
                # A timeout takes effect when it is read back, in stream order: a result already
                # in the stream ahead of it still counts, in this fold and in every rebuild.
                self.state.timing_out(event)
            else:
                self.state.apply(event)
