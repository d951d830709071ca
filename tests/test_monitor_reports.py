"""`ymera report quality` and `ymera report monitoring` (and the Python API's
`get_quality_report`): the synthetic log of tests/monitor_log.py, with the alerts the monitor
decided on it, written to a real SQLite log and read back as tables and JSON."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import events
import store
from config import Settings
from store import monitoring_report, quality_report
from ymera import WorkflowOrchestrator
from ymera._report_monitor import monitoring_text, quality_text

from .conftest import ymera, ymera_env
from .monitor_log import MODELS, Degradation, build_log
from .test_monitor_replay import replay

DROP = Degradation("quality", 1500, 2100, model="openai/gpt-y", amount=0.2)


async def _write(path: Path, log: list[events.Event]) -> None:
    async with store.SqliteEventLog(path) as sink:
        await sink.append([store.NewEvent(seq, e.id, type(e).__name__, events.subject_of(e), e.workflow_id,
                                          e.ts.timestamp(), events.encode(e)) for seq, e in enumerate(log, 1)])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 tasks ending about now, a quality drop on one model among them, and the monitor's alerts."""
    start = time.time() - 3000 * 1.5 - 600
    _, stream = replay(build_log(3000, (DROP,), start=start))
    root = tmp_path_factory.mktemp("monitor-reports") / "data"
    root.mkdir()
    asyncio.run(_write(root / "events.db", stream))
    return root


async def test_the_quality_report_counts_every_score_per_model_and_hour(data_dir: Path) -> None:
    async with store.SqliteEventLog(data_dir / "events.db", readonly=True) as log:
        report = await quality_report(log, 24)
    assert report["overall"]["assessed"] == 3000
    assert sorted(report["by"]["model"]) == sorted(MODELS)
    assert sorted(report["by"]["provider"]) == ["anthropic", "openai"]
    assert report["by"]["model"]["openai/gpt-y"]["overall"] < report["by"]["model"]["openai/gpt-x"]["overall"]
    assert sum(hour["assessed"] for hour in report["per_hour"]) == 3000
    assert [(a["alert"], a["subject"], a["state"]) for a in report["alerts"]] == [
        ("quality_degradation", "openai/gpt-y", "raised"), ("quality_degradation", "openai/gpt-y", "resolved")]
    text = quality_text(report)
    assert text.splitlines()[0].startswith("quality in the last 24 hours (")
    assert "by model" in text
    assert "quality alerts" in text


async def test_the_monitoring_report_is_the_monitors_view_from_the_log(data_dir: Path) -> None:
    async with store.SqliteEventLog(data_dir / "events.db", readonly=True) as log:
        report = await monitoring_report(log, 2, Settings().alerts)
    assert (report["monitoring_status"], report["hours"], report["open_alerts"]) == ("active", 2, [])
    [alert] = report["alerts"]
    assert (alert["alert"], alert["subject"], alert["resolved"] is not None) == (
        "quality_degradation", "openai/gpt-y", True)
    assert report["workflows"]["completed"] == 600
    assert len(report["per_hour"]) <= 3
    assert set(report["window"]["by"]["provider"]) == {"anthropic", "openai"}
    text = monitoring_text(report)
    assert text.splitlines()[0].startswith("monitoring active, from the log up to ")
    assert "open alerts: none" in text
    assert "the last 300 s" in text


def test_the_cli_prints_both_reports_as_tables_and_json(data_dir: Path) -> None:
    env = ymera_env(data_dir)
    for kind in ("quality", "monitoring"):
        table = ymera("report", kind, "--hours", "24", env=env)
        assert table.returncode == 0, table.stderr
        as_json = ymera("report", kind, "--json", env=env)
        assert as_json.returncode == 0, as_json.stderr
        parsed = json.loads(as_json.stdout)
        assert parsed["hours"] == 24
        assert ("quality in the last 24 hours" if kind == "quality" else "monitoring active") in table.stdout


def test_the_cli_refuses_hours_that_are_not_a_positive_number(data_dir: Path) -> None:
    done = ymera("report", "quality", "--hours", "0", env=ymera_env(data_dir))
    assert done.returncode != 0
    assert "argument --hours: '0' is not a positive number of hours" in done.stderr


async def test_the_python_api_reads_the_quality_report(data_dir: Path) -> None:
    orchestrator = WorkflowOrchestrator(Settings(data_dir=data_dir), run_actors=False)
    report = await orchestrator.get_quality_report(hours=24)
    assert report["overall"]["assessed"] == 3000
    with pytest.raises(ValueError, match="hours -1 is not a positive number of hours"):
        await orchestrator.get_quality_report(hours=-1)
    assert orchestrator.monitor.get_monitoring_report()["monitoring_status"] == "inactive"  # not started


async def test_the_quality_report_counts_the_scores_successes_carry_but_not_a_late_ones(tmp_path: Path) -> None:
    def common(**fields: object) -> dict[str, object]:
        return {"id": events.new_id(), "ts": events.now(), "workflow_id": "wf-carried", "run_id": "r1", **fields}

    def quality(overall: float) -> events.Quality:
        return events.Quality(task_type="echo", accuracy=overall, completeness=overall, consistency=overall,
                              efficiency=overall, maintainability=overall, overall=overall)

    log = [
        events.TaskSucceeded(**common(task_id="a", attempt=1), quality=quality(0.9)),  # type: ignore[arg-type]
        events.TaskTimedOut(**common(task_id="b", attempt=1), reason="past its 1 s"),  # type: ignore[arg-type]
        events.TaskSucceeded(**common(task_id="b", attempt=1), quality=quality(0.1)),  # type: ignore[arg-type]
        events.TaskSucceeded(**common(task_id="c", attempt=1, model="openai/gpt-x")),  # type: ignore[arg-type]
        events.TaskAssessed(**common(task_id="c", attempt=1, task_type="llm", model="openai/gpt-x"),  # type: ignore[arg-type]
                            accuracy=0.5, completeness=0.5, consistency=0.5, efficiency=0.5, maintainability=0.5,
                            overall=0.5),
    ]
    await _write(tmp_path / "events.db", log)
    async with store.SqliteEventLog(tmp_path / "events.db", readonly=True) as sink:
        report = await quality_report(sink, 1)
    assert (report["overall"]["assessed"], report["overall"]["overall"]) == (2, 0.7)
    assert {kind: stats["overall"] for kind, stats in report["by"]["task_type"].items()} == {"echo": 0.9, "llm": 0.5}
