"""The append-only, hash-chained event log, its writer, replay, projections and audit."""

from ._audit import AuditReport, Break, check_row, verify
from ._chain import GENESIS, StoredEvent, link
from ._errors import DuplicateEvent, StoreError, StoreLocked
from ._once import Once, Recent
from ._projection import LiveProjection, Projection, rebuild
from ._projections import EventCounts, WorkflowStatus
from ._runs import TERMINAL, AttemptFailure, Run, Runs, TaskRun, WorkflowRuns
from ._sqlite import NewEvent, SqliteEventLog
from ._writer import StoreWriter

__all__ = [
    "GENESIS",
    "TERMINAL",
    "AttemptFailure",
    "AuditReport",
    "Break",
    "DuplicateEvent",
    "EventCounts",
    "LiveProjection",
    "NewEvent",
    "Once",
    "Projection",
    "Recent",
    "Run",
    "Runs",
    "SqliteEventLog",
    "StoreError",
    "StoreLocked",
    "StoreWriter",
    "StoredEvent",
    "TaskRun",
    "WorkflowRuns",
    "WorkflowStatus",
    "check_row",
    "link",
    "rebuild",
    "verify",
]
