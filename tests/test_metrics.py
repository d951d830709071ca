"""The monitor's metrics fold, its report, and each alert: its exact message, raised once until it clears."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import events
from actors.monitor import Alert, evaluate, firing
from config import Settings
from store import Metrics, MetricsState, report

METRICS = Metrics()
DEFAULTS = Settings()


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


def raised(alert: Alert) -> events.AlertRaised:
    return events.AlertRaised(**_common(events.NO_WORKFLOW), actor="monitor", alert=alert.alert,
                              severity=alert.severity, message=alert.message, metric=alert.metric,
                              value=alert.value, threshold=alert.threshold)


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
    assert report(fold(realistic())) == {
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
        "alerts": [],
        "security_events": {"rejected_message": 1},
    }


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


def test_a_copy_of_an_alert_is_listed_once() -> None:
    event = raised(Alert(alert="latency", severity="warning", message="slow", metric="m", value=1.0, threshold=0.5))
    assert report(fold([event, event]))["alerts"] == [{"alert": "latency", "severity": "warning", "message": "slow"}]


def _fires_once_until_cleared(trigger: list[events.Event], clear: list[events.Event], again: list[events.Event],
                              expected: Alert, settings: Settings = DEFAULTS) -> None:
    state = fold(trigger)
    assert evaluate(state, settings) == [expected]
    assert evaluate(state, settings) == []  # still firing, already raised
    fold([raised(expected)], state)  # the monitor reads its own AlertRaised back
    assert evaluate(state, settings) == []
    fold(clear, state)
    assert firing(state, settings) == []
    assert evaluate(state, settings) == []
    assert state.raised == set()
    fold(again, state)
    assert [a.alert for a in evaluate(state, settings)] == [expected.alert]  # cleared, so it may fire again


def test_quality_degradation_alert() -> None:
    _fires_once_until_cleared(
        [assessed(0.52)] * 5,
        [assessed(1.0)] * 5,
        [assessed(0.52)] * 5,
        Alert(alert="quality_degradation", severity="warning",
              message="recent quality 0.52 is below the 0.70 threshold (last 5 assessed tasks)",
              metric="quality.recent_mean", value=0.52, threshold=0.7),
    )


def test_quality_critical_below_threshold_minus_0_2() -> None:
    alerts = evaluate(fold([assessed(0.4)] * 5), DEFAULTS)
    assert alerts == [Alert(alert="quality_degradation", severity="critical",
                            message="recent quality 0.40 is below the 0.50 critical threshold (last 5 assessed tasks)",
                            metric="quality.recent_mean", value=0.4, threshold=0.5)]


def test_quality_needs_five_assessed_tasks_and_the_setting() -> None:
    assert firing(fold([assessed(0.1)] * 4), DEFAULTS) == []
    assert firing(fold([assessed(0.1)] * 5), Settings(alert_on_quality_degradation=False)) == []


def test_quality_escalating_to_critical_is_raised_again() -> None:
    state = fold([assessed(0.6)] * 5)
    assert [a.severity for a in evaluate(state, DEFAULTS)] == ["warning"]
    fold([assessed(0.0)] * 5, state)
    assert [a.severity for a in evaluate(state, DEFAULTS)] == ["critical"]
    assert state.raised == {"quality_degradation/critical"}


def test_failure_rate_alert() -> None:
    _fires_once_until_cleared(
        [succeeded(task=f"ok{i}") for i in range(6)] + [failed(task=f"bad{i}") for i in range(2)],
        [succeeded(task="later")],  # 2 of 9
        [failed(task="again")],  # 3 of 10
        Alert(alert="failure_rate", severity="warning",
              message="recent failure rate 0.25 is at or above the 0.25 threshold (last 8 task ends)",
              metric="failure_rate", value=0.25, threshold=0.25),
    )


def test_failure_rate_critical_and_minimum_sample() -> None:
    assert firing(fold([succeeded(task=f"ok{i}") for i in range(5)] + [failed(), failed(task="u")]), DEFAULTS) == []
    state = fold([succeeded(task=f"ok{i}") for i in range(4)] + [failed(task=f"bad{i}") for i in range(4)])
    assert evaluate(state, DEFAULTS) == [
        Alert(alert="failure_rate", severity="critical",
              message="recent failure rate 0.50 is at or above the 0.50 critical threshold (last 8 task ends)",
              metric="failure_rate", value=0.5, threshold=0.5)]


def test_latency_alert() -> None:
    settings = Settings(task_timeout_seconds=10)
    _fires_once_until_cleared(
        [succeeded(task=f"slow{i}", duration_ms=9000.0) for i in range(20)],
        [succeeded(task=f"fast{i}", duration_ms=10.0) for i in range(380)],  # 20 slow of 400: p95 is fast
        [succeeded(task=f"again{i}", duration_ms=9000.0) for i in range(20)],
        Alert(alert="latency", severity="warning",
              message="p95 latency 9000 ms is above 8000 ms, 80% of the 10 s task timeout (last 20 tasks)",
              metric="latency_ms.p95", value=9000.0, threshold=8000.0),
        settings,
    )
    assert firing(fold([succeeded(task=f"s{i}", duration_ms=9000.0) for i in range(19)]), settings) == []


def test_task_timeouts_alert() -> None:
    _fires_once_until_cleared(
        [timed_out(task=f"t{i}") for i in range(3)],
        [succeeded(task=f"ok{i}") for i in range(50)],
        [timed_out(task=f"again{i}") for i in range(3)],
        Alert(alert="task_timeouts", severity="warning",
              message="3 of the last 3 task ends timed out (threshold 3)",
              metric="tasks.recent_timeouts", value=3.0, threshold=3.0),
    )


def test_a_monitor_rebuilt_from_the_log_does_not_raise_again() -> None:
    log = [assessed(0.5)] * 5
    live = fold(log)
    alerts = evaluate(live, DEFAULTS)
    log += [raised(a) for a in alerts]
    rebuilt = fold(log)
    assert evaluate(rebuilt, DEFAULTS) == []
    assert rebuilt.raised == live.raised == {"quality_degradation/warning"}


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
    st.builds(lambda sev: raised(Alert(alert="x", severity=sev, message="m", metric="m", value=1.0,
                                       threshold=0.0)), st.sampled_from(["warning", "critical"])),
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


def _flagged(wf: str, alert: str, at: float) -> events.Event:
    finding = events.SecurityFinding(kind="secret" if alert == "secret_leak" else "injection", type="t",
                                     severity="critical", field="output", span=(0, 1), reason="r", alert=alert)
    ts = events.now().fromtimestamp(at, events.now().tzinfo)
    return events.OutputFlagged(id=events.new_id(), ts=ts, workflow_id=wf, run_id="r", task_id="t", attempt=1,
                                findings=[finding, finding], redacted=True)


def test_a_security_finding_raises_its_critical_alert_once_and_clears_an_hour_later() -> None:
    state = fold([_flagged("wf-leak", "secret_leak", 1000.0)])
    [alert] = evaluate(state, DEFAULTS, at=1001.0)
    assert (alert.alert, alert.severity, alert.message, alert.value) == (
        "secret_leak", "critical", "1 secret leak finding(s) in the last hour, the latest in workflow wf-leak", 1.0)
    assert evaluate(state, DEFAULTS, at=1002.0) == []  # raised already
    assert firing(state, DEFAULTS, at=1000.0 + 3600) == []  # out of the window: it clears
    assert evaluate(state, DEFAULTS, at=1000.0 + 3600) == []


def test_more_security_events_in_an_hour_than_allowed_raise_a_warning() -> None:
    state = fold([events.MessageRejected(**_common(events.NO_WORKFLOW), subject="ymera.x", reason="forged",
                                         excerpt="{", size=1) for _ in range(11)])
    [alert] = firing(state, DEFAULTS)
    assert (alert.alert, alert.severity, alert.value, alert.threshold) == ("security_events", "warning", 11.0, 10.0)
    assert report(state)["security_events"] == {"rejected_message": 11}


def test_tool_refusals_count_as_security_events() -> None:
    refused = [events.ToolRefused(**_common("wf-tools"), task_id="t", attempt=1, tool="files",
                                  reason="files: path '../x' goes up with '..'; it must stay inside the workspace")
               for _ in range(11)]
    state = fold(refused)
    [alert] = firing(state, DEFAULTS)
    assert (alert.alert, alert.value) == ("security_events", 11.0)
    assert report(state)["security_events"] == {"tool_refused": 11}
