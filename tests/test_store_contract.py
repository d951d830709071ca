"""The event log's contract, written once against `store.EventLog` and run on every backend.

`BACKENDS` names each log implementation and how a test opens a fresh one; the PostgreSQL
log joins it with one entry and passes these tests unchanged. Nothing here knows a backend:
errors are matched by type, and the only texts asserted are Ymera's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import events
import store
from store import GENESIS, DuplicateEvent, EventLog, NewEvent, StoreError, link

BACKENDS: dict[str, Callable[[Path], EventLog]] = {
    "sqlite": lambda tmp: store.SqliteEventLog(tmp / "events.db"),
}


def row(seq: int, workflow_id: str = "wf", event_id: str | None = None) -> NewEvent:
    event = events.TaskStarted(id=event_id or events.new_id(), ts=events.now(), workflow_id=workflow_id,
                               task_id="t", attempt=1, executor="ex")
    return NewEvent(seq, event.id, "TaskStarted", events.subject_of(event), workflow_id, event.ts.timestamp(),
                    events.encode(event))


@pytest.fixture(params=list(BACKENDS))
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    async with BACKENDS[request.param](tmp_path) as opened:
        yield opened


async def test_a_new_log_is_empty_at_genesis(log: EventLog) -> None:
    assert (log.head_seq, log.head_hash, await log.count()) == (0, GENESIS, 0)
    assert [r async for r in log.read()] == []


async def test_appended_rows_form_a_hash_chain(log: EventLog) -> None:
    new = [row(1), row(2), row(5)]
    await log.append(new)
    stored = [r async for r in log.read()]
    assert [r.seq for r in stored] == [1, 2, 5]
    prev = GENESIS
    for r, n in zip(stored, new, strict=True):
        assert (r.id, r.data, r.prev_hash) == (n.id, n.data, prev)
        assert r.hash == link(prev, n.seq, n.id, n.data)
        prev = r.hash
    assert (log.head_seq, log.head_hash) == (5, prev)


async def test_read_starts_at_a_seq_and_filters_by_workflow(log: EventLog) -> None:
    await log.append([row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b")])
    assert [r.seq async for r in log.read(3)] == [3, 4]
    assert [r.seq async for r in log.read(0, workflow_id="b")] == [2, 4]
    assert [r.seq async for r in log.read(3, workflow_id="a")] == [3]


async def test_an_event_id_is_stored_once(log: EventLog) -> None:
    await log.append([row(1, event_id="same")])
    with pytest.raises(DuplicateEvent):
        await log.append([row(2, event_id="same")])
    assert (log.head_seq, await log.count()) == (1, 1)
    assert await log.known_ids(["same", "other"]) == {"same"}


async def test_a_failed_append_stores_nothing_of_its_batch(log: EventLog) -> None:
    await log.append([row(1, event_id="dup")])
    with pytest.raises(StoreError):
        await log.append([row(2), row(3, event_id="dup")])
    assert [r.seq async for r in log.read()] == [1]
    await log.append([row(2)])
    assert [r.seq async for r in log.read()] == [1, 2]


async def test_rows_must_come_after_the_head(log: EventLog) -> None:
    await log.append([row(3)])
    with pytest.raises(StoreError) as info:
        await log.append([row(3)])
    assert str(info.value) == "seq 3 is not after the log's head 3"


async def test_blobs_are_stored_with_their_events(log: EventLog) -> None:
    await log.append([row(1)], {"d" * 64: b"payload"})
    assert await log.blob("d" * 64) == b"payload"
    assert await log.blob("e" * 64) is None
    assert await log.known_blobs(["d" * 64, "e" * 64]) == {"d" * 64}


async def test_the_head_survives_reopening(log: EventLog) -> None:
    await log.append([row(1), row(2)])
    head = (log.head_seq, log.head_hash)
    await log.close()
    await log.open()
    assert (log.head_seq, log.head_hash) == head


async def test_a_reader_reads_the_head_a_writer_moved(log: EventLog, tmp_path: Path) -> None:
    reader = store.SqliteEventLog(log.path, readonly=True)
    async with reader:
        assert await reader.head() == (0, GENESIS)
        await log.append([row(1), row(2)])
        assert reader.head_seq == 0  # where it stood when it opened
        assert await reader.head() == (2, log.head_hash) == await log.head()
