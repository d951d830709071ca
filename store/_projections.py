"""The small projections Ymera ships: what state each run of each workflow is in, and how many
events of each type. The full view of a run, task by task, is `WorkflowRuns` (`_runs.py`)."""

from __future__ import annotations

from events import Event, WorkflowSubmitted, run_of

from ._runs import RUN_STATE_OF, TERMINAL

__all__ = ["EventCounts", "WorkflowStatus"]


class WorkflowStatus:
    """workflow_id -> {run id -> its latest state}, runs in the order submitted; a terminal
    state is never left. An event that names no run belongs to its workflow's latest run."""

    name = "workflow_status"

    def initial(self) -> dict[str, dict[str, str]]:
        return {}

    def apply(self, state: dict[str, dict[str, str]], event: Event) -> dict[str, dict[str, str]]:
        status = RUN_STATE_OF.get(type(event))
        if status is None:
            return state
        runs = state.get(event.workflow_id)
        if isinstance(event, WorkflowSubmitted):
            state.setdefault(event.workflow_id, {}).setdefault(event.id, status)
            return state
        if not runs:
            return state
        run = run_of(event) or next(reversed(runs))
        if run in runs and runs[run] not in TERMINAL:
            runs[run] = status
        return state


class EventCounts:
    """event type -> how many were folded (each id once; events of a run while it is active)."""

    name = "event_counts"

    def initial(self) -> dict[str, int]:
        return {}

    def apply(self, state: dict[str, int], event: Event) -> dict[str, int]:
        kind = type(event).__name__
        state[kind] = state.get(kind, 0) + 1
        return state
