"""The monitor's view of the system: a projection folding every event into bounded metrics.

Deterministic (event fields only, never the clock). Memory is bounded: windows are fixed-size
deques; only counters, per-model totals and the workflows that have not ended yet grow.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from events import (
    EVENT_TYPES,
    RUN_ENDS,
    AlertRaised,
    EdgeFlagged,
    Event,
    InputFlagged,
    MessageRejected,
    OutputFlagged,
    TaskAssessed,
    TaskFailed,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    ToolRefused,
    WorkflowAdmitted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
    run_of,
)

__all__ = [
    "ALERTS_KEPT",
    "ENDS_WINDOW",
    "LATENCY_WINDOW",
    "QUALITY_WINDOW",
    "Metrics",
    "MetricsState",
    "ModelStats",
    "RecentAlert",
    "percentile",
    "report",
]

QUALITY_WINDOW = 50  # last TaskAssessed overall scores
LATENCY_WINDOW = 500  # last TaskSucceeded durations
ENDS_WINDOW = 50  # last task attempt ends: succeeded, failed or timed_out
ALERTS_KEPT = 20  # last AlertRaised events shown in the report
SECURITY_KEPT = 1000  # last security events (findings, rejected messages): the alerts count the last hour of them

# Workflow events counted by type; the reported name of each.
_WORKFLOW_COUNTS: dict[type, str] = {
    WorkflowSubmitted: "submitted",
    WorkflowAdmitted: "admitted",
    WorkflowRefused: "refused",
    WorkflowValidated: "validated",
    WorkflowInvalid: "invalid",
    WorkflowCompleted: "completed",
    WorkflowFailed: "failed",
    WorkflowCancelled: "cancelled",
}
# "started" counts attempts that began (`_attempt_seen`), not TaskStarted events.
_STARTED = "started"
_TASK_COUNTS: dict[type, str] = {
    TaskSucceeded: "succeeded",
    TaskFailed: "failed",
    TaskTimedOut: "timed_out",
    TaskSkipped: "skipped",
    TaskRetryScheduled: "retried",
    MessageRejected: "rejected_messages",
}


@dataclass
class ModelStats:
    """Totals over one model's successful calls (a TaskFailed names no model)."""

    calls: int = 0
    total_duration_ms: float = 0.0
    total_cost_usd: float = 0.0
    total_tokens: int = 0


@dataclass(frozen=True)
class RecentAlert:
    id: str
    alert: str
    severity: str
    message: str


@dataclass
class MetricsState:
    workflows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_WORKFLOW_COUNTS.values(), 0))
    # run id -> "submitted" | "admitted" | "validated" | "running", until the run ends.
    active: dict[str, str] = field(default_factory=dict)
    # workflow id -> its latest run, until it ends: the run of an event that names none (from before runs).
    latest_run: dict[str, str] = field(default_factory=dict)
    # "late": results of attempts that had already ended (timed out), never a task's result.
    tasks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("started", *_TASK_COUNTS.values(), "late"),
                                                                        0))
    models: dict[str, ModelStats] = field(default_factory=dict)
    assessed: int = 0
    overall_sum: float = 0.0
    recent_quality: deque[float] = field(default_factory=lambda: deque(maxlen=QUALITY_WINDOW))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    # (run id, task_id, attempt) -> "succeeded" | "failed" | "timed_out"; one entry per attempt.
    ends: deque[tuple[tuple[str, str, int], str]] = field(default_factory=lambda: deque(maxlen=ENDS_WINDOW))
    alerts: deque[RecentAlert] = field(default_factory=lambda: deque(maxlen=ALERTS_KEPT))
    # run id -> (task_id, attempt) -> "started", then how the attempt ended, while the run is
    # active: a second end of an attempt is a late result (after a timeout) or a moot timeout
    # (after a result).
    attempts: dict[str, dict[tuple[str, int], str]] = field(default_factory=dict)
    # (epoch seconds, what: the alert a high or critical finding counts for, "minor_finding",
    # "rejected_message" or "tool_refused", workflow id), one per kind of finding in an
    # InputFlagged / EdgeFlagged / OutputFlagged, per MessageRejected and per ToolRefused.
    security: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=SECURITY_KEPT))
    # The alert gate's memory: "<alert>/<severity>" of every alert raised and not yet cleared.
    # Folding AlertRaised adds; `evaluate` (actors/monitor/_alerts.py) clears. See AlertGate.
    raised: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # A state decoded from a snapshot (actors/_snapshot.py) gets plain deques: bound them again.
        self.recent_quality = deque(self.recent_quality, maxlen=QUALITY_WINDOW)
        self.latencies = deque(self.latencies, maxlen=LATENCY_WINDOW)
        self.ends = deque(self.ends, maxlen=ENDS_WINDOW)
        self.alerts = deque(self.alerts, maxlen=ALERTS_KEPT)
        self.security = deque(self.security, maxlen=SECURITY_KEPT)

    @property
    def failure_rate(self) -> float:
        """Share of the recent task ends that were not successes; 0.0 with none."""
        if not self.ends:
            return 0.0
        return sum(outcome != "succeeded" for _, outcome in self.ends) / len(self.ends)

    @property
    def recent_timeouts(self) -> int:
        return sum(outcome == "timed_out" for _, outcome in self.ends)

    @property
    def recent_quality_mean(self) -> float | None:
        return sum(self.recent_quality) / len(self.recent_quality) if self.recent_quality else None


class Metrics:
    """Projection "metrics": every event folded into a `MetricsState`, updated in place."""

    name = "metrics"
    # It reads no large field: every blob-held value stays in its blob.
    by_reference = frozenset(f"{name}.{field}" for name, kind in EVENT_TYPES.items() for field in kind.blob_fields)

    def initial(self) -> MetricsState:
        return MetricsState()

    def apply(self, state: MetricsState, event: Event) -> MetricsState:
        kind = type(event)
        run = _run_key(state, event)
        if isinstance(event, (TaskStarted, TaskSucceeded, TaskFailed, TaskTimedOut)):
            began, first_end = _attempt_seen(state, event, run)
            if began:
                state.tasks["started"] += 1
            if not first_end:
                if isinstance(event, (TaskSucceeded, TaskFailed)):
                    state.tasks["late"] += 1  # a result after its attempt was timed out: not the task's
                return state  # a timeout after the attempt's result changes nothing
        if kind in _WORKFLOW_COUNTS:
            state.workflows[_WORKFLOW_COUNTS[kind]] += 1
            _track_workflow(state, event, run)
        if kind in _TASK_COUNTS:
            state.tasks[_TASK_COUNTS[kind]] += 1
        match event:
            case TaskReady() | TaskStarted() if run in state.active:
                state.active[run] = "running"
            case TaskSucceeded():
                state.latencies.append(event.duration_ms)
                _end(state, (run, event.task_id, event.attempt), "succeeded")
                if event.model is not None:
                    _count_call(state.models.setdefault(event.model, ModelStats()), event)
            case TaskFailed():
                _end(state, (run, event.task_id, event.attempt), "failed")
            case TaskTimedOut():
                _end(state, (run, event.task_id, event.attempt), "timed_out")
            case TaskAssessed():
                state.assessed += 1
                state.overall_sum += event.overall
                state.recent_quality.append(event.overall)
            case InputFlagged() | EdgeFlagged() | OutputFlagged():
                # A high or critical finding counts for its alert; any other for the total alone.
                at = event.ts.timestamp()
                alerts = sorted({f.alert if f.severity in ("high", "critical") else "minor_finding"
                                 for f in event.findings})
                state.security.extend((at, alert, event.workflow_id) for alert in alerts)
            case MessageRejected():
                state.security.append((event.ts.timestamp(), "rejected_message", event.workflow_id))
            case ToolRefused():
                state.security.append((event.ts.timestamp(), "tool_refused", event.workflow_id))
            case AlertRaised():
                # The monitor folds its own alerts; a second copy of one changes nothing.
                if all(seen.id != event.id for seen in state.alerts):
                    state.alerts.append(RecentAlert(event.id, event.alert, event.severity, event.message))
                state.raised.add(f"{event.alert}/{event.severity}")
            case _:
                pass
        return state


def _attempt_seen(state: MetricsState, event: TaskStarted | TaskSucceeded | TaskFailed | TaskTimedOut,
                  run: str) -> tuple[bool, bool]:
    """(whether the attempt began with this event, whether this is its first end), in stream
    order (the distributor's rule). An attempt began with its TaskStarted, or, if it ended
    before its first heartbeat, with its result; a TaskStarted is no end."""
    if run not in state.active:
        return not isinstance(event, TaskTimedOut), True
    seen = state.attempts.setdefault(run, {})
    key = (event.task_id, event.attempt)
    before = seen.get(key)
    began = before is None and not isinstance(event, TaskTimedOut)
    if isinstance(event, TaskStarted):
        if before is None:
            seen[key] = _STARTED
        return began, False
    if before is not None and before != _STARTED:
        return False, False
    seen[key] = type(event).__name__
    return began, True


def _run_key(state: MetricsState, event: Event) -> str:
    """The run an event belongs to; one that names none (written before runs) belongs to its
    workflow's latest run."""
    run = run_of(event)
    if isinstance(event, WorkflowSubmitted):
        state.latest_run[event.workflow_id] = run
    return run or state.latest_run.get(event.workflow_id, event.workflow_id)


def _track_workflow(state: MetricsState, event: Event, run: str) -> None:
    if isinstance(event, RUN_ENDS):
        state.active.pop(run, None)
        state.attempts.pop(run, None)
        if state.latest_run.get(event.workflow_id) == run:
            del state.latest_run[event.workflow_id]
    elif isinstance(event, WorkflowSubmitted):
        state.active.setdefault(run, "submitted")
    elif run in state.active and state.active[run] != "running":
        state.active[run] = _WORKFLOW_COUNTS[type(event)]


def _end(state: MetricsState, attempt: tuple[str, str, int], outcome: str) -> None:
    # An attempt ends once in the window: a late TaskFailed after its TaskTimedOut is not a second end.
    if all(key != attempt for key, _ in state.ends):
        state.ends.append((attempt, outcome))


def _count_call(stats: ModelStats, event: TaskSucceeded) -> None:
    stats.calls += 1
    stats.total_duration_ms += event.duration_ms
    stats.total_cost_usd += event.cost_usd or 0.0
    usage = event.usage
    if "total_tokens" in usage:
        stats.total_tokens += usage["total_tokens"]
    else:
        stats.total_tokens += sum(usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens",
                                                            "input_tokens", "output_tokens"))


def percentile(values: deque[float] | list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def report(state: MetricsState, *, active: bool = True) -> dict[str, Any]:
    """The monitoring report: totals, current gauges, quality, latency, models and recent alerts.

    Workflow counts are totals of each event, except `running` and `active`, which are how
    many workflows are in that state now.
    """
    running = sum(status == "running" for status in state.active.values())
    recent = state.recent_quality_mean
    p50, p95 = percentile(state.latencies, 0.5), percentile(state.latencies, 0.95)
    return {
        "monitoring_status": "active" if active else "inactive",
        "workflows": {**state.workflows, "running": running, "active": len(state.active)},
        "tasks": dict(state.tasks),
        "quality": {
            "assessed": state.assessed,
            "mean_overall": round(state.overall_sum / state.assessed, 4) if state.assessed else None,
            "recent_mean": round(recent, 4) if recent is not None else None,
        },
        "latency_ms": {
            "p50": round(p50, 3) if p50 is not None else None,
            "p95": round(p95, 3) if p95 is not None else None,
        },
        "failure_rate": round(state.failure_rate, 4),
        "models": {
            name: {
                "calls": stats.calls,
                "total_duration_ms": round(stats.total_duration_ms, 3),
                "mean_duration_ms": round(stats.total_duration_ms / stats.calls, 3) if stats.calls else None,
                "cost_usd": round(stats.total_cost_usd, 6),
                "tokens": stats.total_tokens,
            }
            for name, stats in sorted(state.models.items())
        },
        "alerts": [
            {"alert": a.alert, "severity": a.severity, "message": a.message} for a in state.alerts
        ],
        "security_events": dict(Counter(what for _, what, _ in state.security)),
    }
