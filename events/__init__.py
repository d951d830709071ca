"""Ymera's event vocabulary: every event type, the `Event` union, subjects and the codec.

Other packages import from here only, never from the private modules.
"""

from ._blobs import INLINE_LIMIT, BlobGet, BlobPut, blob_ref, check_blob, offload, resolve
from ._catalog import EVENT_TYPES, Event
from ._codec import MAX_EVENT_BYTES, decode, decode_message, encode, excerpt
from ._envelope import NO_WORKFLOW, BlobRef, EventBase, Name, WorkflowId, derive_id, new_id, now
from ._errors import BlobError, EventTooLarge, MalformedEvent, YmeraError
from ._schema import json_schema
from ._subjects import ALL_SUBJECTS, PREFIX, subject_of, subject_of_type, workflow_subjects
from ._system import AlertRaised, MessageRejected
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
    Expectations,
    Priority,
    Problem,
    RetryPolicy,
    TaskResult,
    TaskSpec,
    WorkflowAdmitted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
)

__all__ = [
    "ALL_SUBJECTS",
    "EVENT_TYPES",
    "INLINE_LIMIT",
    "MAX_EVENT_BYTES",
    "NO_WORKFLOW",
    "PREFIX",
    "AlertRaised",
    "BlobError",
    "BlobGet",
    "BlobPut",
    "BlobRef",
    "CancelRequested",
    "Event",
    "EventBase",
    "EventTooLarge",
    "Expectations",
    "MalformedEvent",
    "MessageRejected",
    "Name",
    "OutcomeChecked",
    "Priority",
    "Problem",
    "RetryPolicy",
    "TaskAssessed",
    "TaskFailed",
    "TaskHeartbeat",
    "TaskReady",
    "TaskResult",
    "TaskRetryScheduled",
    "TaskSkipped",
    "TaskSpec",
    "TaskStarted",
    "TaskSucceeded",
    "TaskTimedOut",
    "WorkflowAdmitted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowId",
    "WorkflowInvalid",
    "WorkflowRefused",
    "WorkflowSubmitted",
    "WorkflowValidated",
    "YmeraError",
    "blob_ref",
    "check_blob",
    "decode",
    "decode_message",
    "derive_id",
    "encode",
    "excerpt",
    "json_schema",
    "new_id",
    "now",
    "offload",
    "resolve",
    "subject_of",
    "subject_of_type",
    "workflow_subjects",
]
