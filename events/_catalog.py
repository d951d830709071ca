"""The `Event` union: every event type Ymera knows, in one place."""

from __future__ import annotations

from typing import TypeAlias

from ._feedback import FeedbackGiven
from ._llm import CallReserved, LLMCalled, ModelChosen
from ._system import AlertRaised, ChainCheckpoint, MessageRejected
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

__all__ = ["EVENT_TYPES", "Event"]

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
    | AlertRaised
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in Event.__args__}
