"""The `ymera` command as a user runs it: in its own process, with the embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import bus
import events
import guard

from .conftest import spawn_ymera, ymera, ymera_env
from .support import started

EXAMPLE = Path(__file__).parent.parent / "examples" / "design_review.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: it only waits to be reaped by its parent.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_schema_is_json_with_every_event(tmp_path: Path) -> None:
    result = ymera("schema", env=ymera_env(tmp_path))
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$defs"]["WorkflowSubmitted"]["x-ymera-subject"] == "ymera.wf.<workflow_id>.submitted"


def test_submit_stores_the_workflow_on_the_embedded_defaults_and_leaves_no_server(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    submitted = ymera("submit", str(EXAMPLE), "--with-store", env=env)
    assert submitted.returncode == 0, submitted.stderr
    lines = submitted.stdout.splitlines()
    assert lines[0].startswith("submitted design-review-1 (4 tasks) as event ")
    assert lines[0].endswith(", stream seq 1")
    assert lines[1].startswith(f"stored in {tmp_path / 'data' / 'events.db'} at seq 1, head hash ")
    assert not (tmp_path / "data" / "nats-server.url").exists()
    assert bus.running_server(tmp_path / "data") is None

    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0
    assert audit.stdout.startswith("audit: ok, 1 events and 0 blobs verified, head seq 1, head hash ")

    run_id = lines[0].split(" as event ")[1].split(",")[0]
    replay = ymera("replay", "--projection", "workflow_status", env=env)
    assert json.loads(replay.stdout) == {"projection": "workflow_status", "through_seq": 1,
                                         "state": {"design-review-1": {run_id: "submitted"}}}

    # The stream kept the event on disk: a second run on the same data dir finds it.
    tail = ymera("events", "tail", "--from-start", "--limit", "1", env=env)
    assert tail.returncode == 0, tail.stderr
    assert "WorkflowSubmitted  design-review-1" in tail.stdout
    # The embedded server authenticates its clients: the principal is this host's client key's,
    # not the file's `principal: examples`.
    assert "principal=local" in tail.stdout


def test_a_second_command_joins_the_running_embedded_server(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    writer = spawn_ymera("actor", "store", env=env, output=tmp_path / "writer.log")
    try:
        marker = tmp_path / "data" / "nats-server.url"
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = bus.running_server(tmp_path / "data")
        assert url is not None, (tmp_path / "writer.log").read_text()
        submitted = ymera("submit", str(EXAMPLE), env=env)
        assert submitted.returncode == 0, submitted.stderr
        assert bus.running_server(tmp_path / "data") == url  # still the writer's server
    finally:
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(20) == 0, (tmp_path / "writer.log").read_text()
    assert not marker.exists()


def test_a_killed_runner_leaves_no_orphan_nats_server(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    runner = spawn_ymera("actor", "store", env=env, output=tmp_path / "runner.log")
    marker = tmp_path / "data" / "nats-server.url"
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    server_pid = int(marker.read_text().split()[0])
    assert _alive(server_pid)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert _wait_dead(server_pid), f"nats-server {server_pid} outlived its SIGKILLed parent"


async def test_tail_filters_by_workflow_and_type(tmp_path: Path, nats_server: bus.EmbeddedServer) -> None:
    # The test plays the executor: the TaskStarted it publishes are signed as the executor's are.
    connection = await bus.connect(nats_server.url, signer=guard.Identity.load_or_create(tmp_path / "keys", "executor"))
    try:
        await connection.publish_many([started("wf-a", "t1"), started("wf-b", "t2"), started("wf-a", "t3")])
        submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-a")
        await connection.publish(submission)
        await connection.js.publish("ymera.wf.x.submitted", b"garbage")
    finally:
        await connection.close()
    env = ymera_env(tmp_path, nats_server.url)

    by_workflow = ymera("events", "tail", "--from-start", "--workflow", "wf-a", "--limit", "3", env=env)
    lines = by_workflow.stdout.splitlines()
    assert [line.split()[2:4] for line in lines] == [["TaskStarted", "wf-a"], ["TaskStarted", "wf-a"],
                                                     ["WorkflowSubmitted", "wf-a"]]
    assert lines[0].split()[0] == "1"
    assert "t1  attempt=1 executor=ex-0" in lines[0]
    assert f"wf-a   run={submission.id[:8]} " in lines[2]  # a line shows its run

    by_type = ymera("events", "tail", "--from-start", "--type", "WorkflowSubmitted", "--limit", "1", env=env)
    assert by_type.stdout.split()[2:4] == ["WorkflowSubmitted", "wf-a"]

    everything = ymera("events", "tail", "--from-start", "--limit", "5", env=env)
    assert everything.stdout.splitlines()[4].split(None, 2) == [
        "5", "(malformed)", "ymera.wf.x.submitted  not valid JSON: JSON is malformed: invalid character (byte 0)"]


def test_an_unreachable_nats_server_is_one_line(tmp_path: Path) -> None:
    result = ymera("events", "tail", env=ymera_env(tmp_path, "nats://127.0.0.1:1"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "ymera: cannot reach NATS at nats://127.0.0.1:1: connection refused (is nats-server running?)\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("workflow_id: w\ntasks: [",
         "{path}: while parsing a flow node: did not find expected node content: line 3, column 1"),
        ("workflow_id: w\ntasks:\n  - id: a\n", "{path}: Object missing required field `type` - at `$.tasks[0]`"),
        ("workflow_id: w.x\ntasks: []\n",
         "{path}: workflow id 'w.x' is not valid: an id is 1 to 128 letters, digits, '_' or '-', starting with a "
         "letter or digit (ids become NATS subject tokens)"),
        ("workflow_id: w\ntasks: []\nowner: me\n", "{path}: Object contains unknown field `owner`"),
    ],
    ids=["missing-file", "not-yaml", "task-without-type", "id-not-a-subject-token", "unknown-field"],
)
def test_a_bad_workflow_file_is_refused_before_anything_is_published(
    tmp_path: Path, content: str | None, message: str,
) -> None:
    path = tmp_path / "wf.yaml"
    if content is not None:
        path.write_text(content)
    result = ymera("submit", str(path), env=ymera_env(tmp_path, "nats://127.0.0.1:1"))
    assert result.returncode == 1
    assert result.stderr.startswith("ymera: " + message.format(path=path))
    assert len(result.stderr.splitlines()) == 1


def test_audit_of_a_missing_log_says_where_it_looked(tmp_path: Path) -> None:
    result = ymera("audit", "verify", env=ymera_env(tmp_path / "nowhere"))
    assert (result.returncode, result.stderr) == (1, f"ymera: no event log at {tmp_path / 'nowhere' / 'events.db'}\n")
