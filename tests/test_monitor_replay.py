"""The monitor replayed over a synthetic log of 5,000 tasks (tests/monitor_log.py): each injected
degradation raises exactly one alert at the right time and resolves after recovery, a steady log
raises none, and a monitor rebuilt from the log (from scratch, or from a snapshot half-way)
decides the same alerts. Then one alert through the real engine, into the log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bus
import events
import store
from actors import load_settings
from actors._snapshot import _restore, encode_snapshot
from actors.monitor import Monitor
from config import Settings
from ymera import WorkflowClient

from .engine import in_process
from .monitor_log import START, Degradation, build_log

SETTINGS = Settings()
RULES = SETTINGS.alerts
BURST = Degradation("errors", 2000, 2600, amount=0.4)
SLOW = Degradation("slow", 3500, 4100, provider="anthropic")
DROP = Degradation("quality", 5200, 6000, model="openai/gpt-y", amount=0.2)
Alert = events.AlertRaised | events.AlertResolved


def replay(log: list[events.Event], monitor: Monitor | None = None) -> tuple[Monitor, list[events.Event]]:
    """Fold `log` as the live monitor does, batch by batch; the log with what it emitted after the
    event that made it decide (as the stream holds it)."""
    monitor = monitor or Monitor(SETTINGS)
    out: list[events.Event] = []
    for event in log:
        out.append(event)
        out += _handled(monitor, event)
    return monitor, out


def _handled(monitor: Monitor, event: events.Event) -> list[events.Event]:
    monitor.apply(event)
    decided: list[events.Event] = list(monitor.outbox)
    monitor.outbox.clear()
    return decided


def alerts(log: list[events.Event]) -> list[Alert]:
    return [e for e in log if isinstance(e, events.AlertRaised | events.AlertResolved)]


def offset(event: events.Event) -> float:
    return event.ts.timestamp() - START


@pytest.fixture(scope="module")
def degraded() -> tuple[list[events.Event], Monitor, list[events.Event]]:
    log = build_log(5000, (BURST, SLOW, DROP))
    monitor, stream = replay(log)
    return log, monitor, stream


def test_a_steady_log_of_5000_tasks_raises_no_alert() -> None:
    log = build_log(5000)
    assert sum(isinstance(e, events.TaskSucceeded) for e in log) == 5000
    monitor, stream = replay(log)
    assert alerts(stream) == []
    assert monitor.book.open == {}


@pytest.mark.parametrize(("degradation", "key"), [(BURST, "error_rate"), (SLOW, "response_time/anthropic"),
                                                  (DROP, "quality_degradation/openai/gpt-y")])
def test_each_degradation_raises_one_alert_in_its_window_and_resolves_after_recovery(
        degraded: tuple[list[events.Event], Monitor, list[events.Event]], degradation: Degradation, key: str) -> None:
    _, _, stream = degraded
    mine = [a for a in alerts(stream) if store.alert_key(a.alert, a.subject) == key]
    raised, resolved = mine
    assert isinstance(raised, events.AlertRaised)
    assert isinstance(resolved, events.AlertResolved)
    assert resolved.raised_id == raised.id
    interval = RULES.quality.check_interval
    window = RULES.quality.window_seconds if degradation.kind == "quality" else RULES.performance.window_seconds
    # Raised at a check after the degradation began, within one window of it.
    assert degradation.since < offset(raised) <= degradation.since + window
    # Resolved after it ended: once the window is clear of it, at the third good check in a row.
    checks = RULES.resolve.checks
    latest = degradation.until + window + (checks + 1) * interval
    assert degradation.until + checks * interval <= offset(resolved) <= latest


def test_the_degraded_log_raises_nothing_else(degraded: tuple[list[events.Event], Monitor, list[events.Event]]) -> None:
    _, monitor, stream = degraded
    assert [(type(a).__name__, a.alert, a.subject) for a in alerts(stream)] == [
        ("AlertRaised", "error_rate", None), ("AlertResolved", "error_rate", None),
        ("AlertRaised", "response_time", "anthropic"), ("AlertResolved", "response_time", "anthropic"),
        ("AlertRaised", "quality_degradation", "openai/gpt-y"),
        ("AlertResolved", "quality_degradation", "openai/gpt-y"),
    ]
    [raised] = [a for a in alerts(stream) if isinstance(a, events.AlertRaised) and a.alert == "error_rate"]
    assert raised.message == "error rate 0.12 is above 0.10: 28 of 227 attempts failed in the last 300 s"
    assert monitor.book.open == {}
    assert store.report(monitor.state)["open_alerts"] == []


def test_a_monitor_folding_the_log_from_scratch_decides_the_same_alerts(
        degraded: tuple[list[events.Event], Monitor, list[events.Event]]) -> None:
    log, live, stream = degraded
    # Without its own alerts in the log, it decides them again: the same ids, times and words.
    _, again = replay(log)
    assert alerts(again) == alerts(stream)
    # From the stream with them, it decides each again and drops the logged copy: nothing to publish.
    rebuilt = Monitor(SETTINGS)
    for event in stream:
        rebuilt.apply(event)
    assert rebuilt.outbox == []
    assert rebuilt.book == live.book
    assert store.report(rebuilt.state) == store.report(live.state)


def test_a_monitor_restored_from_a_snapshot_half_way_decides_the_same_alerts(
        degraded: tuple[list[events.Event], Monitor, list[events.Event]]) -> None:
    _, live, stream = degraded
    half = len(stream) // 2
    while isinstance(stream[half], events.AlertRaised | events.AlertResolved):
        half += 1  # the snapshot is taken between batches: after a decision was published
    first = Monitor(SETTINGS)
    for event in stream[:half]:
        first.apply(event)
    first.outbox.clear()  # published before the snapshot (the runtime takes one between batches)
    restored = Monitor(SETTINGS)
    assert _restore(restored, encode_snapshot(first, half, "created"), "created") == half
    _, rest = replay([e for e in stream[half:] if not isinstance(e, events.AlertRaised | events.AlertResolved)],
                     restored)
    assert alerts(rest) == alerts(stream[half:])
    assert restored.book == live.book


def test_a_decision_that_never_reached_the_log_is_published_at_start(
        degraded: tuple[list[events.Event], Monitor, list[events.Event]]) -> None:
    _, _, stream = degraded
    [lost] = [a for a in alerts(stream) if isinstance(a, events.AlertResolved) and a.alert == "error_rate"]
    rebuilt = Monitor(SETTINGS)
    for event in stream:
        if event is not lost:
            rebuilt.apply(event)
    assert asyncio.run(rebuilt.reconcile(lost.ts)) == [lost]


def test_windows_stay_bounded_by_time_not_by_the_log(
        degraded: tuple[list[events.Event], Monitor, list[events.Event]]) -> None:
    _, monitor, _ = degraded
    windows = monitor.state.windows
    assert len(windows.minutes.buckets) <= store.Windows().minutes.keep == 120
    assert len(windows.hours.buckets) <= 25
    # An hour counts no workflow (thousands pass in an hour); a minute at most 100 keys a dimension.
    assert all(b.by["workflow"] == {} for b in windows.hours.buckets.values())
    assert all(len(b.by["workflow"]) <= 101 for b in windows.minutes.buckets.values())
    # An attempt counts once in its minute and once in its hour (the minute under way included).
    ends = sum(isinstance(e, events.TaskSucceeded | events.TaskFailed) for e in degraded[0])
    assert sum(b.all.ended for b in windows.hour_buckets().values()) == ends
    assert sum(b.all.ended for b in windows.minutes.buckets.values()) < ends  # the log is longer than 120 minutes


async def test_an_alert_of_the_real_engine_reaches_the_log(nats_bus: bus.Bus, tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    # Any task slower than a millisecond breaks the response time rule; judged every second.
    rules.write_text("quality: {check_interval: 1}\nperformance: {max_response_time: 0.001, min_samples: 1}\n")
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_ALERTS_FILE": str(rules)},
                             dotenv=None)
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="slow-ones",
                                   tasks=[events.TaskSpec(id=f"nap{i}", type="sleep", parameters={"seconds": 0.05})
                                          for i in range(3)])
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        end, _ = await client.wait("slow-ones", await client.submit(sub), timeout=30, run_id=sub.id)
        assert isinstance(end, events.WorkflowCompleted), end
        logged = await _until_alert(settings.log_path)
    assert (logged.alert, logged.subject, logged.actor, logged.workflow_id) == (
        "response_time", "-", "monitor", events.NO_WORKFLOW)
    assert logged.threshold == 0.001
    assert logged.value is not None
    assert logged.value >= 0.05


async def _until_alert(path: Path) -> events.AlertRaised:
    for _ in range(300):
        async with store.SqliteEventLog(path, readonly=True) as log:
            rows = [events.decode(data) async for chunk in log.scan("data", types=("AlertRaised",))
                    for (data,) in chunk]
        if rows:
            found = rows[0]
            assert isinstance(found, events.AlertRaised)
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("no AlertRaised reached the log within 30 s")


def test_a_bucket_counts_keys_past_its_limit_together() -> None:
    bucket = store.Windows().minutes.at(START)
    assert bucket is not None
    for n in range(150):
        bucket.one("workflow", f"wf-{n}").succeeded += 1
    assert len(bucket.by["workflow"]) == 101
    assert bucket.by["workflow"]["(other)"].succeeded == 50
