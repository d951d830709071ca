"""The monitor's view of the system: a projection folding every event into bounded metrics.

Deterministic (event fields only, never the clock: `clock` is the latest event `ts` folded).
Memory is bounded: the recent samples are fixed-size deques, the time windows a bounded
number of buckets (store/_windows.py); only counters, per-model totals and the workflows that
have not ended yet grow.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from events import (
    BLOB_FIELDS,
    RUN_ENDS,
    AlertRaised,
    AlertResolved,
    Attested,
    CallReserved,
    ChainCheckpoint,
    EdgeFlagged,
    Event,
    InputFlagged,
    LLMCalled,
    MessageRejected,
    ModelChosen,
    OutputFlagged,
    Quality,
    TaskAssessed,
    TaskFailed,
    TaskHeartbeat,
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

from ._windows import NONE, Stats, Windows, add_scores, dimension_keys, keys_of, latency_bin

__all__ = [
    "ALERTS_KEPT",
    "ENDS_WINDOW",
    "LATENCY_WINDOW",
    "QUALITY_WINDOW",
    "Metrics",
    "MetricsState",
    "ModelStats",
    "RecentAlert",
    "alert_key",
    "percentile",
]

QUALITY_WINDOW = 50  # last TaskAssessed overall scores
LATENCY_WINDOW = 500  # last TaskSucceeded durations
ENDS_WINDOW = 50  # last task attempt ends: succeeded, failed or timed_out
ALERTS_KEPT = 20  # last AlertRaised events shown in the report

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


# Events the metrics count nothing of (they are the AI layer's, the store's, the executor's
# liveness): passed over first, as they are half of what an engine emits.
_PASSED_OVER = frozenset({TaskReady, TaskHeartbeat, LLMCalled, CallReserved, ModelChosen, ChainCheckpoint, Attested})


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
    ts: float = 0.0
    subject: str | None = None
    resolved: float | None = None  # when it was resolved (event time), if it was

    @property
    def key(self) -> str:
        return alert_key(self.alert, self.subject)


def alert_key(alert: str, subject: str | None) -> str:
    """One alert of one rule: "<alert>" or, for a rule that watches many, "<alert>/<subject>"."""
    return alert if subject is None else f"{alert}/{subject}"


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
    # run id -> task_id -> (task type, agent), from the run's WorkflowSubmitted, while the run is
    # active: what a task's end counts for in the windows.
    kinds: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    # Security events by what: the alert a high or critical finding counts for, "minor_finding",
    # "rejected_message" or "tool_refused"; one per kind of finding in an InputFlagged /
    # EdgeFlagged / OutputFlagged, per MessageRejected and per ToolRefused.
    security: dict[str, int] = field(default_factory=dict)
    # The alerts raised and not resolved yet, by `alert_key`, folded from AlertRaised / AlertResolved.
    open_alerts: dict[str, RecentAlert] = field(default_factory=dict)
    clock: float = 0.0  # the latest event ts folded, epoch seconds: the windows end there
    windows: Windows = field(default_factory=Windows)

    def __post_init__(self) -> None:
        # A state decoded from a snapshot (actors/_snapshot.py) gets plain deques: bound them again.
        self.recent_quality = deque(self.recent_quality, maxlen=QUALITY_WINDOW)
        self.latencies = deque(self.latencies, maxlen=LATENCY_WINDOW)
        self.ends = deque(self.ends, maxlen=ENDS_WINDOW)
        self.alerts = deque(self.alerts, maxlen=ALERTS_KEPT)

    @property
    def failure_rate(self) -> float:
        """Share of the recent task ends that were not successes; 0.0 with none."""
        if not self.ends:
            return 0.0
        return sum(outcome != "succeeded" for _, outcome in self.ends) / len(self.ends)

    @property
    def recent_quality_mean(self) -> float | None:
        return sum(self.recent_quality) / len(self.recent_quality) if self.recent_quality else None


class Metrics:
    """Projection "metrics": every event folded into a `MetricsState`, updated in place."""

    name = "metrics"
    # It reads no large field but a submission's tasks (their type and agent): every other
    # blob-held value stays in its blob.
    by_reference = BLOB_FIELDS - {"WorkflowSubmitted.tasks"}

    def initial(self) -> MetricsState:
        return MetricsState()

    def apply(self, state: MetricsState, event: Event) -> MetricsState:
        kind = type(event)
        if kind in _PASSED_OVER:
            return state
        run = _run_key(state, event)
        if isinstance(event, (TaskStarted, TaskSucceeded, TaskFailed, TaskTimedOut)):
            began, first_end = _attempt_seen(state, event, run)
            if began:
                state.tasks["started"] += 1
                if run in state.active:
                    state.active[run] = "running"  # a run runs once one of its attempts began
            if not first_end:
                if isinstance(event, (TaskSucceeded, TaskFailed)):
                    state.tasks["late"] += 1  # a result after its attempt was timed out: not the task's
                return state  # a timeout after the attempt's result changes nothing
        if kind in _WORKFLOW_COUNTS:
            state.workflows[_WORKFLOW_COUNTS[kind]] += 1
            _track_workflow(state, event, run)
        if kind in _TASK_COUNTS:
            state.tasks[_TASK_COUNTS[kind]] += 1
        ts = event.ts.timestamp()
        if ts > state.clock:
            state.clock = ts
        match event:
            case WorkflowSubmitted() if run in state.active and isinstance(event.tasks, list):
                state.kinds[run] = {spec.id: (spec.type or NONE, spec.agent or NONE) for spec in event.tasks}
            case TaskSucceeded():
                state.latencies.append(event.duration_ms)
                _end(state, (run, event.task_id, event.attempt), "succeeded")
                if event.model is not None:
                    _count_call(state.models.setdefault(event.model, ModelStats()), event)
                bin_, cost = latency_bin(event.duration_ms), event.cost_usd or 0.0
                task_kind = _kind(state, run, event.task_id)
                counted = state.windows.stats(ts, keys_of(event.workflow_id, task_kind, event.model))
                for stats in counted:
                    stats.succeeded += 1
                    stats.latency[bin_] = stats.latency.get(bin_, 0) + 1
                    stats.cost_usd += cost
                if event.quality is not None:  # what no model wrote is scored in its attempt
                    scored = event.quality
                    # Counted where its success was, unless its score names another type or agent.
                    same = task_kind == (scored.task_type or NONE, scored.agent or NONE)
                    _scored(state, ts, event.workflow_id, event.model, scored, counted if same else None)
            case TaskFailed():
                _end(state, (run, event.task_id, event.attempt), "failed")
                for stats in state.windows.stats(ts, _task_keys(state, run, event)):
                    stats.failed += 1
            case TaskTimedOut():
                _end(state, (run, event.task_id, event.attempt), "timed_out")
                for stats in state.windows.stats(ts, _task_keys(state, run, event)):
                    stats.timed_out += 1
            case TaskAssessed():
                _scored(state, ts, event.workflow_id, event.model, event)
            case WorkflowCompleted() | WorkflowFailed():
                for stats in state.windows.stats(ts, (("workflow", event.workflow_id),)):
                    if isinstance(event, WorkflowCompleted):
                        stats.completed += 1
                    else:
                        stats.run_failed += 1
            case InputFlagged() | EdgeFlagged() | OutputFlagged():
                # A high or critical finding counts for its alert; any other for the total alone.
                _security(state, ts, sorted({f.alert if f.severity in ("high", "critical") else "minor_finding"
                                             for f in event.findings}), event.workflow_id)
            case MessageRejected():
                _security(state, ts, ("rejected_message",), event.workflow_id)
            case ToolRefused():
                _security(state, ts, ("tool_refused",), event.workflow_id)
            case AlertRaised():
                # The monitor folds its own alerts; a second copy of one changes nothing.
                if all(seen.id != event.id for seen in state.alerts):
                    raised = RecentAlert(event.id, event.alert, event.severity, event.message, ts, event.subject)
                    state.alerts.append(raised)
                    state.open_alerts[raised.key] = raised
            case AlertResolved():
                key = alert_key(event.alert, event.subject)
                if key in state.open_alerts and state.open_alerts[key].id == event.raised_id:
                    del state.open_alerts[key]
                for i, seen in enumerate(state.alerts):
                    if seen.id == event.raised_id and seen.resolved is None:
                        state.alerts[i] = RecentAlert(seen.id, seen.alert, seen.severity, seen.message, seen.ts,
                                                      seen.subject, ts)
            case _:
                pass
        return state


def _scored(state: MetricsState, ts: float, workflow: str, model: str | None, scores: TaskAssessed | Quality,
            counted: list[Stats] | None = None) -> None:
    """Count a score; `counted`: the stats it counts in, when the caller has them already."""
    state.assessed += 1
    state.overall_sum += scores.overall
    state.recent_quality.append(scores.overall)
    if counted is None:
        counted = state.windows.stats(ts, dimension_keys(workflow, scores.task_type, scores.agent, model))
    for stats in counted:
        add_scores(stats, scores)


def _security(state: MetricsState, ts: float, whats: Iterable[str], workflow: str) -> None:
    whats = list(whats)
    for what in whats:
        state.security[what] = state.security.get(what, 0) + 1
    state.windows.security(ts, whats, workflow)


def _task_keys(state: MetricsState, run: str, event: TaskFailed | TaskTimedOut) -> list[tuple[str, str]]:
    model = None if isinstance(event, TaskTimedOut) else event.model
    return keys_of(event.workflow_id, _kind(state, run, event.task_id), model)


def _kind(state: MetricsState, run: str, task_id: str) -> tuple[str, str]:
    """The (type, agent) of a task of an active run, from its submission; (NONE, NONE) if unknown."""
    return state.kinds.get(run, {}).get(task_id, (NONE, NONE))


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
        state.kinds.pop(run, None)
        if state.latest_run.get(event.workflow_id) == run:
            del state.latest_run[event.workflow_id]
    elif isinstance(event, WorkflowSubmitted):
        state.active.setdefault(run, "submitted")
    elif run in state.active and state.active[run] != "running":
        state.active[run] = _WORKFLOW_COUNTS[type(event)]


def _end(state: MetricsState, attempt: tuple[str, str, int], outcome: str) -> None:
    # An attempt ends once in the window: a late TaskFailed after its TaskTimedOut is not a second
    # end. In an active run `_attempt_seen` said so already; outside one, look.
    if attempt[0] in state.active or all(key != attempt for key, _ in state.ends):
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
