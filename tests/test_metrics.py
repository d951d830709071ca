"""The monitor's metrics fold and its report: totals, gauges, time windows per dimension (alert rules:
tests/test_monitor_rules.py; the replayed log: tests/test_monitor_replay.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import events
from store import Metrics, MetricsState, report

METRICS = Metrics()


def _common(workflow_id: str) -> dict[str, Any]:
    return {"id": events.new_id(), "ts": events.now(), "workflow_id": workflow_id}


def submitted(wf: str) -> events.Event:
    return events.WorkflowSubmitted(**_common(wf), tasks=[events.TaskSpec(id="t1", type="noop")])


def admitted(wf: str) -> events.Event:
    return events.WorkflowAdmitted(**_common(wf), principal="alice")


def validated(wf: str) -> events.Event:
    return events.WorkflowValidated(**_common(wf), levels=[["t1"]])


def ready(wf: str, task: str, attempt: int = 1) -> events.Event:
    return events.TaskReady(**_common(wf), task_id=task, attempt=attempt)


def started(wf: str, task: str, attempt: int = 1) -> events.Event:
    return events.TaskStarted(**_common(wf), task_id=task, attempt=attempt, executor="ex-1")


def succeeded(wf: str = "w", task: str = "t", attempt: int = 1, duration_ms: float = 12.0, model: str | None = None,
              cost_usd: float | None = None, usage: dict[str, int] | None = None) -> events.Event:
    return events.TaskSucceeded(**_common(wf), task_id=task, attempt=attempt, output="x", duration_ms=duration_ms,
                                model=model, cost_usd=cost_usd, usage=usage or {})


def failed(wf: str = "w", task: str = "t", attempt: int = 1) -> events.Event:
    return events.TaskFailed(**_common(wf), task_id=task, attempt=attempt, error="boom", duration_ms=5.0)


def timed_out(wf: str = "w", task: str = "t", attempt: int = 1) -> events.Event:
    return events.TaskTimedOut(**_common(wf), task_id=task, attempt=attempt, reason="no heartbeat for 15 s")


def assessed(overall: float, wf: str = "w", task: str = "t") -> events.Event:
    return events.TaskAssessed(**_common(wf), task_id=task, attempt=1, accuracy=overall, completeness=overall,
                               consistency=overall, efficiency=overall, maintainability=overall, overall=overall)


def scored_success(wf: str, task: str, attempt: int, overall: float) -> events.Event:
    """A success of a kind no model writes: its score computed in the attempt."""
    quality = events.Quality(task_type="noop", accuracy=overall, completeness=overall, consistency=overall,
                             efficiency=overall, maintainability=overall, overall=overall)
    return events.TaskSucceeded(**_common(wf), task_id=task, attempt=attempt, duration_ms=3.0, quality=quality)


def raised(alert: str, severity: str = "warning", message: str = "m", subject: str | None = None
           ) -> events.AlertRaised:
    return events.AlertRaised(**_common(events.NO_WORKFLOW), actor="monitor", alert=alert,
                              severity=severity, message=message, subject=subject)  # type: ignore[arg-type]


def fold(items: Iterable[events.Event], state: MetricsState | None = None) -> MetricsState:
    state = METRICS.initial() if state is None else state
    for event in items:
        state = METRICS.apply(state, event)
    return state


def realistic() -> list[events.Event]:
    w1, w2, w3, w4, w5 = "wf-done", "wf-refused", "wf-invalid", "wf-running", "wf-new"
    return [
        submitted(w1), admitted(w1), validated(w1),
        ready(w1, "t1"), started(w1, "t1"),
        succeeded(w1, "t1", duration_ms=120.0, model="gpt-x", cost_usd=0.01, usage={"total_tokens": 10}),
        assessed(0.9, w1, "t1"),
        ready(w1, "t2"), started(w1, "t2"), failed(w1, "t2"),
        events.TaskRetryScheduled(**_common(w1), task_id="t2", attempt=2, not_before=events.now(), reason="boom"),
        ready(w1, "t2", 2), started(w1, "t2", 2),
        succeeded(w1, "t2", 2, duration_ms=80.0, model="llama", usage={"prompt_tokens": 3, "completion_tokens": 4}),
        assessed(0.7, w1, "t2"),
        # t3 ended before its first heartbeat: no TaskStarted, and its result says it began.
        succeeded(w1, "t3", duration_ms=40.0, model="gpt-x", cost_usd=0.02, usage={"total_tokens": 5}),
        events.WorkflowCompleted(**_common(w1), overall_quality=0.8),
        submitted(w2), events.WorkflowRefused(**_common(w2), principal="bob", reason="rate limit"),
        submitted(w3), admitted(w3), events.WorkflowInvalid(**_common(w3), problems=[events.Problem("cycle")]),
        submitted(w4), admitted(w4), validated(w4), ready(w4, "a"), started(w4, "a"), timed_out(w4, "a"),
        events.TaskSkipped(**_common(w4), task_id="b", reason="a failed"),
        submitted(w5),
        events.MessageRejected(**_common(events.NO_WORKFLOW), subject="ymera.x", reason="not JSON",
                               excerpt="{", size=1),
    ]


def test_report_of_a_realistic_run() -> None:
    out = report(fold(realistic()))
    window, per_hour = out.pop("window"), out.pop("per_hour")
    assert out == {
        "monitoring_status": "active",
        "workflows": {"submitted": 5, "admitted": 3, "refused": 1, "validated": 2, "invalid": 1, "completed": 1,
                      "failed": 0, "cancelled": 0, "running": 1, "active": 2},
        "tasks": {"started": 5, "succeeded": 3, "failed": 1, "timed_out": 1, "skipped": 1, "retried": 1,
                  "rejected_messages": 1, "late": 0},
        "quality": {"assessed": 2, "mean_overall": 0.8, "recent_mean": 0.8},
        "latency_ms": {"p50": 80.0, "p95": 120.0},
        "failure_rate": 0.4,
        "models": {
            "gpt-x": {"calls": 2, "total_duration_ms": 160.0, "mean_duration_ms": 80.0, "cost_usd": 0.03,
                      "tokens": 15},
            "llama": {"calls": 1, "total_duration_ms": 80.0, "mean_duration_ms": 80.0, "cost_usd": 0.0,
                      "tokens": 7},
        },
        "open_alerts": [],
        "alerts": [],
        "security_events": {"rejected_message": 1},
    }
    # Every event of the run happened within the last 300 s: the window holds all of it. Its
    # percentiles are the middles of histogram bins, within 5% of the samples' (80 and 120 ms).
    assert window["all"] == {
        "attempts": 5, "success_rate": 0.6, "error_rate": 0.2, "timeout_rate": 0.2,
        "latency_ms": {"p50": 79.479, "p95": 122.573}, "runs": {"completed": 1, "failed": 0, "success_rate": 1.0},
        "quality": {"assessed": 2, "accuracy": 0.8, "completeness": 0.8, "consistency": 0.8, "efficiency": 0.8,
                    "maintainability": 0.8, "overall": 0.8},
        "cost_usd": 0.03, "security_events": 1}
    assert sorted(window["by"]["model"]) == ["-", "gpt-x", "llama"]
    assert window["by"]["model"]["gpt-x"]["attempts"] == 2
    # A task's type comes from its run's submission: wf-done's t1 is a noop; the others are in no
    # submission's tasks. Scores count under the type their TaskAssessed names (none here).
    by_type = window["by"]["task_type"]
    assert {kind: stats["attempts"] for kind, stats in by_type.items()} == {"noop": 1, "-": 4}
    assert by_type["-"]["quality"] == window["all"]["quality"]
    assert window["by"]["workflow"]["wf-done"]["runs"]["completed"] == 1
    assert sum(hour["attempts"] for hour in per_hour) == 5


def test_report_of_nothing_when_inactive() -> None:
    out = report(METRICS.initial(), active=False)
    assert out["monitoring_status"] == "inactive"
    assert out["quality"] == {"assessed": 0, "mean_overall": None, "recent_mean": None}
    assert out["latency_ms"] == {"p50": None, "p95": None}
    assert out["failure_rate"] == 0.0


def test_an_attempt_that_timed_out_and_then_failed_ends_once() -> None:
    state = fold([timed_out(), failed()])
    assert list(state.ends) == [(("w", "t", 1), "timed_out")]
    assert (state.tasks["timed_out"], state.tasks["failed"]) == (1, 1)


def test_a_copy_of_an_alert_is_listed_once_and_open_until_resolved() -> None:
    event = raised("response_time", message="slow", subject="openai")
    state = fold([event, event])
    [listed] = report(state)["alerts"]
    assert (listed["alert"], listed["subject"], listed["message"], listed["resolved"]) == (
        "response_time", "openai", "slow", None)
    assert [a["alert"] for a in report(state)["open_alerts"]] == ["response_time"]
    fold([events.AlertResolved(**_common(events.NO_WORKFLOW), actor="monitor", alert="response_time",
                               subject="openai", raised_id=event.id, message="back")], state)
    assert report(state)["open_alerts"] == []
    assert report(state)["alerts"][0]["resolved"] is not None


# Any sequence of events a monitor may see, with task attempts colliding on purpose.
_wf = st.sampled_from(["a", "b", "c"])
_task = st.sampled_from(["t1", "t2"])
_attempt = st.integers(1, 3)
any_event = st.one_of(
    st.builds(submitted, _wf), st.builds(admitted, _wf), st.builds(validated, _wf),
    st.builds(ready, _wf, _task, _attempt), st.builds(started, _wf, _task, _attempt),
    st.builds(succeeded, _wf, _task, _attempt, st.floats(0, 1e6), st.sampled_from([None, "m1", "m2"]),
              st.none() | st.floats(0, 1), st.dictionaries(st.sampled_from(["total_tokens", "prompt_tokens"]),
                                                           st.integers(0, 1000))),
    st.builds(failed, _wf, _task, _attempt), st.builds(timed_out, _wf, _task, _attempt),
    st.builds(assessed, st.floats(0, 1), _wf, _task),
    st.builds(lambda wf: events.WorkflowCompleted(**_common(wf)), _wf),
    st.builds(lambda wf: events.WorkflowCancelled(**_common(wf)), _wf),
    st.builds(lambda sev: raised("x", sev), st.sampled_from(["warning", "critical"])),
)


@given(st.lists(any_event, max_size=120))
def test_folding_is_deterministic_and_windows_stay_bounded(sequence: list[events.Event]) -> None:
    first = fold(sequence)
    # The same events decoded from the wire, folded into a fresh state, give the same answer.
    again = fold(events.decode(events.encode(e)) for e in sequence)
    assert first == again
    assert report(first) == report(again)
    assert len(first.recent_quality) <= 50
    assert len(first.latencies) <= 500
    assert len(first.ends) <= 50
    assert len(first.alerts) <= 20
    # Only runs that were submitted are active, and the index of each workflow's latest run is
    # bounded by the workflow ids (a run-less end, from before runs, ends the latest run only).
    assert set(first.active) <= {e.id for e in sequence if isinstance(e, events.WorkflowSubmitted)}
    assert len(first.latest_run) <= 3
    msgspec.json.encode(report(first))  # the report is plain JSON


def test_windows_keep_the_latest() -> None:
    durations, overalls = [float(i) for i in range(700)], [i / 100 for i in range(80)]
    state = fold([succeeded(task=f"t{i}", duration_ms=d) for i, d in enumerate(durations)]
                 + [assessed(q) for q in overalls])
    assert list(state.latencies) == durations[-500:]
    assert list(state.recent_quality) == overalls[-50:]
    assert len(state.ends) == 50


@pytest.mark.parametrize(("values", "p50", "p95"), [([5.0], 5.0, 5.0), ([1.0, 2.0], 1.0, 2.0),
                                                    ([float(i) for i in range(1, 101)], 50.0, 95.0)])
def test_latency_percentiles_are_nearest_rank(values: list[float], p50: float, p95: float) -> None:
    out = report(fold(succeeded(task=f"t{i}", duration_ms=v) for i, v in enumerate(values)))
    assert out["latency_ms"] == {"p50": p50, "p95": p95}


def test_a_result_after_its_attempt_timed_out_is_late_and_a_timeout_after_a_result_changes_nothing() -> None:
    wf = "wf-fenced"
    state = fold([
        submitted(wf), admitted(wf), validated(wf), ready(wf, "t"), started(wf, "t"), timed_out(wf, "t"),
        ready(wf, "t", 2), started(wf, "t", 2),
        succeeded(wf, "t", 1, duration_ms=9000.0, model="gpt-x", usage={"total_tokens": 50}),  # the paused one
        succeeded(wf, "t", 2, duration_ms=100.0, model="gpt-x", usage={"total_tokens": 5}),
        ready(wf, "u"), started(wf, "u"), succeeded(wf, "u", duration_ms=50.0), timed_out(wf, "u"),
    ])
    out = report(state)
    assert {k: out["tasks"][k] for k in ("started", "succeeded", "timed_out", "late")} == {
        "started": 3, "succeeded": 2, "timed_out": 1, "late": 1}
    assert out["models"]["gpt-x"] == {"calls": 1, "total_duration_ms": 100.0, "mean_duration_ms": 100.0,
                                      "cost_usd": 0.0, "tokens": 5}
    assert out["latency_ms"] == {"p50": 50.0, "p95": 100.0}
    assert out["failure_rate"] == round(1 / 3, 4)
    state = fold([events.WorkflowCompleted(**_common(wf), overall_quality=0.9)], state)
    assert state.attempts == {}  # forgotten with the workflow


def test_security_events_are_counted_by_what() -> None:
    rejected: list[events.Event] = [events.MessageRejected(**_common(events.NO_WORKFLOW), subject="ymera.x",
                                                           reason="forged", excerpt="{", size=1) for _ in range(11)]
    refused: list[events.Event] = [events.ToolRefused(**_common("wf-tools"), task_id="t", attempt=1, tool="files",
                                  reason="files: path '../x' goes up with '..'; it must stay inside the workspace")
               for _ in range(2)]
    out = report(fold(rejected + refused))
    assert out["security_events"] == {"rejected_message": 11, "tool_refused": 2}
    assert out["window"]["all"]["security_events"] == 13
    assert out["window"]["by"]["workflow"]["wf-tools"]["security_events"] == 2


def test_a_success_scored_in_its_attempt_counts_as_its_score_and_a_late_one_does_not() -> None:
    wf = "wf-carried"
    state = fold([submitted(wf), admitted(wf), validated(wf), ready(wf, "t1"), started(wf, "t1"),
                  timed_out(wf, "t1"), ready(wf, "t1", 2), scored_success(wf, "t1", 2, 0.9),
                  scored_success(wf, "t1", 1, 0.1)])  # the timed-out attempt's, late: not the task's
    out = report(state)
    assert out["quality"] == {"assessed": 1, "mean_overall": 0.9, "recent_mean": 0.9}
    assert out["tasks"]["late"] == 1
    assert out["window"]["by"]["task_type"]["noop"]["quality"]["overall"] == 0.9


def test_a_carried_score_counts_under_its_own_type_when_the_run_s_submission_was_not_seen() -> None:
    # The success counts under the type the monitor knows for the task (none, "-": it never saw
    # the submission), its score under the type the score names; every window counts each once.
    state = fold([scored_success("wf-unseen", "t1", 1, 0.7), scored_success("wf-unseen", "t2", 1, 0.9)])
    window = report(state)["window"]
    assert (window["all"]["attempts"], window["all"]["quality"]["assessed"]) == (2, 2)
    assert window["all"]["quality"]["overall"] == 0.8
    by_type = window["by"]["task_type"]
    assert (by_type["-"]["attempts"], by_type["-"]["quality"]["assessed"]) == (2, 0)
    assert (by_type["noop"]["attempts"], by_type["noop"]["quality"]["assessed"]) == (0, 2)
    assert by_type["noop"]["quality"]["overall"] == 0.8
