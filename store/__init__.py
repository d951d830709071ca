"""The append-only, hash-chained event log, its writer, replay, projections and audit."""

from ._audit import AuditReport, Break, check_row, verify
from ._chain import GENESIS, NewEvent, StoredEvent, link
from ._errors import DuplicateEvent, StoreError, StoreLocked
from ._log import EventLog, LogReader, completed
from ._metrics import Metrics, MetricsState, ModelStats, percentile, report
from ._once import Once, Recent
from ._projection import LiveProjection, Projection, rebuild
from ._projections import EventCounts, WorkflowStatus
from ._runs import TERMINAL, AttemptFailure, Run, Runs, TaskRun, WorkflowRuns
from ._sqlite import SqliteEventLog
from ._writer import StoreWriter

__all__ = [
    "GENESIS",
    "TERMINAL",
    "AttemptFailure",
    "AuditReport",
    "Break",
    "DuplicateEvent",
    "EventCounts",
    "EventLog",
    "LiveProjection",
    "LogReader",
    "Metrics",
    "MetricsState",
    "ModelStats",
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
    "completed",
    "link",
    "percentile",
    "rebuild",
    "report",
    "verify",
]
