"""The projections Ymera ships: what state each workflow is in, and how many events of each type."""

from __future__ import annotations

from events import (
    Event,
    TaskFailed,
    TaskReady,
    TaskStarted,
    TaskSucceeded,
    WorkflowAdmitted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
)

__all__ = ["EventCounts", "WorkflowStatus"]

TERMINAL = frozenset({"refused", "invalid", "completed", "failed", "cancelled"})

_STATUS_OF: dict[type, str] = {
    WorkflowSubmitted: "submitted",
    WorkflowAdmitted: "admitted",
    WorkflowRefused: "refused",
    WorkflowValidated: "validated",
    WorkflowInvalid: "invalid",
    TaskReady: "running",
    TaskStarted: "running",
    TaskSucceeded: "running",
    TaskFailed: "running",
    WorkflowCompleted: "completed",
    WorkflowFailed: "failed",
    WorkflowCancelled: "cancelled",
}


class WorkflowStatus:
    """workflow_id -> its latest status; a terminal status is never left."""

    name = "workflow_status"

    def initial(self) -> dict[str, str]:
        return {}

    def apply(self, state: dict[str, str], event: Event) -> dict[str, str]:
        status = _STATUS_OF.get(type(event))
        if status is None:
            return state
        if state.get(event.workflow_id) not in TERMINAL:
            state[event.workflow_id] = status
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
