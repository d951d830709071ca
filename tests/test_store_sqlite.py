"""The SQLite event log beyond the shared contract (tests/test_store_contract.py): what only a
file has (locks, read-only readers, columns an attacker can edit in place)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import events
import store
from store import SqliteEventLog, StoreError, StoreLocked, completed

from .test_store_contract import row


async def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db"):
        with pytest.raises(StoreLocked) as info:
            async with SqliteEventLog(tmp_path / "events.db"):
                pass
    assert str(info.value) == f"event log {tmp_path / 'events.db'} is held by another store writer"


async def test_readers_open_while_the_writer_appends(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as writer:
        await writer.append([row(1)])
        async with SqliteEventLog(tmp_path / "events.db", readonly=True) as reader:
            assert [r.seq async for r in reader.read()] == [1]
            await writer.append([row(2)])
            assert [r.seq async for r in reader.read()] == [1, 2]


async def test_reading_a_log_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        async with SqliteEventLog(tmp_path / "missing.db", readonly=True):
            pass
    assert str(info.value) == f"no event log at {tmp_path / 'missing.db'}"


async def test_audit_names_a_column_that_disagrees_with_the_event(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        first = row(1)
        await log.append([first, row(2)])
        await log.db.execute("UPDATE events SET workflow_id = 'other' WHERE seq = 1")
        await log.db.commit()
        report = await store.verify(log)
    assert str(report.broken) == f"seq 1 (event {first.id}): column workflow_id is 'other' but the event says 'wf'"


@pytest.mark.parametrize(("column", "value", "shown"), [
    ("type", "'TaskSucceeded'", "'TaskSucceeded' but the event says 'TaskStarted'"),
    ("subject", "'ymera.task.wf.u.started'", "'ymera.task.wf.u.started' but the event says 'ymera.task.wf.t.started'"),
    ("ts", "0.0", "0.0 but the event says {ts!r}"),
])
async def test_audit_names_each_derived_column_that_disagrees_with_the_event(
        tmp_path: Path, column: str, value: str, shown: str) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        first = row(1)
        await log.append([first, row(2)])
        await log.db.execute(f"UPDATE events SET {column} = {value} WHERE seq = 1")
        await log.db.commit()
        report = await store.verify(log)
    assert str(report.broken) == f"seq 1 (event {first.id}): column {column} is " + shown.format(ts=first.ts)


async def test_audit_names_a_blob_missing_from_the_log(tmp_path: Path) -> None:
    content = b'"a large output"'
    ref = events.BlobRef(hashlib.sha256(content).hexdigest(), len(content))
    event = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", task_id="t", attempt=1,
                                 blobs={"output": ref})
    stored = store.NewEvent(2, event.id, "TaskSucceeded", events.subject_of(event), "wf", event.ts.timestamp(),
                            events.encode(event))
    async with SqliteEventLog(tmp_path / "events.db") as log:
        await log.append([row(1), stored, row(3)])
        report = await store.verify(log)
        await log.append([row(4)], blobs={ref.digest: content})
        repaired = await store.verify(log)
    assert (report.rows, report.blobs, str(report.broken)) == (
        1, 0, f"seq 2 (event {event.id}): blob {ref.digest} (field output) is missing from the store")
    assert (repaired.ok, repaired.rows, repaired.blobs) == (True, 4, 1)


async def test_audit_reads_what_the_columns_and_blobs_derive_from_not_the_whole_schema(tmp_path: Path) -> None:
    # The store writer validates every event before storing it and the chain proves the
    # bytes are those it stored, so the audit reads only the fields it checks the row
    # against: a chained row missing the rest of its event passes (the writer never stores one).
    ts = events.now()
    data = b'{"type":"TaskStarted","id":"partial","ts":"%s","workflow_id":"wf","task_id":"t"}' % ts.isoformat().encode()
    partial = store.NewEvent(2, "partial", "TaskStarted", "ymera.task.wf.t.started", "wf", ts.timestamp(), data)
    async with SqliteEventLog(tmp_path / "events.db") as log:
        await log.append([row(1), partial, row(3)])  # the log chains whatever it is given
        report = await store.verify(log)
    with pytest.raises(events.MalformedEvent):
        events.decode(data)
    assert (report.ok, report.rows) == (True, 3)


async def test_audit_names_a_row_whose_prev_hash_was_rewritten(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        second = row(2)
        await log.append([row(1), second, row(3)])
        await log.db.execute("UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 2")
        await log.db.commit()
        report = await store.verify(log)
    assert (report.rows, str(report.broken)) == (
        1, f"seq 2 (event {second.id}): prev_hash does not match the previous row's hash")


async def test_audit_names_a_chained_row_whose_data_is_not_an_event(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        good = row(1)
        bad = store.NewEvent(2, "not-an-event", "TaskStarted", "ymera.task.wf.t.started", "wf", good.ts,
                             b'{"type": "TaskStarted"}')
        await log.append([good, bad, row(3)])  # the log chains whatever it is given
        report = await store.verify(log)
    assert (report.rows, str(report.broken)) == (
        1, "seq 2 (event not-an-event): stored data is not an event: not a valid event: "
           "Object missing required field `id`")


async def test_chunks_and_scans_hold_the_rows_read_gives(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        await log.append([row(seq, workflow_id="a" if seq % 2 else "b") for seq in range(1, 8)])
        rows = [r async for r in log.read(2)]
        chunks = [chunk async for chunk in log.read_chunks(2, batch=3)]
        scanned = [chunk async for chunk in log.scan("seq, data", 0, workflow_id="b", batch=2)]
        with pytest.raises(StoreError) as info:
            [chunk async for chunk in log.scan("seq, password")]
    assert [len(c) for c in chunks] == [3, 3]
    assert [r for c in chunks for r in c] == rows
    assert scanned == [[(2, rows[0].data), (4, rows[2].data)], [(6, rows[4].data)]]
    assert str(info.value) == "no such columns in the log: seq, password"


def test_a_coroutine_that_suspends_cannot_be_completed_in_a_reader_thread() -> None:
    async def ready() -> int:
        return 7

    async def suspends() -> int:
        await asyncio.sleep(0)
        return 7

    assert completed(ready()) == 7
    with pytest.raises(RuntimeError, match="the coroutine suspended; only one that never does can be completed"):
        completed(suspends())
