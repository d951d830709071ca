"""Each event folded once, whatever the stream holds: the gate every projection folds through.

The stream may hold an event twice: a copy published after the duplicate window had passed
(a paused process resuming, a twin executor finishing the same attempt). The log keeps the
first copy only (`id UNIQUE`), so a fold of the stream must drop the others to equal a fold
of the log. Remembering every id ever folded would grow with history; the gate remembers
ids per active workflow run instead, and forgets a run's ids when the run ends:

- A run (`events.run_of`: a submission's id, every later event's `run_id`) starts with its
  `WorkflowSubmitted` and ends with its `WorkflowCompleted`, `WorkflowFailed`,
  `WorkflowCancelled`, `WorkflowInvalid` or `WorkflowRefused`. While it is active, each of
  its event ids passes once. An event that names no run (from before runs, a cancel naming
  only the workflow) belongs to its workflow's active run.
- An event of a run that is not active (it ended, or this fold never saw it start) is not
  folded: a late heartbeat or result after the end, a cancel of a finished run.
  The rule reads nothing but the events, so a fold of the stream and a fold of the log
  (`store.rebuild`) drop the same events and agree.
- `MessageRejected` (the store writer rejects each stream seq once, in seq order) passes
  when its `stream_seq` is past the last one folded, whatever workflow its subject names.
- Events outside any workflow (alerts) pass once.
- Ids seen outside an active run (an ended run's, a workflow-less event's, one dropped for
  having no run) are kept among the last `LOOSE_KEPT` (`Recent`), so their copies are
  dropped too, a copy of an ended run's submission included.

The gate is exact while a copy arrives less than `LOOSE_KEPT` forgotten ids after its first:
a copy of a submission past that would start its run again in the fold. Nothing in Ymera
re-publishes an old event (the bus never re-sends), so such a copy can only come from outside.

The state is plain data (a msgspec Struct of dicts and sets), so an actor's snapshot holds it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from events import (
    NO_WORKFLOW,
    RUN_ENDS,
    Event,
    MessageRejected,
    WorkflowSubmitted,
)

__all__ = ["LOOSE_KEPT", "Once", "Recent", "Run"]

LOOSE_KEPT = 100_000
# A run ends with its end, its refusal or its invalidity (each names the run it ends).
_NO_ACTIVE_RUN = "-"  # not an id: ids are uuids
_ENDS = frozenset(RUN_ENDS)  # a set, for `type(event) in`: on every fold's path


class Recent(msgspec.Struct):
    """The last `keep` ids added, at least, and at most a quarter more: a memory of what ended
    that is bounded by a constant, not by history. What it holds depends only on the order
    ids were added, so a copy restored from a snapshot evicts exactly as the original would.

    Evicting one id at a time from the front of a dict rescans the slots already deleted
    before it (quadratic); dropping the oldest quarter at once costs each id one copy."""

    keep: int
    ids: dict[str, None] = msgspec.field(default_factory=dict)  # oldest first

    def __contains__(self, key: object) -> bool:
        return key in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, key: str) -> None:
        self.ids[key] = None
        if len(self.ids) > self.keep + self.keep // 4:
            self.ids = dict.fromkeys(list(self.ids)[-self.keep:])


class Run(msgspec.Struct):
    workflow_id: str
    ids: set[str] = msgspec.field(default_factory=set)


class Once(msgspec.Struct):
    runs: dict[str, Run] = msgspec.field(default_factory=dict)  # run id -> the ids folded of it, while active
    latest: dict[str, str] = msgspec.field(default_factory=dict)  # workflow id -> its active run
    # The last LOOSE_KEPT ids seen outside an active run: those of ended runs, of
    # workflow-less events, and of events dropped for having no run.
    loose: Recent = msgspec.field(default_factory=lambda: Recent(LOOSE_KEPT))
    rejected_through: int = 0  # the highest stream seq a folded MessageRejected named
    # workflow id -> how many of its runs are active (more than one only while a second
    # submission of it waits to be refused): a run's end looks for another only if there is one.
    active: dict[str, int] = msgspec.field(default_factory=dict)

    def admit(self, event: Event) -> bool:
        """Whether to fold `event`; remembers that it was. (On every fold's path: kept lean.)"""
        if type(event) is MessageRejected and event.stream_seq is not None:
            if event.stream_seq <= self.rejected_through:
                return False
            self.rejected_through = event.stream_seq
            return True
        kind, event_id = type(event), event.id
        if event_id in self.loose.ids:
            return False
        # The run it belongs to; one that names none belongs to its workflow's active run (an
        # event from before runs, a cancel naming only the workflow); "" outside any workflow.
        submitted = kind is WorkflowSubmitted
        key = event_id if submitted else event.run_id
        if not key and event.workflow_id != NO_WORKFLOW:
            key = self.latest.get(event.workflow_id, _NO_ACTIVE_RUN)
        run = self.runs.get(key) if key else None
        if run is None:
            if submitted:
                self.runs[key] = Run(event.workflow_id, {event_id})
                self.latest[event.workflow_id] = key
                self.active[event.workflow_id] = self.active.get(event.workflow_id, 0) + 1
                return True
            self.loose.add(event_id)
            return not key  # outside any run (alerts): once; of a run not active: not folded
        ids = run.ids
        if event_id in ids:
            return False
        ids.add(event_id)
        if kind in _ENDS:
            del self.runs[key]
            workflow = run.workflow_id
            left = self.active.pop(workflow, 1) - 1
            if left:
                self.active[workflow] = left
            if self.latest.get(workflow) == key:  # another of its runs may still be active
                others = [k for k, r in self.runs.items() if r.workflow_id == workflow] if left else []
                if others:
                    self.latest[workflow] = others[-1]
                else:
                    del self.latest[workflow]
            self._forget_into_loose(ids)
        return True

    def _forget_into_loose(self, ids: Iterable[str]) -> None:
        for event_id in ids:
            self.loose.add(event_id)
