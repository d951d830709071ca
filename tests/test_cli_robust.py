"""The `ymera` command on bad ground: a broken log, a reader that goes away, NATS not up yet."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import bus
import events
import runner
import store

from .conftest import spawn_ymera, ymera, ymera_env
from .engine import connected, wait_for_actors
from .support import next_msg, started, wait_until

ROOT = Path(__file__).parent.parent


# ---- a log that is not one ---------------------------------------------------------------


def _not_a_database(path: Path) -> str:
    path.write_bytes(b"these bytes are no SQLite database, however long they go on\n" * 20)
    return "file is not a database"


def _events_table_gone(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE blobs (digest TEXT PRIMARY KEY, size INTEGER, data BLOB)")
    return "no such table: events"


@pytest.mark.parametrize("command", [("audit", "verify"), ("replay",)], ids=["audit", "replay"])
@pytest.mark.parametrize("damage", [_not_a_database, _events_table_gone], ids=["not-a-database", "no-events-table"])
def test_a_log_that_is_not_one_is_one_line_and_exit_1(tmp_path: Path, command: tuple[str, ...], damage) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "data" / "events.db"
    path.parent.mkdir()
    reason = damage(path)
    result = ymera(*command, env=ymera_env(tmp_path / "data"), timeout=30)  # returns: nothing left hanging
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"ymera: cannot open the event log {path}: {reason}\n"


async def test_a_log_whose_blobs_table_is_gone_fails_the_audit_in_one_line(nats_bus: bus.Bus, tmp_path: Path) -> None:
    path = tmp_path / "data" / "events.db"
    async with store.SqliteEventLog(path) as log:
        event = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="w", task_id="t", attempt=1,
                                     output="o" * (events.INLINE_LIMIT + 1))
        sent, data = await events.offload(event, nats_bus.put_blob)
        await log.append([store.NewEvent(1, sent.id, "TaskSucceeded", events.subject_of(sent), "w",
                                         sent.ts.timestamp(), data)])
        await log.db.execute("DROP TABLE blobs")
        await log.db.commit()
    result = ymera("audit", "verify", env=ymera_env(tmp_path / "data"), timeout=30)
    assert (result.returncode, result.stderr) == (1, f"ymera: cannot read the event log {path}: no such table: blobs\n")


# ---- a reader that goes away -------------------------------------------------------------


def _spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "runner", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _read_a_line_and_go(proc: subprocess.Popen[bytes]) -> tuple[bytes, int, str]:
    """What `| head -1` does: read one line, close the pipe, and leave the writer to it."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc:  # closes stderr on the way out
        line = proc.stdout.readline()
        proc.stdout.close()
        code = proc.wait(60)
        return line, code, proc.stderr.read().decode()


def test_schema_into_a_reader_gone_before_it_writes_ends_quietly(tmp_path: Path) -> None:
    proc = _spawn("schema", env=ymera_env(tmp_path))
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc:
        proc.stdout.close()  # gone before the interpreter has even started
        assert proc.wait(60) == runner.EXIT_BROKEN_PIPE
        assert proc.stderr.read() == b""


async def test_tail_and_replay_into_head_end_quietly(tmp_path: Path, nats_server: bus.EmbeddedServer) -> None:
    env = ymera_env(tmp_path / "data", nats_server.url)
    async with (connected(nats_server.url, signing_as=(tmp_path / "data" / "keys", "executor")) as connection,
                store.SqliteEventLog(tmp_path / "data" / "events.db") as log):
        # Far more than a pipe holds (64 KiB), so the writer is still writing when the reader goes.
        sent = [started(f"wf{i}", "t", i) for i in range(3000)]
        await connection.publish_many(sent)
        await log.append([store.NewEvent(i + 1, e.id, "TaskStarted", events.subject_of(e), e.workflow_id,
                                         e.ts.timestamp(), events.encode(e)) for i, e in enumerate(sent)])
    tail = _spawn("events", "tail", "--from-start", "--limit", "3000", env=env)
    line, code, stderr = _read_a_line_and_go(tail)
    assert line.split()[:4] == [b"1", line.split()[1], b"TaskStarted", b"wf0"]
    assert (code, stderr) == (runner.EXIT_BROKEN_PIPE, "")

    replay = _spawn("replay", env=env)
    line, code, stderr = _read_a_line_and_go(replay)
    assert line == b"{\n"
    assert (code, stderr) == (runner.EXIT_BROKEN_PIPE, "")


def test_run_into_head_still_runs_the_workflow_to_its_end(tmp_path: Path) -> None:
    # The actors run in the command's process: a reader gone after the first line must not
    # stop them before the run ends (it used to stay "running" until the next command).
    workflow = tmp_path / "steps.yaml"
    workflow.write_text("workflow_id: steps-1\ntasks:\n"
                        "  - {id: a, type: sleep, parameters: {seconds: 0.3}}\n"
                        "  - {id: b, type: echo, parameters: {text: hi}, dependencies: [a]}\n"
                        "  - {id: c, type: echo, parameters: {text: hi}, dependencies: [b]}\n")
    env = ymera_env(tmp_path / "data")
    line, code, stderr = _read_a_line_and_go(_spawn("run", str(workflow), env=env))
    assert line.startswith(b"validated: 3 tasks in 3 parallel groups")
    assert (code, stderr) == (runner.EXIT_BROKEN_PIPE, "")
    status = ymera("status", "steps-1", env=env, cwd=tmp_path)
    assert status.stdout.splitlines()[0].startswith("workflow steps-1: completed"), status.stdout


# ---- NATS not up yet ---------------------------------------------------------------------


async def test_an_actor_started_before_nats_waits_for_it_then_works(tmp_path: Path) -> None:
    port = bus.free_port()
    url = f"nats://127.0.0.1:{port}"
    output = tmp_path / "security.log"
    actor = spawn_ymera("actor", "security", env=ymera_env(tmp_path / "data", url), output=output)
    try:
        await wait_until(lambda: "attempt 3," in output.read_text(), timeout=60, what="three attempts")
        assert actor.poll() is None  # still there, waiting
        waits = [line for line in output.read_text().splitlines() if "waiting for NATS" in line]
        assert re.search(rf"waiting for NATS at {url} \(attempt 1, next in 0\.5s\)", waits[0])
        assert re.search(rf"waiting for NATS at {url} \(attempt 2, next in 1s\)", waits[1])
        assert "reason='connection refused (is nats-server running?)'" in waits[0]
        with bus.EmbeddedServer(tmp_path / "nats", port=port):
            async with connected(url) as connection:
                await wait_for_actors(connection, ("security",))
                submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="late")
                await connection.publish(submission)
                admitted = await connection.follow(1, "ymera.wf.late.admitted")
                msg = await next_msg(admitted, 30)
                assert events.decode(msg.data).causation_id == submission.id
            actor.terminate()
            assert actor.wait(30) == 0
    finally:
        if actor.poll() is None:
            actor.kill()
            actor.wait()


def test_an_actor_stopped_while_it_waits_for_nats_exits_cleanly(tmp_path: Path) -> None:
    output = tmp_path / "store.log"
    url = f"nats://127.0.0.1:{bus.free_port()}"
    actor = spawn_ymera("actor", "store", env=ymera_env(tmp_path / "data", url), output=output)
    try:
        asyncio.run(wait_until(lambda: "waiting for NATS" in output.read_text(), timeout=60, what="a wait"))
        actor.terminate()
        assert actor.wait(30) == 0
        assert "Traceback" not in output.read_text()
    finally:
        if actor.poll() is None:
            actor.kill()
            actor.wait()


# ---- events tail --workflow --------------------------------------------------------------


async def test_tail_of_one_workflow_leaves_out_other_workflows_malformed_messages(
    tmp_path: Path, nats_server: bus.EmbeddedServer,
) -> None:
    async with connected(nats_server.url, signing_as=(tmp_path / "keys", "executor")) as connection:
        await connection.js.publish("ymera.wf.other.submitted", b"not json, and not mine")
        await connection.js.publish("ymera.task.other.t.started", b"{}")
        await connection.publish(started("other", "t"))
        await connection.js.publish("ymera.wf.mine.submitted", b"garbage")
        await connection.publish(started("mine", "t"))
    env = ymera_env(tmp_path, nats_server.url)
    mine = ymera("events", "tail", "--from-start", "--workflow", "mine", "--limit", "2", env=env, timeout=30)
    lines = mine.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split(None, 2) == [
        "4", "(malformed)", "ymera.wf.mine.submitted  not valid JSON: JSON is malformed: invalid character (byte 0)"]
    assert lines[1].split()[2:4] == ["TaskStarted", "mine"]
    typed = ymera("events", "tail", "--from-start", "--type", "TaskStarted", "--limit", "2", env=env, timeout=30)
    assert [line.split()[2:4] for line in typed.stdout.splitlines()] == [["TaskStarted", "other"],
                                                                       ["TaskStarted", "mine"]]


async def test_tail_names_a_blob_held_value_instead_of_fetching_it(tmp_path: Path,
                                                                  nats_server: bus.EmbeddedServer) -> None:
    tasks = [events.TaskSpec(id=f"t{i}", type="noop", description="d" * 100) for i in range(1000)]
    async with connected(nats_server.url) as connection:
        sent, _ = await events.offload(events.WorkflowSubmitted(
            id=events.new_id(), ts=events.now(), workflow_id="wide", tasks=tasks), connection.put_blob)
        await connection.publish(sent)
    tail = ymera("events", "tail", "--from-start", "--limit", "1", env=ymera_env(tmp_path, nats_server.url))
    assert f"tasks=<blob of {sent.blobs['tasks'].size} bytes>" in tail.stdout


# ---- projection names --------------------------------------------------------------------


def test_replay_of_an_unknown_projection_lists_the_real_ones(tmp_path: Path) -> None:
    result = ymera("replay", "--projection", "WorkflowStatus", env=ymera_env(tmp_path), timeout=30)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("ymera: no projection named 'WorkflowStatus'; "
                             "projections: event_counts, metrics, workflow_runs, workflow_status\n")


def test_the_docs_list_exactly_the_projections_replay_knows() -> None:
    section = (ROOT / "docs" / "store.md").read_text().split("## Replay and projections")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(runner.PROJECTIONS)
    readme = (ROOT / "README.md").read_text()
    replay_row = next(line for line in readme.splitlines() if line.startswith("| `ymera replay [--projection"))
    assert re.findall(r"`(\w+)`", replay_row.split("|")[2]) == documented


async def test_replay_prints_the_metrics_projection(tmp_path: Path) -> None:
    # Projections fold the events of a run (docs/engine.md, "Fencing"): a submission and its start.
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="w",
                                   tasks=[events.TaskSpec(id="t", type="noop")])
    e = events.TaskStarted(id=events.new_id(), ts=events.now(), workflow_id="w", run_id=sub.id, task_id="t",
                           attempt=1, executor="ex")
    async with store.SqliteEventLog(tmp_path / "data" / "events.db") as log:
        await log.append([store.NewEvent(seq, x.id, type(x).__name__, events.subject_of(x), "w", x.ts.timestamp(),
                                         events.encode(x)) for seq, x in ((1, sub), (2, e))])
    result = ymera("replay", "--projection", "metrics", env=ymera_env(tmp_path / "data"), timeout=30)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["projection"], printed["through_seq"]) == ("metrics", 2)
    assert printed["state"]["tasks"]["started"] == 1
    assert printed["state"]["workflows"]["active"] == 1
