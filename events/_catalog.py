"""The `Event` union: every event type Ymera knows, in one place."""

from __future__ import annotations

from typing import TypeAlias

from ._feedback import FeedbackGiven
from ._llm import CallReserved, LLMCalled, ModelChosen
from ._security import CancelRefused, EdgeFlagged, InputFlagged, OutputFlagged, ToolRefused
from ._system import AlertRaised, AlertResolved, Attested, ChainCheckpoint, MessageRejected
from ._task import (
    OutcomeChecked,
    TaskAssessed,
    TaskFailed,
    TaskHeartbeat,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
)
from ._tools import ToolCalled
from ._workflow import (
    CancelRequested,
    WorkflowAdmitted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
)

__all__ = ["ANY_ACTOR", "BLOB_FIELDS", "CLIENT", "EMITTED_BY", "EVENT_TYPES", "Event"]

Event: TypeAlias = (
    WorkflowSubmitted
    | WorkflowAdmitted
    | WorkflowRefused
    | WorkflowValidated
    | WorkflowInvalid
    | CancelRequested
    | WorkflowCancelled
    | WorkflowCompleted
    | WorkflowFailed
    | TaskReady
    | TaskStarted
    | TaskHeartbeat
    | TaskSucceeded
    | TaskFailed
    | TaskTimedOut
    | TaskRetryScheduled
    | TaskSkipped
    | OutcomeChecked
    | TaskAssessed
    | LLMCalled
    | CallReserved
    | ModelChosen
    | FeedbackGiven
    | MessageRejected
    | ChainCheckpoint
    | Attested
    | AlertRaised
    | AlertResolved
    | InputFlagged
    | OutputFlagged
    | EdgeFlagged
    | ToolRefused
    | CancelRefused
    | ToolCalled
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in Event.__args__}
# Every field a large value of may travel in a blob, as `"<type>.<field>"`: what a reader that
# reads none of them names to leave them there (a projection's `by_reference`).
BLOB_FIELDS = frozenset(f"{name}.{field}" for name, kind in EVENT_TYPES.items() for field in kind.blob_fields)

CLIENT = "client"  # what a client's events name as their actor (the envelope's default)
ANY_ACTOR = "any actor"  # an event every actor emits of its own, proving itself: `Attested`
# Who emits each event type: the one actor allowed to (or any client, for a submission, a
# cancel, a rating). What receivers will check each event's signer against, and what NATS
# permissions will let each publish (issue 10); today every emitter names itself in `actor`.
EMITTED_BY: dict[str, str] = {
    "WorkflowSubmitted": CLIENT, "CancelRequested": CLIENT, "FeedbackGiven": CLIENT,
    "WorkflowAdmitted": "security", "WorkflowRefused": "security",
    "WorkflowValidated": "validator", "WorkflowInvalid": "validator", "OutcomeChecked": "validator",
    "TaskReady": "distributor", "TaskRetryScheduled": "distributor", "TaskSkipped": "distributor",
    "TaskTimedOut": "distributor", "WorkflowCancelled": "distributor", "WorkflowCompleted": "distributor",
    "WorkflowFailed": "distributor",
    "TaskStarted": "executor", "TaskHeartbeat": "executor", "TaskSucceeded": "executor", "TaskFailed": "executor",
    "LLMCalled": "executor", "CallReserved": "executor", "ModelChosen": "executor",
    "TaskAssessed": "assessor",
    "AlertRaised": "monitor", "AlertResolved": "monitor",
    "MessageRejected": "store", "ChainCheckpoint": "store", "Attested": ANY_ACTOR,
    "InputFlagged": "security", "OutputFlagged": "executor", "EdgeFlagged": "executor",
    "ToolRefused": "executor", "ToolCalled": "executor", "CancelRefused": "distributor",
}
