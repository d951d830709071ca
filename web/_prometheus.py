"""The projection "prometheus": what `/metrics` shows (web/_metrics.py renders it), folded from the log.

A pure fold (no I/O, no clock) that the view folds with its other projections: workflow runs and
tasks by state (store.WorkflowRuns' rules, kept for the runs in flight only; an ended run leaves
its counts behind), attempts and durations by task kind and model, LLM calls, tokens and cost by
provider and model, task cost, quality per dimension, open alerts, security findings, tool
refusals and rejected messages. Rebuilt from the log it equals the live fold (tested).

Every label value is bounded: a family holds at most `SERIES_KEPT` label sets, the rest count
under `OTHER` in every label, so a scrape stays small whatever the log holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    WorkflowSubmitted,
    run_of,
)
from store import SCORES, Runs, WorkflowRuns, alert_key

__all__ = [
    "DURATION_BUCKETS",
    "NONE",
    "OTHER",
    "QUALITY_BUCKETS",
    "RUN_ACTIVE",
    "RUN_ENDED",
    "SERIES_KEPT",
    "TASK_ACTIVE",
    "TASK_ENDED",
    "Histogram",
    "Prometheus",
    "PrometheusState",
]

# Upper bounds (seconds) of the task duration histogram's buckets; +Inf follows.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                    300.0, 600.0, 1800.0, 3600.0)
# Upper bounds of the overall quality score's buckets (scores are 0..1).
QUALITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SERIES_KEPT = 200  # label sets per family; more count under OTHER
OTHER = "(other)"
NONE = "none"  # the label value of a task with no model, a call with no provider, ...

RUN_ACTIVE = ("submitted", "admitted", "validated", "running")
RUN_ENDED = tuple(kind.verb for kind in RUN_ENDS)  # completed, failed, cancelled, invalid, refused
TASK_ACTIVE = ("waiting", "ready", "running", "retrying")
TASK_ENDED = ("succeeded", "failed", "skipped", "cancelled")
STAGES: dict[type, str] = {InputFlagged: "input", EdgeFlagged: "edge", OutputFlagged: "output"}

# The blob-held values the fold never reads: a submission's tasks and a run's results it does.
_READ = frozenset({"WorkflowSubmitted.tasks", "WorkflowCompleted.results", "WorkflowFailed.results"})
_BY_REFERENCE = BLOB_FIELDS - _READ
# Events nothing here counts: the store's, the executor's bookkeeping of calls.
_PASSED_OVER = frozenset({ModelChosen, CallReserved, ChainCheckpoint, Attested})
_TASK_MOVES = frozenset({TaskReady, TaskStarted, TaskHeartbeat, TaskSucceeded, TaskFailed, TaskTimedOut,
                         TaskRetryScheduled, TaskSkipped})

K = TypeVar("K", bound=tuple[str, ...])


@dataclass
class Histogram:
    """Observations per bucket (not cumulative; the last is +Inf), their sum and count."""

    counts: list[int]
    total: float = 0.0

    @classmethod
    def over(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls([0] * (len(bounds) + 1))

    def observe(self, value: float, bounds: tuple[float, ...]) -> None:
        self.counts[next((i for i, b in enumerate(bounds) if value <= b), len(bounds))] += 1
        self.total += value

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        out, seen = [], 0
        for bound, n in zip((*(_number(b) for b in bounds), "+Inf"), self.counts, strict=True):
            seen += n
            out.append((bound, float(seen)))
        return out


@dataclass
class PrometheusState:
    # Runs in flight, each task's state (store.WorkflowRuns' fold), and each task's kind; an
    # ended run leaves them for the counts of ended runs.
    runs: Runs = field(default_factory=Runs)
    kinds: dict[str, dict[str, str]] = field(default_factory=dict)
    workflows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_ACTIVE, 0))
    workflows_ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_ENDED, 0))
    tasks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASK_ACTIVE, 0))
    tasks_ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASK_ENDED, 0))
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, outcome)
    retries: int = 0
    late_results: int = 0  # results of attempts that had already ended (timed out)
    durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # (kind, model), seconds
    task_cost_usd: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, model)
    llm_calls: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (provider, model, outcome)
    llm_tokens: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (provider, model, direction)
    llm_cost_usd: dict[tuple[str, str], float] = field(default_factory=dict)  # (provider, model)
    quality_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCORES, 0.0))
    assessed: int = 0
    overall: Histogram = field(default_factory=lambda: Histogram.over(QUALITY_BUCKETS))
    alerts_open: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # alert_key -> (id, alert, severity)
    alerts_raised: dict[tuple[str, str], int] = field(default_factory=dict)  # (alert, severity)
    findings: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (stage, type, severity)
    tool_refusals: dict[tuple[str, str], int] = field(default_factory=dict)  # (tool, kind)
    rejected: dict[str, int] = field(default_factory=lambda: {"malformed": 0, "untrusted": 0})


class Prometheus:
    """Projection "prometheus": what `/metrics` shows, folded in place into a `PrometheusState`."""

    name = "prometheus"
    by_reference = _BY_REFERENCE

    def __init__(self) -> None:
        self._runs = WorkflowRuns()

    def initial(self) -> PrometheusState:
        return PrometheusState()

    def apply(self, state: PrometheusState, event: Event) -> PrometheusState:
        kind = type(event)
        if kind in _TASK_MOVES:  # most of a log: straight to the fold of its state
            self._lifecycle(state, event)
            return state
        match event:
            case _ if kind in _PASSED_OVER:
                pass
            case LLMCalled():
                key = (event.provider or NONE, event.model or NONE)
                _add(state.llm_calls, (*key, event.outcome), 1)
                _add(state.llm_tokens, (*key, "input"), event.tokens_in)
                _add(state.llm_tokens, (*key, "output"), event.tokens_out)
                _add(state.llm_cost_usd, key, event.cost_usd or 0.0)
            case TaskAssessed():
                _scored(state, event)
            case AlertRaised():
                _add(state.alerts_raised, (event.alert, event.severity), 1)
                state.alerts_open[alert_key(event.alert, event.subject)] = (event.id, event.alert, event.severity)
            case AlertResolved():
                raised = alert_key(event.alert, event.subject)
                if raised in state.alerts_open and state.alerts_open[raised][0] == event.raised_id:
                    del state.alerts_open[raised]
            case InputFlagged() | EdgeFlagged() | OutputFlagged():
                for finding in event.findings:
                    _add(state.findings, (STAGES[type(event)], finding.type, finding.severity), 1)
            case ToolRefused():
                _add(state.tool_refusals, (event.tool, event.kind), 1)
            case MessageRejected():
                state.rejected[event.kind] = state.rejected.get(event.kind, 0) + 1
            case WorkflowSubmitted():
                self._submitted(state, event)
            case _:
                self._lifecycle(state, event)
        return state

    def _submitted(self, state: PrometheusState, event: WorkflowSubmitted) -> None:
        if event.id in state.runs.runs:
            return
        self._runs.apply(state.runs, event)
        state.kinds[event.id] = {t.id: t.type for t in event.tasks}
        state.workflows["submitted"] += 1
        state.tasks["waiting"] += len(event.tasks)

    def _lifecycle(self, state: PrometheusState, event: Event) -> None:
        """A run's or a task's state moved (store.WorkflowRuns says how): the counts follow."""
        run_id = run_of(event) or _latest(state.runs, event.workflow_id)
        run = state.runs.runs.get(run_id)
        if run is None:
            return
        if isinstance(event, TaskRetryScheduled):
            state.retries += 1
        task_id: str = getattr(event, "task_id", "")
        task = run.tasks.get(task_id)
        whole = task is None or isinstance(event, RUN_ENDS)  # a run's end may move every task
        before = run.state, [t.state for t in run.tasks.values()] if whole else [task.state]  # type: ignore[union-attr]
        self._runs.apply(state.runs, event)
        after = run.state, [t.state for t in run.tasks.values()] if whole else [task.state]  # type: ignore[union-attr]
        if before[1] == after[1] and isinstance(event, TaskSucceeded | TaskFailed):
            state.late_results += 1  # not the attempt in flight: it had been timed out
        if before == after:
            return
        _move(state.workflows, before[0], -1)
        for old in before[1]:
            _move(state.tasks, old, -1)
        if run.ended:
            state.workflows_ended[run.state] += 1
            for new in after[1]:
                if new in state.tasks_ended:
                    state.tasks_ended[new] += 1
            _forget(state, run_id, event.workflow_id)
            return
        _move(state.workflows, after[0], 1)
        for new in after[1]:
            _move(state.tasks, new, 1)
        if isinstance(event, TaskSucceeded | TaskFailed | TaskTimedOut) and not whole and before[1] != after[1]:
            kind = state.kinds.get(run_id, {}).get(task_id, NONE)
            outcome = "timed_out" if isinstance(event, TaskTimedOut) else event.verb
            _add(state.attempts, (kind, outcome), 1)
            if isinstance(event, TaskSucceeded):
                key = _slot(state.durations, (kind, event.model or NONE))
                state.durations.setdefault(key, Histogram.over(DURATION_BUCKETS)).observe(
                    event.duration_ms / 1000, DURATION_BUCKETS)
                _add(state.task_cost_usd, key, event.cost_usd or 0.0)
                if event.quality is not None:  # what no model wrote is scored in its attempt
                    _scored(state, event.quality)


def _scored(state: PrometheusState, scores: TaskAssessed | Quality) -> None:
    state.assessed += 1
    for name in SCORES:
        state.quality_sum[name] += getattr(scores, name)
    state.overall.observe(scores.overall, QUALITY_BUCKETS)


def _latest(runs: Runs, workflow_id: str) -> str:
    ids = runs.by_workflow.get(workflow_id)
    return ids[-1] if ids else ""


def _forget(state: PrometheusState, run_id: str, workflow_id: str) -> None:
    del state.runs.runs[run_id]
    state.kinds.pop(run_id, None)
    ids = state.runs.by_workflow.get(workflow_id, [])
    if run_id in ids:
        ids.remove(run_id)
    if not ids:
        state.runs.by_workflow.pop(workflow_id, None)


def _move(counts: dict[str, int], key: str, n: int) -> None:
    if key in counts:
        counts[key] += n


def _slot(counts: dict[K, Any], key: K) -> K:
    """`key`, or OTHER in every label once the family holds `SERIES_KEPT` label sets."""
    if key in counts or len(counts) < SERIES_KEPT:
        return key
    return tuple(OTHER for _ in key)  # type: ignore[return-value]


def _add(counts: dict[K, Any], key: K, n: float) -> None:
    key = _slot(counts, key)
    counts[key] = counts.get(key, 0) + n


def _number(value: float) -> str:
    return repr(float(value))
