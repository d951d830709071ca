"""The append-only, hash-chained event log, its writer, replay, projections and audit."""

from ._audit import AuditReport, Break, check_row, verify
from ._chain import GENESIS, NewEvent, StoredEvent, link
from ._errors import DuplicateEvent, StoreError, StoreLocked
from ._log import EventLog, LogReader, completed
from ._metrics import Metrics, MetricsState, ModelStats, RecentAlert, add_scores, alert_key, dimension_keys, percentile
from ._metrics_report import iso, report, summary
from ._once import Once, Recent
from ._projection import LiveProjection, Projection, rebuild
from ._projections import EventCounts, WorkflowStatus
from ._runs import TERMINAL, AttemptFailure, Run, Runs, TaskRun, WorkflowRuns
from ._sqlite import SqliteEventLog
from ._windows import DIMENSIONS, SCORES, Bucket, Stats, Tier, Windows, merged, percentile_ms
from ._writer import StoreWriter

__all__ = [
    "DIMENSIONS",
    "GENESIS",
    "SCORES",
    "TERMINAL",
    "AttemptFailure",
    "AuditReport",
    "Break",
    "Bucket",
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
    "RecentAlert",
    "Run",
    "Runs",
    "SqliteEventLog",
    "Stats",
    "StoreError",
    "StoreLocked",
    "StoreWriter",
    "StoredEvent",
    "TaskRun",
    "Tier",
    "Windows",
    "WorkflowRuns",
    "WorkflowStatus",
    "add_scores",
    "alert_key",
    "check_row",
    "completed",
    "dimension_keys",
    "iso",
    "link",
    "merged",
    "percentile",
    "percentile_ms",
    "rebuild",
    "report",
    "summary",
    "verify",
]
