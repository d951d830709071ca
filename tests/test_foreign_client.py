"""A client that is not Python-in-process can submit, knowing only the JSON Schema.

`tests/foreign_client.py` runs in its own process with `python -I -S`, so only the standard
library is importable: it reads the output of `ymera schema`, builds a WorkflowSubmitted
from it and publishes it with the raw NATS text protocol. The store writer runs here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import pytest

import bus
import events
import store

from .conftest import ymera, ymera_env

FOREIGN_CLIENT = Path(__file__).with_name("foreign_client.py")
WORKFLOW_ID = "wf-foreign-1"
# What the client must work out from the schema's x-ymera-subject on its own.
SUBJECT = f"ymera.wf.{WORKFLOW_ID}.submitted"
TASKS = ["fetch:echo", "summarize:noop:fetch"]


class ForeignRun(NamedTuple):
    returncode: int
    report: dict[str, Any]  # {"subject", "event", "acks"}, as the client printed it
    stderr: str


class RunningWriter(NamedTuple):
    writer: store.StoreWriter
    task: asyncio.Task[None]


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    """`ymera schema` as a user runs it, saved where a foreign client would read it."""
    result = ymera("schema", env=ymera_env(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "ymera-events.schema.json"
    path.write_text(result.stdout)
    return path


@pytest.fixture
def schema(schema_file: Path) -> dict[str, Any]:
    """The same schema, for the tests' own check with jsonschema."""
    parsed: dict[str, Any] = json.loads(schema_file.read_bytes())
    return parsed


@pytest.fixture
async def store_writer(nats_bus: bus.Bus, event_log: store.SqliteEventLog) -> AsyncIterator[RunningWriter]:
    writer = store.StoreWriter(nats_bus, event_log)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        yield RunningWriter(writer, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def run_foreign_client(server: bus.EmbeddedServer, schema: Path, *extra: str) -> ForeignRun:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", str(FOREIGN_CLIENT), server.url, str(schema), WORKFLOW_ID,
        *(arg for task in TASKS for arg in ("--task", task)), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert out, f"the foreign client printed nothing (exit {proc.returncode}): {err.decode()}"
    return ForeignRun(proc.returncode or 0, json.loads(out), err.decode())


async def stored_through(log: store.SqliteEventLog, running: RunningWriter, seq: int,
                         timeout: float = 10.0) -> list[store.StoredEvent]:
    """Every row of the log, once the writer has committed stream seq `seq`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while log.head_seq < seq:
        if running.task.done():
            running.task.result()
            pytest.fail("the store writer stopped before storing the event")
        if loop.time() > deadline:
            pytest.fail(f"stream seq {seq} not stored within {timeout:g}s (log head {log.head_seq})")
        await asyncio.sleep(0.02)
    return [row async for row in log.read(0)]


def one_event(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """One event's definition, as a schema of its own (the union's anyOf hides which failed)."""
    return {"$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}


def violations(schema: dict[str, Any], document: dict[str, Any]) -> list[tuple[list[Any], str]]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted((list(e.absolute_path), e.message) for e in validator.iter_errors(document))


async def test_a_stdlib_only_client_submits_a_workflow_built_from_the_json_schema(
    nats_server: bus.EmbeddedServer, event_log: store.SqliteEventLog, store_writer: RunningWriter,
    schema_file: Path, schema: dict[str, Any],
) -> None:
    run = await run_foreign_client(nats_server, schema_file)

    assert run.returncode == 0, run.stderr
    document, [ack] = run.report["event"], run.report["acks"]
    assert violations(schema, document) == []
    assert violations(one_event(schema, "WorkflowSubmitted"), document) == []
    assert ack == {"stream": bus.STREAM, "seq": 1}  # no "error", no "duplicate"

    rows = await stored_through(event_log, store_writer, ack["seq"])
    assert [(row.seq, row.id, row.type, row.subject) for row in rows] == [
        (ack["seq"], document["id"], "WorkflowSubmitted", SUBJECT)]
    event = events.decode(rows[0].data)
    assert isinstance(event, events.WorkflowSubmitted)
    assert event.workflow_id == WORKFLOW_ID
    assert event.tasks == [
        events.TaskSpec(id="fetch", type="echo"),
        events.TaskSpec(id="summarize", type="noop", dependencies=["fetch"]),
    ]
    assert event.ts.tzinfo is not None
    assert event.ts.utcoffset() == timedelta(0)
    assert events.subject_of(event) == SUBJECT
    assert store_writer.writer.rejected == 0
    assert not [row for row in rows if row.type == "MessageRejected"]
    assert (await store.verify(event_log)).ok


async def test_a_foreign_client_resending_the_same_event_id_is_stored_once(
    nats_server: bus.EmbeddedServer, event_log: store.SqliteEventLog, store_writer: RunningWriter,
    schema_file: Path,
) -> None:
    run = await run_foreign_client(nats_server, schema_file, "--copies", "2")

    assert run.returncode == 0, run.stderr
    first, second = run.report["acks"]
    assert second == {**first, "duplicate": True}
    rows = await stored_through(event_log, store_writer, first["seq"])
    assert [row.id for row in rows] == [run.report["event"]["id"]]
    assert (await store.verify(event_log)).ok


async def test_a_foreign_submission_that_breaks_the_schema_is_rejected_with_a_readable_reason(
    nats_server: bus.EmbeddedServer, event_log: store.SqliteEventLog, store_writer: RunningWriter,
    schema_file: Path, schema: dict[str, Any],
) -> None:
    run = await run_foreign_client(nats_server, schema_file, "--drop-task-field", "type")

    # The stream takes any bytes; judging them is the store writer's job.
    assert run.returncode == 0, run.stderr
    document, [ack] = run.report["event"], run.report["acks"]
    assert violations(one_event(schema, "WorkflowSubmitted"), document) == [
        (["tasks", 0], "'type' is a required property"),
        (["tasks", 1], "'type' is a required property"),
    ]

    # The bad message is not stored; the rejection that describes it is, right after it.
    rows = await stored_through(event_log, store_writer, ack["seq"] + 1)
    assert [row.type for row in rows] == ["MessageRejected"]
    rejection = events.decode(rows[0].data)
    assert isinstance(rejection, events.MessageRejected)
    assert rejection.reason == "not a valid event: Object missing required field `type` - at `$.tasks[0]`"
    assert rejection.subject == SUBJECT
    assert rejection.stream_seq == ack["seq"]
    assert rejection.excerpt == events.excerpt(json.dumps(document, separators=(",", ":")).encode())
    assert store_writer.writer.rejected == 1
    assert (await store.verify(event_log)).ok


def test_the_foreign_client_refuses_a_schema_that_requires_a_field_it_cannot_fill(
    tmp_path: Path, schema: dict[str, Any],
) -> None:
    schema["$defs"]["WorkflowSubmitted"]["required"].append("principal")
    changed = tmp_path / "changed.schema.json"
    changed.write_text(json.dumps(schema))

    result = subprocess.run(
        [sys.executable, "-I", "-S", str(FOREIGN_CLIENT), "nats://127.0.0.1:1", str(changed), WORKFLOW_ID,
         "--task", "fetch:echo"],
        capture_output=True, text=True, timeout=30,
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "foreign-client: WorkflowSubmitted requires principal, which this client cannot fill\n")
