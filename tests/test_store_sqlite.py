"""The SQLite event log: the shared contract, plus what only a file has (locks, read-only)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

import store
from store import SqliteEventLog, StoreError, StoreLocked

from .store_contract import EventLogContract, row


class TestSqliteEventLog(EventLogContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events.db"

    def open_log(self) -> AbstractAsyncContextManager[SqliteEventLog]:
        return SqliteEventLog(self.path)


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


async def test_audit_names_a_row_whose_prev_hash_was_rewritten(tmp_path: Path) -> None:
    async with SqliteEventLog(tmp_path / "events.db") as log:
        second = row(2)
        await log.append([row(1), second, row(3)])
        await log.db.execute("UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 2")
        await log.db.commit()
        report = await store.verify(log)
    assert (report.rows, str(report.broken)) == (
        1, f"seq 2 (event {second.id}): prev_hash does not match the previous row's hash")
