"""/metrics and `ymera metrics export`: what a real engine run shows, rebuilt and live alike.

The engine runs every actor in this process on the test's nats-server (tests/web_support.py);
`/metrics` is scraped from `ymera serve`'s app on real uvicorn and parsed with prometheus-client's
own parser; `ymera metrics export` runs as a user runs it, in its own process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import bus
import events
import store
from events import (
    AlertRaised,
    AlertResolved,
    InputFlagged,
    LLMCalled,
    MessageRejected,
    SecurityFinding,
    TaskReady,
    TaskSpec,
    TaskSucceeded,
    TaskTimedOut,
    ToolRefused,
    WorkflowAdmitted,
    WorkflowSubmitted,
    WorkflowValidated,
)
from web._metrics import OTHER, SERIES_KEPT, Prometheus, PrometheusState

from .conftest import ymera, ymera_env
from .llm_server import OpenAIServer
from .web_support import Served, serving

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def helps(text: str) -> dict[str, str]:
    return {f.name: f.documentation for f in text_string_to_metric_families(text)}


def workload() -> tuple[WorkflowSubmitted, WorkflowSubmitted]:
    """A run that completes (two echo tasks and a priced LLM call) and one that fails (a python
    task that raises, tried twice, beside a noop that succeeds)."""
    ok = WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-ok", tasks=[
        TaskSpec(id="a", type="echo", parameters={"text": "one"}),
        TaskSpec(id="b", type="echo", parameters={"text": "two: {{ tasks.a.output }}"}, dependencies=["a"]),
        TaskSpec(id="ask", type="llm", description="Say hello", parameters={"cost_per_1k_tokens": 2.0})])
    bad = WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-bad", tasks=[
        TaskSpec(id="fine", type="noop"),
        TaskSpec(id="boom", type="python", tools=["python"], parameters={"function": "tests.pytasks:fail"},
                 retry=events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.01))])
    return ok, bad


async def settled(web: Served) -> int:
    """Until the stream has stopped growing, the view has folded all of it and the log stores all of
    it; returns that last seq."""
    async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log, asyncio.timeout(60):
        while True:
            last = (await web.bus.stream_state()).last_seq
            await web.view.wait_for(last)
            head = 0
            while head < last:
                async for rows in log.scan("seq", head + 1):
                    head = rows[-1][0]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # anything still to come (an assessment, a checkpoint)?
            if (await web.bus.stream_state()).last_seq == last:
                return last


@pytest.fixture
async def ran(tmp_path: Path, nats_bus: bus.Bus, llm: OpenAIServer) -> AsyncIterator[Served]:
    # No checkpoint on a timer: the stream stays still once the runs have settled.
    env = {"YMERA_PYTHON_MODULES": "tests.pytasks", "YMERA_LLM_BASE_URL": llm.base_url,
           "YMERA_LLM_MODEL": "test-model", "YMERA_CHECKPOINT_EVERY_SECONDS": "3600"}
    async with serving(tmp_path, nats_bus, env=env) as web:
        ok, bad = workload()
        assert isinstance(await web.submit(ok), events.WorkflowCompleted)
        assert isinstance(await web.submit(bad), events.WorkflowFailed)
        await settled(web)
        yield web


async def test_metrics_count_what_the_engine_did_and_a_rebuild_from_the_log_agrees(ran: Served) -> None:
    web = ran
    async with web.client("read") as http:
        response = await http.get("/metrics")
        open_metrics = await http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        unreadable = await http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=abc"})
    assert response.status_code == 200, response.text
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert open_metrics.text.endswith("# EOF\n")
    assert unreadable.status_code == 200
    assert unreadable.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    samples = parse(text)
    stored = await _stored(web)

    # Runs and tasks: every task of both runs ended; four succeeded, one failed (after two attempts).
    assert value(samples, "ymera_workflow_runs_ended_total", state="completed") == 1
    assert value(samples, "ymera_workflow_runs_ended_total", state="failed") == 1
    assert all(value(samples, "ymera_workflow_runs", state=s) == 0 for s in ("submitted", "running"))
    assert value(samples, "ymera_tasks_ended_total", state="succeeded") == 4
    assert value(samples, "ymera_tasks_ended_total", state="failed") == 1
    assert value(samples, "ymera_tasks", state="running") == 0
    assert value(samples, "ymera_task_attempts_total", kind="python", outcome="failed") == 2
    assert value(samples, "ymera_task_attempts_total", kind="echo", outcome="succeeded") == 2
    assert value(samples, "ymera_task_retries_total") == 1
    succeeded = [e for e in stored if isinstance(e, TaskSucceeded)]
    assert value(samples, "ymera_task_duration_seconds_count", kind="echo", model="none") == 2
    assert value(samples, "ymera_task_duration_seconds_bucket", kind="echo", model="none", le="+Inf") == 2
    assert sum(v for (name, _), v in samples.items() if name == "ymera_task_duration_seconds_sum") == \
        pytest.approx(sum(e.duration_ms for e in succeeded) / 1000)

    # The LLM call: its tokens and its cost, as the executor recorded them; the task's cost at its own price.
    [call] = [e for e in stored if isinstance(e, LLMCalled)]
    labels = {"provider": call.provider, "model": call.model}
    assert value(samples, "ymera_llm_calls_total", outcome="ok", **labels) == 1
    assert value(samples, "ymera_llm_cost_usd_total", **labels) == call.cost_usd  # the local server's price: 0
    [asked] = [e for e in succeeded if e.task_id == "ask"]
    assert asked.cost_usd == asked.usage["total_tokens"] * 2.0 / 1000
    assert asked.model is not None
    assert value(samples, "ymera_task_cost_usd_total", kind="llm", model=asked.model) == pytest.approx(asked.cost_usd)
    assert value(samples, "ymera_llm_tokens_total", direction="input", **labels) == call.tokens_in
    assert value(samples, "ymera_llm_tokens_total", direction="output", **labels) == call.tokens_out

    # Quality: each of the four successes was scored, the model's answer by the assessor, the
    # others in their attempts.
    assessed = [scored for e in stored if (scored := events.assessment_of(e)) is not None]
    assert len(assessed) == 4
    assert sum(isinstance(e, events.TaskAssessed) for e in stored) == 1
    assert value(samples, "ymera_quality_score_count", dimension="accuracy") == 4
    assert value(samples, "ymera_quality_score_sum", dimension="overall") == pytest.approx(
        sum(e.overall for e in assessed))
    assert value(samples, "ymera_quality_overall_score_bucket", le="+Inf") == 4

    # Where things stand: the bus answered, the view and the store are at the stream's head, and
    # every actor's durable consumer has delivered everything.
    last = (await web.bus.stream_state()).last_seq
    assert value(samples, "ymera_bus_up") == 1
    assert value(samples, "ymera_view_seq") == value(samples, "ymera_stream_last_seq") == last
    assert value(samples, "ymera_view_lag_events") == 0
    assert value(samples, "ymera_store_head_seq") == last
    for actor in ("store", "executor", "distributor", "monitor"):
        assert value(samples, "ymera_consumer_pending_messages", consumer=actor) == 0

    # Every family says what it is; units are in the names.
    documented = helps(text)
    assert all(name.startswith("ymera_") and doc for name, doc in documented.items())
    assert "ymera_llm_cost_usd" in documented
    assert "ymera_task_duration_seconds" in documented

    # The projection folded live equals the same projection rebuilt from the log.
    async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
        rebuilt, through = await store.rebuild(Prometheus(), log)
    assert through == web.view.last_seq
    assert rebuilt == web.view.states["prometheus"]


async def _stored(web: Served) -> list[events.Event]:
    async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
        return [events.decode(row[0]) async for rows in log.scan("data") for row in rows]


async def test_metrics_export_writes_exactly_the_dashboard_the_server_answers(ran: Served, tmp_path: Path) -> None:
    web = ran
    env = ymera_env(web.settings.data_dir)
    async with web.client("read") as http:
        served = (await http.get("/dashboard", params={"hours": 6})).json()
        default = (await http.get("/dashboard")).json()
    shown = await asyncio.to_thread(ymera, "metrics", "export", "--hours", "6", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == served
    out = tmp_path / "dashboard.json"
    written = await asyncio.to_thread(ymera, "metrics", "export", "--out", str(out), env=env)
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert f"to {out}" in written.stderr
    assert json.loads(out.read_text()) == default
    assert default["workflows"]["completed"] == 1
    async with web.client("read") as http:
        samples = parse((await http.get("/metrics")).text)
    assert default["cost"]["total_usd"] > 0
    assert default["cost"]["total_usd"] == pytest.approx(
        sum(v for (name, _), v in samples.items() if name == "ymera_task_cost_usd_total"))
    assert default["workflows"]["failed"] == 1


# ---- what a user gets wrong --------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def _empty_log(data_dir: Path) -> None:
    async with store.SqliteEventLog(data_dir / "events.db"):
        pass


def test_export_without_a_log_says_nothing_has_run_there(data_dir: Path) -> None:
    result = ymera("metrics", "export", env=ymera_env(data_dir))
    assert result.returncode == 1
    assert result.stderr == (f"ymera: no event log at {data_dir / 'events.db'}: start the engine first (`ymera up`), "
                             f"or set YMERA_DATA_DIR to the deployment's data dir\n")
    assert result.stdout == ""


@pytest.mark.parametrize("hours", ["0", "-2", "abc", "nan", "inf"])
def test_export_refuses_hours_that_are_not_a_positive_number(data_dir: Path, hours: str) -> None:
    result = ymera("metrics", "export", "--hours", hours, env=ymera_env(data_dir))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (f"ymera metrics export: error: argument --hours: {hours!r} is not "
                                              f"{store.HOURS_RULE}")


async def test_export_refuses_a_file_it_cannot_write_before_reading_the_log(data_dir: Path, tmp_path: Path) -> None:
    await _empty_log(data_dir)
    env = ymera_env(data_dir)
    cases = {tmp_path: f"ymera: cannot write {tmp_path}: it is a directory\n",
             tmp_path / "nowhere" / "d.json": f"ymera: cannot write {tmp_path / 'nowhere' / 'd.json'}: "
                                              f"no directory {tmp_path / 'nowhere'}\n"}
    for out, message in cases.items():
        result = await asyncio.to_thread(ymera, "metrics", "export", "--out", str(out), env=env)
        assert (result.returncode, result.stderr, result.stdout) == (1, message, "")


async def test_export_of_an_empty_log_is_an_empty_dashboard(data_dir: Path) -> None:
    await _empty_log(data_dir)
    result = await asyncio.to_thread(ymera, "metrics", "export", env=ymera_env(data_dir))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["system_status"]["as_of"] is None
    assert body["workflows"]["recent"] == []


# ---- the fold, event by event ------------------------------------------------------------------


def fold(stream: list[events.Event]) -> PrometheusState:
    """As the view folds: each event through the once-gate, then the projection."""
    projection, once = Prometheus(), store.Once()
    state = projection.initial()
    for event in stream:
        if once.admit(event):
            state = projection.apply(state, event)
    return state


def _at(seconds: float) -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def test_a_result_after_its_attempt_timed_out_is_late_not_a_success() -> None:
    sub = WorkflowSubmitted(id=events.new_id(), ts=_at(0), workflow_id="w", tasks=[TaskSpec(id="t", type="noop")])
    r = sub.id
    stream: list[events.Event] = [
        sub,
        WorkflowAdmitted(id=events.new_id(), ts=_at(1), principal="p", workflow_id="w", run_id=r),
        WorkflowValidated(id=events.new_id(), ts=_at(2), workflow_id="w", run_id=r),
        TaskReady(id=events.new_id(), ts=_at(3), task_id="t", attempt=1, workflow_id="w", run_id=r),
        TaskTimedOut(id=events.new_id(), ts=_at(4), task_id="t", attempt=1, reason="slow", workflow_id="w", run_id=r),
        TaskSucceeded(id=events.new_id(), ts=_at(5), task_id="t", attempt=1, duration_ms=1500.0, workflow_id="w",
                      run_id=r),
    ]
    state = fold(stream)
    assert state.late_results == 1
    assert state.attempts == {("noop", "timed_out"): 1}
    assert state.durations == {}
    assert state.tasks["retrying"] == 1
    assert state.workflows["running"] == 1


def test_alerts_findings_refusals_and_rejections_are_counted() -> None:
    raised = AlertRaised(id=events.new_id(), ts=_at(0), workflow_id=events.NO_WORKFLOW, alert="quality_low",
                         severity="warning", message="low", subject="model:x")
    other = AlertRaised(id=events.new_id(), ts=_at(1), workflow_id=events.NO_WORKFLOW, alert="failure_rate",
                        severity="critical", message="many fail")
    finding = SecurityFinding(kind="injection", type="prompt_injection", severity="high", field="description",
                              span=(0, 5), reason="ignore previous", alert="injection_attempt")
    sub = WorkflowSubmitted(id=events.new_id(), ts=_at(0), workflow_id="w", tasks=[TaskSpec(id="t", type="llm")])
    r = sub.id
    stream: list[events.Event] = [
        sub, raised, other, raised,  # a copy changes nothing
        AlertResolved(id=events.new_id(), ts=_at(2), workflow_id=events.NO_WORKFLOW, alert="quality_low",
                      raised_id=raised.id, message="fine", subject="model:x"),
        InputFlagged(id=events.new_id(), ts=_at(3), submission_id=sub.id, principal="p",
                     findings=[finding, finding], refused=False, workflow_id="w", run_id=r),
        ToolRefused(id=events.new_id(), ts=_at(4), task_id="t", attempt=1, tool="files",
                    reason="outside the workspace", workflow_id="w", run_id=r),
        MessageRejected(id=events.new_id(), ts=_at(5), workflow_id="w", subject="ymera.wf.w.x", reason="bad",
                        excerpt="{", size=1, stream_seq=7, kind="untrusted"),
        LLMCalled(id=events.new_id(), ts=_at(6), task_id="t", attempt=1, provider="openai", model="gpt-x",
                  tokens_in=10, tokens_out=5, cost_usd=0.25, workflow_id="w", run_id=r),
    ]
    state = fold(stream)
    assert state.alerts_open == {"failure_rate": (other.id, "failure_rate", "critical")}
    assert state.alerts_raised == {("quality_low", "warning"): 1, ("failure_rate", "critical"): 1}
    assert state.findings == {("input", "prompt_injection", "high"): 2}
    assert state.tool_refusals == {("files", "refused"): 1}
    assert state.rejected == {"malformed": 0, "untrusted": 1}
    assert state.llm_calls == {("openai", "gpt-x", "ok"): 1}
    assert state.llm_tokens == {("openai", "gpt-x", "input"): 10, ("openai", "gpt-x", "output"): 5}
    assert state.llm_cost_usd == {("openai", "gpt-x"): 0.25}


def test_label_values_are_bounded_whatever_the_log_holds() -> None:
    stream: list[events.Event] = [
        LLMCalled(id=events.new_id(), ts=_at(i), workflow_id=events.NO_WORKFLOW, task_id="t", attempt=1,
                  provider="p", model=f"model-{i}", tokens_in=1) for i in range(SERIES_KEPT + 50)]
    state = fold(stream)
    assert len(state.llm_cost_usd) == SERIES_KEPT + 1
    assert state.llm_calls[(OTHER, OTHER, OTHER)] == 50
    assert sum(state.llm_calls.values()) == SERIES_KEPT + 50
