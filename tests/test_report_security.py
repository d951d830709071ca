"""`ymera report security` and `WorkflowOrchestrator.get_security_report`: what the log says about
security over a window of hours, counted from a real run's log (a submission refused for a SQL
injection, an output holding an API key, a forged result), never quoting the key."""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

import bus
import events
import runner
import store
from actors import Settings, load_settings
from store import InvalidHours, security_report
from ymera import WorkflowClient, WorkflowOrchestrator
from ymera._client import store_caught_up
from ymera._report import security_text

from .conftest import ymera, ymera_env
from .engine import in_process

INJECTION = "'; DROP TABLE users; --"
FORGERY = "TaskSucceeded is the executor's to emit, and this one is not signed"


def groq_key() -> str:  # made at test time: the repository holds no key-shaped string
    rnd = random.Random(23)
    return "gsk" + "_" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(52))


@dataclass(frozen=True)
class Built:
    settings: Settings
    key: str
    refused: events.WorkflowSubmitted
    leak: events.WorkflowSubmitted
    between: datetime  # after every event of the refused submission, before any of the leak's
    rows: list[tuple[float, events.Event]]  # the log's security rows, for the expected numbers


def submission(workflow_id: str, spec: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, principal="ada",
                                    tasks=[spec])


async def logged(settings: Settings) -> list[tuple[float, events.Event]]:
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        return [(ts, events.decode(data)) async for chunk in log.scan(
            "ts, data", types=("InputFlagged", "OutputFlagged", "MessageRejected", "WorkflowRefused",
                               "ChainCheckpoint", "AlertRaised")) for ts, data in chunk]


async def until_logged(settings: Settings, wanted: set[str], rejected: int = 0) -> None:
    """Until the log holds events of every type in `wanted` (AlertRaised as `AlertRaised:<alert>`)
    and `rejected` MessageRejected."""
    for _ in range(300):
        rows = [e for _, e in await logged(settings)]
        seen = {type(e).__name__ for e in rows} | {f"AlertRaised:{e.alert}" for e in rows
                                                     if isinstance(e, events.AlertRaised)}
        if wanted <= seen and sum(isinstance(e, events.MessageRejected) for e in rows) >= rejected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the log did not hold {wanted - seen} and {rejected} rejections within 30s")


async def build(settings: Settings, url: str, key: str) -> Built:
    connection = await bus.connect(url)  # signs nothing: its TaskSucceeded is a forgery
    try:
        async with in_process(settings, connection):
            client = WorkflowClient(connection)
            refused = submission("wf-inject", events.TaskSpec(id="lookup", type="echo",
                                                              parameters={"query": INJECTION}))
            end, _ = await client.wait(refused.workflow_id, await client.submit(refused), timeout=60,
                                       run_id=refused.id)
            assert isinstance(end, events.WorkflowRefused), end
            await until_logged(settings, {"InputFlagged", "WorkflowRefused", "AlertRaised:injection_attempt"})
            between = events.now()
            await asyncio.sleep(0.05)
            leak = submission("wf-leak", events.TaskSpec(id="leak", type="echo",
                                                         parameters={"text": f"the key is {key}"}))
            end, _ = await client.wait(leak.workflow_id, await client.submit(leak), timeout=60, run_id=leak.id)
            assert isinstance(end, events.WorkflowCompleted), end
            await connection.publish(events.TaskSucceeded(
                id=events.new_id(), ts=events.now(), workflow_id=leak.workflow_id, run_id=leak.id, task_id="leak",
                attempt=1, output="made up", actor="executor"))
            await connection.nc.publish("ymera.wf.wf-leak.submitted", b"not an event")
            await until_logged(settings, {"OutputFlagged", "MessageRejected", "AlertRaised:secret_leak",
                                          "ChainCheckpoint"}, rejected=2)
            await store_caught_up(connection)
    finally:
        await connection.close()
    return Built(settings, key, refused, leak, between, await logged(settings))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One real run's log, shared by the tests of this module (which only read it)."""
    root = tmp_path_factory.mktemp("report")
    settings = load_settings({"YMERA_DATA_DIR": str(root / "data"), "YMERA_CHECKPOINT_EVERY_SECONDS": "0.2"},
                             dotenv=None)
    server = bus.EmbeddedServer(root / "nats")
    server.start()
    try:
        return asyncio.run(build(settings, server.url, groq_key()))
    finally:
        server.stop()


def only(rows: list[tuple[float, events.Event]], kind: type[Any]) -> list[tuple[float, Any]]:
    return [(ts, e) for ts, e in rows if isinstance(e, kind)]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def without_window(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("since", "until")}


async def report_of(built: Built, hours: float = 24, now: datetime | None = None) -> dict[str, Any]:
    async with store.SqliteEventLog(built.settings.log_path, readonly=True) as log:
        return await security_report(log, hours, now=now)


async def test_the_report_counts_every_finding_rejection_refusal_alert_and_checkpoint_of_a_real_run(
        built: Built) -> None:
    now = datetime.now(UTC)
    report = await report_of(built, now=now)
    [(input_ts, flagged_input)] = only(built.rows, events.InputFlagged)
    [(output_ts, flagged_output)] = only(built.rows, events.OutputFlagged)
    [(_, forged), (_, malformed)] = only(built.rows, events.MessageRejected)
    checkpoints = only(built.rows, events.ChainCheckpoint)
    alerts = [(ts, a) for ts, a in only(built.rows, events.AlertRaised)
              if a.alert in ("injection_attempt", "secret_leak", "harmful_content", "security_events")]
    [sql] = flagged_input.findings
    [secret] = flagged_output.findings
    assert (sql.type, sql.severity, secret.type, secret.severity) == (
        "sql_injection", "critical", "groq_api_key", "critical")
    assert (forged.reason, malformed.subject) == (FORGERY, "ymera.wf.wf-leak.submitted")
    assert not malformed.reason.startswith("WorkflowSubmitted")
    assert [(a.alert, a.severity) for _, a in alerts] == [("injection_attempt", "critical"),
                                                          ("secret_leak", "critical")]
    assert report == {
        "hours": 24.0, "since": (now - timedelta(hours=24)).isoformat(), "until": now.isoformat(),
        "findings": {"total": 2, "by_alert": {"injection_attempt": 1, "secret_leak": 1},
                     "by_type": {"groq_api_key": 1, "sql_injection": 1}, "by_severity": {"critical": 2}},
        "inputs": {"flagged_submissions": 1, "refused": 1},
        "outputs": {"flagged_attempts": 1, "redacted": 1}, "tools": {"refused": 0, "limit": 0, "by_tool": {}},
        "rejected_messages": {"total": 2, "forged": 1, "malformed": 1,
                              "by_reason": dict(sorted([(FORGERY[:60], 1), (malformed.reason[:60], 1)]))},
        "refusals": {"total": 1, "for_input": 1}, "cancels_refused": {"total": 0, "by_principal": {}},
        "alerts": [{"ts": iso(ts), "alert": a.alert, "severity": "critical", "message": a.message}
                   for ts, a in alerts],
        "checkpoints": {"count": len(checkpoints), "latest_seq": max(c.head_seq for _, c in checkpoints)},
        "recent": [
            {"ts": iso(output_ts), "workflow_id": "wf-leak", "run_id": built.leak.id, "task_id": "leak",
             "stage": "output", "type": "groq_api_key", "severity": "critical", "field": "output",
             "reason": secret.reason},
            {"ts": iso(input_ts), "workflow_id": "wf-inject", "run_id": built.refused.id, "task_id": None,
             "stage": "input", "type": "sql_injection", "severity": "critical", "field": "lookup.parameters.query",
             "reason": sql.reason}],
    }
    assert built.key not in json.dumps(report)
    assert built.key not in security_text(report)


async def test_the_window_keeps_the_rows_whose_time_is_in_it(built: Built) -> None:
    before = await report_of(built, hours=1, now=built.between)
    assert (before["findings"]["by_type"], before["inputs"], before["outputs"], before["refusals"],
            before["rejected_messages"]["total"], [a["alert"] for a in before["alerts"]]) == (
        {"sql_injection": 1}, {"flagged_submissions": 1, "refused": 1}, {"flagged_attempts": 0, "redacted": 0},
        {"total": 1, "for_input": 1}, 0, ["injection_attempt"])
    after = await report_of(built, hours=1, now=built.between + timedelta(hours=1))
    assert (after["findings"]["by_type"], after["inputs"], after["outputs"], after["refusals"],
            after["rejected_messages"]["total"], [a["alert"] for a in after["alerts"]]) == (
        {"groq_api_key": 1}, {"flagged_submissions": 0, "refused": 0}, {"flagged_attempts": 1, "redacted": 1},
        {"total": 0, "for_input": 0}, 2, ["secret_leak"])
    assert [f["stage"] for f in after["recent"]] == ["output"]
    later = await report_of(built, now=datetime.now(UTC) + timedelta(hours=25))
    assert (later["findings"]["total"], later["rejected_messages"]["total"], later["alerts"], later["recent"],
            later["checkpoints"]) == (0, 0, [], [], {"count": 0, "latest_seq": None})
    assert security_text(later) == "no security events in the last 24 hours"


async def test_an_empty_log_has_no_security_events(tmp_path: Path) -> None:
    async with store.SqliteEventLog(tmp_path / "events.db"):
        pass
    async with store.SqliteEventLog(tmp_path / "events.db", readonly=True) as log:
        report = await security_report(log, 2.5, now=datetime(2025, 6, 2, 10, 0, tzinfo=UTC))
    assert without_window(report) == {
        "hours": 2.5, "findings": {"total": 0, "by_alert": {}, "by_type": {}, "by_severity": {}},
        "inputs": {"flagged_submissions": 0, "refused": 0}, "outputs": {"flagged_attempts": 0, "redacted": 0},
        "tools": {"refused": 0, "limit": 0, "by_tool": {}},
        "rejected_messages": {"total": 0, "forged": 0, "malformed": 0, "by_reason": {}},
        "refusals": {"total": 0, "for_input": 0}, "cancels_refused": {"total": 0, "by_principal": {}}, "alerts": [],
        "checkpoints": {"count": 0, "latest_seq": None}, "recent": []}
    assert (report["since"], report["until"]) == ("2025-06-02T07:30:00+00:00", "2025-06-02T10:00:00+00:00")
    assert security_text(report) == "no security events in the last 2.5 hours"


def test_the_command_prints_a_summary_and_the_reports_json_and_never_the_key(built: Built) -> None:
    env = ymera_env(built.settings.data_dir)
    text = ymera("report", "security", env=env)
    assert (text.returncode, text.stderr) == (0, "")
    lines = text.stdout.splitlines()
    assert re.fullmatch(r"security in the last 24 hours \(\S+ \S+ to \S+ \S+ UTC\)", lines[0]), lines[0]
    assert lines[2:10] == [
        "findings           2: 2 critical",
        "  by alert         injection_attempt 1, secret_leak 1",
        "  by type          groq_api_key 1, sql_injection 1",
        "inputs             1 submission flagged, 1 refused",
        "outputs            1 attempt flagged, 1 redacted",
        "rejected messages  2: 1 forged, 1 malformed",
        "refusals           1 workflow refused, 1 for their input",
        "tool calls         0 refused, 0 stopped at a limit",
    ]
    checkpoints = [c.head_seq for _, c in only(built.rows, events.ChainCheckpoint)]
    assert lines[10] == f"checkpoints        {len(checkpoints)} signed, the latest at seq {max(checkpoints)}"
    assert lines[12:14] == ["rejected messages by reason", "  count  reason"]
    assert f"      1  {FORGERY[:60]}" in lines[14:16]
    assert "recent findings (newest first)" in lines
    [leak_row] = [line for line in lines if " wf-leak " in line]
    assert leak_row.split()[2:10] == ["wf-leak", built.leak.id[:8], "leak", "output", "groq_api_key", "critical",
                                      "output", "a"]
    as_json = ymera("report", "security", "--hours", "48", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    expected = asyncio.run(report_of(built, hours=48))
    assert without_window(json.loads(as_json.stdout)) == without_window(msgspec.to_builtins(expected))
    for out in (text, as_json):
        assert built.key not in out.stdout + out.stderr


def test_the_command_without_a_log_says_where_it_looked(tmp_path: Path) -> None:
    result = ymera("report", "security", env=ymera_env(tmp_path / "nowhere"))
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"ymera: no event log at {tmp_path / 'nowhere' / 'events.db'}\n")


@pytest.mark.parametrize("hours", ["0", "-1", "soon", "nan", "inf"])
def test_hours_that_are_not_a_positive_number_are_refused_naming_the_option(
        hours: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        runner.main(["report", "security", "--hours", hours])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ymera report security: error: argument --hours: {hours!r} is not a positive number of hours")


async def test_the_orchestrator_reads_the_same_report_from_the_log(built: Built) -> None:
    orchestrator = WorkflowOrchestrator(built.settings)
    try:
        report = await orchestrator.get_security_report(hours=24)
        with pytest.raises(InvalidHours) as refused:
            await orchestrator.get_security_report(hours=0)
    finally:
        await orchestrator.close()
    assert without_window(report) == without_window(await report_of(built))
    assert str(refused.value) == "hours 0 is not a positive number of hours"
    assert time.time() - datetime.fromisoformat(report["until"]).timestamp() < 60


FORGED_REASONS = [
    FORGERY,
    "TaskReady is the distributor's to emit, and this one is signed by the executor",
    "WorkflowCompleted is signed by key '3f9a0c2d5e7b1a4c', which is no actor's key this deployment knows",
    "TaskHeartbeat's signature does not verify: the message was altered, or the signature forged",
    "TaskStarted has a malformed signature header",
]
MALFORMED_REASONS = [
    "not a valid event: Object missing required field `type` - at `$.tasks[0]`",
    "message is 2000000 bytes, over the 1048576-byte event limit (large values must travel as blobs)",
    "TaskReady abc was published on ymera.task.wf.t.started but belongs on ymera.task.wf.t.ready",
    *(f"not valid JSON: case {n}" for n in range(3)),
]


async def test_a_rejection_is_forged_when_its_types_actor_did_not_sign_it_and_else_malformed(
        tmp_path: Path) -> None:
    at = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    rejections = [events.MessageRejected(id=events.new_id(), ts=at, workflow_id="wf", actor="store",
                                         subject="ymera.wf.wf.x", reason=reason, excerpt="", size=0,
                                         kind="untrusted" if reason in FORGED_REASONS else "malformed")
                  for reason in [*FORGED_REASONS, *MALFORMED_REASONS, FORGERY]]
    async with store.SqliteEventLog(tmp_path / "events.db") as log:
        await log.append([store.NewEvent(seq=n, id=e.id, type="MessageRejected", subject=events.subject_of(e),
                                         workflow_id="wf", ts=at.timestamp(), data=events.encode(e))
                          for n, e in enumerate(rejections, 1)])
        report = await security_report(log, 1, now=at + timedelta(minutes=1))
    assert report["rejected_messages"] == {  # the 10 reasons most given (60 characters of each), of 11
        "total": 12, "forged": 6, "malformed": 6,
        "by_reason": {FORGERY[:60]: 2,
                      **{r[:60]: 1 for r in sorted([*FORGED_REASONS[1:], *MALFORMED_REASONS])[:9]}}}
    assert security_text(report).splitlines()[7] == "rejected messages  12: 6 forged, 6 malformed"


async def test_recent_holds_the_last_20_findings_newest_first(tmp_path: Path) -> None:
    at = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    flagged = [events.OutputFlagged(
        id=events.new_id(), ts=at + timedelta(seconds=n), workflow_id="wf", run_id="r", task_id=f"t{n}", attempt=1,
        redacted=True, actor="executor",
        findings=[events.SecurityFinding(kind="pii", type=kind, severity="medium", field="output", span=(0, 5),
                                         reason=f"an {kind}", alert="pii_exposure") for kind in ("email", "phone")])
        for n in range(12)]
    async with store.SqliteEventLog(tmp_path / "events.db") as log:
        await log.append([store.NewEvent(seq=n, id=e.id, type="OutputFlagged", subject=events.subject_of(e),
                                         workflow_id="wf", ts=e.ts.timestamp(), data=events.encode(e))
                          for n, e in enumerate(flagged, 1)])
        report = await security_report(log, 1, now=at + timedelta(minutes=1))
    assert (report["findings"]["total"], report["findings"]["by_alert"], report["outputs"]) == (
        24, {"pii_exposure": 24}, {"flagged_attempts": 12, "redacted": 12})
    assert [(f["task_id"], f["type"]) for f in report["recent"]] == [
        (f"t{n}", kind) for n in range(11, 1, -1) for kind in ("email", "phone")]
