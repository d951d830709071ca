"""The append-only, hash-chained event log, its writer, replay, projections, audit and reports."""

from ._audit import AuditReport, Break, check_row, verify
from ._chain import GENESIS, NewEvent, StoredEvent, link
from ._errors import DuplicateEvent, StoreError, StoreLocked
from ._log import EventLog, LogReader, completed
from ._metrics import Metrics, MetricsState, ModelStats, RecentAlert, alert_key, percentile
from ._metrics_report import iso, report, summary
from ._once import Once, Recent
from ._projection import LiveProjection, Projection, rebuild
from ._projections import EventCounts, WorkflowStatus
from ._reports import HOURS_RULE, InvalidHours, check_hours, monitoring_report, quality_report
from ._reports_security import SECURITY_ALERTS, security_report
from ._runs import TERMINAL, AttemptFailure, Run, Runs, TaskRun, WorkflowRuns
from ._sqlite import SqliteEventLog
from ._windows import (
    DIMENSIONS,
    SCORES,
    Bucket,
    Stats,
    Tier,
    Windows,
    add_scores,
    dimension_keys,
    merged,
    percentile_ms,
)
from ._writer import LINGER_SECONDS, StoreWriter

__all__ = [
    "DIMENSIONS",
    "GENESIS",
    "HOURS_RULE",
    "LINGER_SECONDS",
    "SCORES",
    "SECURITY_ALERTS",
    "TERMINAL",
    "AttemptFailure",
    "AuditReport",
    "Break",
    "Bucket",
    "DuplicateEvent",
    "EventCounts",
    "EventLog",
    "InvalidHours",
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
    "check_hours",
    "check_row",
    "completed",
    "dimension_keys",
    "iso",
    "link",
    "merged",
    "monitoring_report",
    "percentile",
    "percentile_ms",
    "quality_report",
    "rebuild",
    "report",
    "security_report",
    "summary",
    "verify",
]
