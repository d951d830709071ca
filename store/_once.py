"""Each event folded once, whatever the stream holds: the gate every projection folds through.

The stream may hold an event twice: a copy published after the duplicate window had passed
(a paused process resuming, a twin executor finishing the same attempt). The log keeps the
first copy only (`id UNIQUE`), so a fold of the stream must drop the others to equal a fold
of the log. Remembering every id ever folded would grow with history; the gate remembers
ids per active workflow run instead, and forgets a run's ids when the run ends:

- A run starts with its `WorkflowSubmitted` and ends with its `WorkflowCompleted`,
  `WorkflowFailed`, `WorkflowCancelled`, or the `WorkflowInvalid`/`WorkflowRefused` of the
  submission that started it. While it is active, each of its event ids passes once.
- An event of a workflow with no active run (it ended, or this fold never saw it start) is
  not folded: a late heartbeat or result after the end, a cancel of a finished workflow.
  The rule reads nothing but the events, so a fold of the stream and a fold of the log
  (`store.rebuild`) drop the same events and agree.
- `MessageRejected` (the store writer rejects each stream seq once, in seq order) passes
  when its `stream_seq` is past the last one folded, whatever workflow its subject names.
- Events outside any workflow (alerts) pass once.
- Ids seen outside an active run (an ended run's, a workflow-less event's, one dropped for
  having no run) are kept among the last `LOOSE_KEPT`, so their copies are dropped too, even
  once the same workflow id runs again.

The gate is exact while a copy arrives less than `LOOSE_KEPT` forgotten ids after its first:
a copy past that, or a copy of a `WorkflowSubmitted` past it, would pass. Nothing in Ymera
re-publishes an old event (the bus never re-sends), so such a copy can only come from outside.

The state is plain data (a msgspec Struct of dicts and sets), so an actor's snapshot holds it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from events import (
    NO_WORKFLOW,
    Event,
    MessageRejected,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
)

__all__ = ["LOOSE_KEPT", "Once", "Run"]

LOOSE_KEPT = 100_000
_ENDS = (WorkflowCompleted, WorkflowFailed, WorkflowCancelled)
_REFUSALS = (WorkflowInvalid, WorkflowRefused)


class Run(msgspec.Struct):
    submission: str
    ids: set[str] = msgspec.field(default_factory=set)


class Once(msgspec.Struct):
    runs: dict[str, Run] = msgspec.field(default_factory=dict)  # workflow id -> its active run
    # The last LOOSE_KEPT ids seen outside an active run, oldest first: those of ended runs,
    # of workflow-less events, and of events dropped for having no run.
    loose: dict[str, None] = msgspec.field(default_factory=dict)
    rejected_through: int = 0  # the highest stream seq a folded MessageRejected named

    def admit(self, event: Event) -> bool:
        """Whether to fold `event`; remembers that it was."""
        if isinstance(event, MessageRejected) and event.stream_seq is not None:
            if event.stream_seq <= self.rejected_through:
                return False
            self.rejected_through = event.stream_seq
            return True
        if event.id in self.loose:
            return False
        run = self.runs.get(event.workflow_id)
        if run is None:
            if isinstance(event, WorkflowSubmitted):
                self.runs[event.workflow_id] = Run(event.id, {event.id})
                return True
            self._forget_into_loose([event.id])
            return event.workflow_id == NO_WORKFLOW
        if event.id in run.ids:
            return False
        run.ids.add(event.id)
        if isinstance(event, _ENDS) or (isinstance(event, _REFUSALS)
                                        and event.causation_id in (None, run.submission)):
            del self.runs[event.workflow_id]
            self._forget_into_loose(run.ids)
        return True

    def _forget_into_loose(self, ids: Iterable[str]) -> None:
        for event_id in ids:
            self.loose[event_id] = None
        for _ in range(len(self.loose) - LOOSE_KEPT):
            del self.loose[next(iter(self.loose))]
