"""The monitor's alert rules: alerts.yaml (shipped defaults, a user's file, every way a file can be
wrong and what the user reads), each rule's reading and message, and the hysteresis that raises
an alert once and resolves it only after its metric is back past the margin for a while."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import events
from actors import load_settings
from actors.monitor import AlertBook, Monitor, Reading, readings
from config import MINUTES_KEPT, AlertRules, AlertsFileError, Settings, load_alert_rules
from config._alerts import PerformanceRules
from store import Metrics, MetricsState

from .conftest import ymera, ymera_env

T0 = 1_789_999_200.0  # a whole hour
RULES = AlertRules()


# ---- alerts.yaml ----------------------------------------------------------------------------


def test_the_shipped_file_holds_the_guides_defaults() -> None:
    rules = load_alert_rules(None)
    assert rules == RULES == Settings().alerts
    assert (rules.quality.min_score, rules.quality.check_interval) == (0.75, 60.0)
    assert (rules.security.max_events_per_hour, rules.security.critical_events) == (
        10, ("injection_attempt", "secret_leak", "harmful_content"))
    assert (rules.performance.max_error_rate, rules.performance.max_response_time,
            rules.performance.min_success_rate) == (0.10, 30.0, 0.90)


def test_a_users_file_named_by_the_setting_changes_only_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("security:\n  critical_events: [secret_leak]\nperformance:\n  max_response_time: 5\n")
    settings = load_settings({"YMERA_ALERTS_FILE": str(path)}, dotenv=None)
    assert settings.alerts.security.critical_events == ("secret_leak",)
    assert settings.alerts.performance == PerformanceRules(max_response_time=5.0)
    assert (settings.alerts.quality, settings.alerts.path) == (RULES.quality, str(path))


SECTIONS = "quality, security, performance, resolve"
BAD_FILES: list[tuple[str, str]] = [
    ("quality: [1, 2", "not valid YAML: did not find expected ',' or ']' (line 2, column 1)"),
    ("- quality", f"expected a mapping of sections ({SECTIONS}), got a list"),
    ("qualty:\n  min_score: 0.8", f"unknown section 'qualty'; expected one of {SECTIONS}"),
    ("quality: 5", "quality is 5, expected a mapping of its keys"),
    ("quality:\n  min_scor: 0.8", "unknown key quality.min_scor; quality takes min_score, check_interval, "
                                  "window_seconds, baseline_seconds, max_drop, min_samples"),
    ("quality:\n  min_score: 1.5", "quality.min_score is 1.5, expected a number from 0 to 1"),
    ("quality:\n  min_score: high", "quality.min_score is 'high', expected a number from 0 to 1"),
    ("quality:\n  min_score: true", "quality.min_score is True, expected a number from 0 to 1"),
    ("quality:\n  check_interval: 0", "quality.check_interval is 0, expected a number of seconds greater than 0"),
    ("quality:\n  min_samples: 2.5", "quality.min_samples is 2.5, expected a whole number of at least 1"),
    ("security:\n  max_events_per_hour: -1",
     "security.max_events_per_hour is -1, expected a whole number of at least 0"),
    ("security:\n  critical_events: secret_leak",
     "security.critical_events is 'secret_leak', expected a list of alert names (e.g. [injection_attempt, "
     "secret_leak])"),
    ("performance:\n  max_error_rate: .nan", "performance.max_error_rate is nan, expected a number from 0 to 1"),
    ("resolve:\n  checks: 0", "resolve.checks is 0, expected a whole number of at least 1"),
    ("quality:\n  baseline_seconds: 7000",
     f"quality.window_seconds + quality.baseline_seconds is 7600, expected at most {MINUTES_KEPT * 60} "
     f"(the monitor keeps {MINUTES_KEPT} minutes)"),
    ("performance:\n  window_seconds: 9000",
     f"performance.window_seconds is 9000, expected at most {MINUTES_KEPT * 60} (the monitor keeps "
     f"{MINUTES_KEPT} minutes)"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_alerts_file_is_refused_naming_the_file_key_value_and_what_was_expected(
        tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(AlertsFileError) as caught:
        load_settings({"YMERA_ALERTS_FILE": str(path)}, dotenv=None)
    assert str(caught.value) == f"alerts file {path}: {problem}"


def test_a_missing_alerts_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AlertsFileError) as caught:
        load_alert_rules(tmp_path / "nope.yaml")
    assert str(caught.value) == f"alerts file {tmp_path / 'nope.yaml'}: cannot be read: No such file or directory"


def test_the_cli_refuses_to_start_on_a_bad_alerts_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("performance:\n  min_success_rate: 90\n")
    env = {**ymera_env(tmp_path / "data"), "YMERA_ALERTS_FILE": str(path)}
    done = ymera("report", "monitoring", env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"alerts file {path}: performance.min_success_rate is 90, expected a number from 0 to 1")


# ---- the rules' readings ----------------------------------------------------------------------


def _ts(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, UTC)


def _ev(kind: type[Any], offset: float, **fields: Any) -> events.Event:
    return kind(id=events.new_id(), ts=_ts(offset), workflow_id=fields.pop("workflow_id", "w"), **fields)  # type: ignore[no-any-return]


def _fold(items: list[events.Event]) -> MetricsState:
    metrics = Metrics()
    state = metrics.initial()
    for event in items:
        state = metrics.apply(state, event)
    return state


def _attempts(start: float, ok: int, failed: int = 0, ms: float = 500.0, model: str = "openai/m") -> list[events.Event]:
    out: list[events.Event] = []
    for i in range(ok):
        out.append(_ev(events.TaskSucceeded, start + i * 0.1, task_id=f"ok{start:g}-{i}", attempt=1, duration_ms=ms,
                       model=model))
    for i in range(failed):
        out.append(_ev(events.TaskFailed, start + i * 0.1, task_id=f"bad{start:g}-{i}", attempt=1, error="503",
                       model=model))
    return out


def _scores(start: float, n: int, overall: float, model: str = "openai/m") -> list[events.Event]:
    return [_ev(events.TaskAssessed, start + i * 0.1, task_id=f"q{start:g}-{i}", attempt=1, model=model,
                accuracy=overall, completeness=overall, consistency=overall, efficiency=overall,
                maintainability=overall, overall=overall) for i in range(n)]


def _by_alert(found: list[Reading]) -> dict[str, Reading]:
    return {r.alert if r.subject is None else f"{r.alert}/{r.subject}": r for r in found}


def test_error_rate_and_response_time_readings() -> None:
    state = _fold(_attempts(0, 18, 3, ms=31_000.0) + _attempts(60, 2))
    found = _by_alert(readings(state, RULES, T0 + 120.0, quality=True, baselines={}))
    error = found["error_rate"]
    assert (error.bad, error.value, error.message) == (
        True, 0.1304, "error rate 0.13 is above 0.10: 3 of 23 attempts failed in the last 300 s")
    slow = found["response_time/openai"]
    assert (slow.bad, slow.message) == (
        True, "p95 response time of provider openai is 31.4 s, above 30 s (20 attempts in the last 300 s)")
    assert "success_rate" not in found  # no run ended: nothing to judge
    # Too few attempts to judge: no reading.
    assert "error_rate" not in _by_alert(readings(_fold(_attempts(0, 10, 9)), RULES, T0 + 60.0, quality=True,
                                                  baselines={}))


def test_success_rate_reads_runs() -> None:
    ends = [_ev(events.WorkflowCompleted, i, workflow_id=f"w{i}") for i in range(17)] + \
           [_ev(events.WorkflowFailed, 20 + i, workflow_id=f"f{i}", reason="t failed") for i in range(3)]
    reading = _by_alert(readings(_fold(ends), RULES, T0 + 60.0, quality=True, baselines={}))["success_rate"]
    assert (reading.bad, reading.value, reading.message) == (
        True, 0.85, "success rate 0.85 is below 0.90: 17 of 20 runs completed in the last 300 s")


def test_quality_low_and_degradation_against_the_trailing_baseline() -> None:
    before = _scores(0, 30, 0.9)  # the baseline: the hour before the recent window
    recent = _scores(3000, 30, 0.74)
    found = _by_alert(readings(_fold(before + recent), RULES, T0 + 3060.0, quality=True, baselines={}))
    low, drop = found["quality_low"], found["quality_degradation/openai/m"]
    assert (low.bad, low.message) == (True, "mean overall quality 0.74 is below 0.75 (30 tasks assessed in the "
                                            "last 600 s)")
    assert (drop.bad, drop.baseline, drop.message) == (
        True, 0.9, "model openai/m: mean overall quality 0.74 over the last 600 s is 0.16 below its baseline 0.90 "
                   "(more than 0.10)")
    # An open alert's baseline stands, whatever the trailing window says now.
    kept = _by_alert(readings(_fold(recent), RULES, T0 + 3060.0, quality=True, baselines={"openai/m": 0.9}))
    assert kept["quality_degradation/openai/m"].bad
    # ALERT_ON_QUALITY_DEGRADATION=false: no quality rule is judged.
    assert not any(r.alert.startswith("quality") for r in readings(_fold(before + recent), RULES, 3060.0,
                                                                   quality=False, baselines={}))


def test_security_readings_count_the_last_hour() -> None:
    rejected = [_ev(events.MessageRejected, i, workflow_id=events.NO_WORKFLOW, subject="ymera.x", reason="forged",
                    excerpt="{", size=1) for i in range(11)]
    found = _by_alert(readings(_fold(rejected), RULES, T0 + 60.0, quality=True, baselines={}))
    assert (found["security_events"].bad, found["security_events"].message) == (
        True, "11 security events in the last hour, over 10")
    assert not found["secret_leak"].bad
    assert found["secret_leak"].good
    an_hour_later = _by_alert(readings(_fold(rejected), RULES, T0 + 3660.0, quality=True, baselines={}))
    assert not an_hour_later["security_events"].bad


# ---- hysteresis -------------------------------------------------------------------------------


def _reading(value: float, limit: float = 0.10, margin: float = 0.2) -> Reading:
    return Reading(alert="error_rate", metric="error_rate", value=value, threshold=limit,
                   resolve_at=limit * (1 - margin), bad=value > limit, good=value <= limit * (1 - margin),
                   message=f"error rate {value}")


def _ids(key: str, n: int) -> str:
    return f"{key}#{n}"


def test_an_alert_raises_once_at_the_threshold_and_resolves_after_three_checks_back_past_the_margin() -> None:
    book = AlertBook()
    assert book.decide([_reading(0.10)], 3, _ids) == []  # at the threshold: not past it
    [raised] = book.decide([_reading(0.11)], 3, _ids)
    assert (raised.kind, raised.key, raised.raised.id) == ("raised", "error_rate", "error_rate#1")
    assert book.decide([_reading(0.5)], 3, _ids) == []  # still bad: raised already
    for _ in range(5):  # under the threshold, not past the margin (0.08): stays open
        assert book.decide([_reading(0.09)], 3, _ids) == []
    assert book.decide([_reading(0.05)], 3, _ids) == []
    assert book.decide([_reading(0.05)], 3, _ids) == []
    assert book.decide([_reading(0.09)], 3, _ids) == []  # a check in between: the count starts again
    assert book.decide([_reading(0.05)], 3, _ids) == []
    assert book.decide([_reading(0.05)], 3, _ids) == []
    [resolved] = book.decide([_reading(0.08)], 3, _ids)
    assert (resolved.kind, resolved.raised.id, book.open) == ("resolved", "error_rate#1", {})
    [again] = book.decide([_reading(0.2)], 3, _ids)
    assert again.raised.id == "error_rate#2"


def test_an_open_alert_without_samples_resolves_only_on_a_complete_evaluation() -> None:
    book = AlertBook()
    book.decide([_reading(0.3)], 2, _ids)
    assert book.decide([], 2, _ids, complete=False) == []
    assert book.decide([], 2, _ids, complete=False) == []
    assert book.decide([], 2, _ids) == []
    [resolved] = book.decide([], 2, _ids)
    assert (resolved.kind, resolved.reading) == ("resolved", None)


def test_a_critical_finding_raises_at_once_at_its_own_time() -> None:
    monitor = Monitor(Settings())
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=_ts(0), workflow_id="wf-leak",
                                   tasks=[events.TaskSpec(id="t", type="echo")])
    finding = events.SecurityFinding(kind="secret", type="api_key", severity="critical", field="output", span=(0, 1),
                                     reason="an API key", alert="secret_leak")
    flagged = events.OutputFlagged(id=events.new_id(), ts=_ts(12.5), workflow_id="wf-leak", run_id=sub.id,
                                   task_id="t", attempt=1, findings=[finding], redacted=True)
    monitor.apply(sub)
    monitor.apply(flagged)
    [alert] = monitor.outbox
    assert isinstance(alert, events.AlertRaised)
    assert (alert.alert, alert.severity, alert.ts, alert.message) == (
        "secret_leak", "critical", _ts(12.5), "1 secret leak finding(s) in the last hour")


def test_an_idle_monitor_resolves_on_its_tick_and_a_rebuilt_one_learns_it_from_the_log() -> None:
    monitor = Monitor(Settings())
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=_ts(0), workflow_id="w",
                                   tasks=[events.TaskSpec(id="t", type="echo")])
    burst = [sub, *(_ev(events.TaskFailed, 1 + i * 0.1, run_id=sub.id, task_id=f"t{i}", attempt=1, error="503")
                    for i in range(25)), _ev(events.TaskReady, 61, run_id=sub.id, task_id="next", attempt=1)]
    log: list[events.Event] = []
    for event in burst:
        monitor.apply(event)
        log += [event, *monitor.outbox]
        monitor.outbox.clear()
    [raised] = [e for e in log if isinstance(e, events.AlertRaised)]
    assert (raised.alert, raised.ts) == ("error_rate", _ts(60))
    # No event comes; the wall clock moves on. A tick in the last event's interval, or less than 2 s
    # into the next, does nothing; later ones evaluate at their interval's start: the burst is in the
    # window until 300, then three checks without samples resolve it.
    assert asyncio.run(monitor.reconcile(_ts(119))) == []
    assert asyncio.run(monitor.reconcile(_ts(121))) == []
    assert monitor.book.slot == T0 // 60 + 1
    ticks = [asyncio.run(monitor.reconcile(_ts(offset))) for offset in (200, 260, 320, 380, 440, 500)]
    assert [len(t) for t in ticks] == [0, 0, 0, 0, 0, 1]
    [resolved] = ticks[-1]
    assert isinstance(resolved, events.AlertResolved)
    assert (resolved.raised_id, resolved.ts, resolved.message) == (
        raised.id, _ts(480), "error_rate resolved: too few samples to judge at 3 checks in a row")
    # A monitor rebuilt from the log did not tick: it takes the resolve from the log.
    rebuilt = Monitor(Settings())
    for event in [*log, resolved]:
        rebuilt.apply(event)
    assert (rebuilt.outbox, rebuilt.book.open, rebuilt.book.raised) == ([], {}, {"error_rate": 1})
