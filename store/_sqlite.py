"""The event log in one SQLite file (aiosqlite, WAL): append in order, read in order.

Idempotency is a unique key, not a lock: `seq` is the primary key and `id` is unique, so
a second copy of an event can never be stored. A writer still takes an OS lock on the file
so two writers cannot interleave their hash chains. This is the boundary where sqlite3's
errors become `StoreError`s: a file that is not a database, or has lost its tables, is one
line for the user, and its connection is closed (an open one would keep the process alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
import msgspec

from events import BlobError, BlobRef

from ._chain import GENESIS, NewEvent, StoredEvent, link
from ._errors import DuplicateEvent, StoreError, StoreLocked
from ._log import EventLog, LogReader

__all__ = ["SqliteEventLog", "SqliteLogReader"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    workflow_id TEXT    NOT NULL,
    ts          REAL    NOT NULL,
    data        BLOB    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    seal        TEXT
);
CREATE INDEX IF NOT EXISTS events_by_workflow ON events (workflow_id, seq);
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT    PRIMARY KEY,
    size   INTEGER NOT NULL,
    data   BLOB    NOT NULL
);
"""
_COLUMNS = "seq, id, type, subject, workflow_id, ts, data, prev_hash, hash, seal"
_COLUMN_NAMES = frozenset(_COLUMNS.replace(" ", "").split(","))


class SqliteLogReader:
    """`LogReader` on a connection of its own (`SqliteEventLog.in_thread`): rows come straight
    off it, with no hop between threads per chunk and no step of an async generator per chunk."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    def scan(self, columns: str, from_seq: int = 0, *, batch: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        """`SqliteEventLog.scan`, synchronously."""
        cur = self._db.execute(f"SELECT {_checked(columns)} FROM events WHERE seq >= ? ORDER BY seq", (from_seq,))
        while rows := cur.fetchmany(batch):
            yield rows

    def blob(self, digest: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    async def get_blob(self, ref: BlobRef) -> bytes:
        """`SqliteEventLog.get_blob`, for `events.resolve`; it never suspends, so a resolve
        with it runs to completion at once (`store.completed`)."""
        data = self.blob(ref.digest)
        if data is None:
            raise BlobError(ref.digest, f"not in the event log {self.path}")
        return data


def _checked(columns: str) -> str:
    if not set(columns.replace(" ", "").split(",")) <= _COLUMN_NAMES:
        raise StoreError(f"no such columns in the log: {columns}")
    return columns


class SqliteEventLog:
    """Open with `async with SqliteEventLog(path) as log`; `readonly=True` for readers."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._db: aiosqlite.Connection | None = None
        self._lock_fd: int | None = None
        self.head_seq = 0
        self.head_hash = GENESIS

    async def __aenter__(self) -> SqliteEventLog:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        if self._db is not None:
            raise StoreError(f"event log {self.path} is already open")
        if self.readonly and not self.path.exists():
            raise StoreError(f"no event log at {self.path}")
        try:
            with self._translated("open"):
                await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        if self.readonly:
            self._db = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a crash of the process loses nothing committed; a power loss may lose
            # the last transactions, which the writer then reads again from the stream.
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.executescript(_SCHEMA)
            async with self._db.execute("SELECT name FROM pragma_table_info('events')") as cur:
                columns = [row[0] for row in await cur.fetchall()]
            if "seal" not in columns:  # a log made before events were signed
                await self._db.execute("ALTER TABLE events ADD COLUMN seal TEXT")
            await self._db.commit()
        async with self._db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        if row is not None:
            self.head_seq, self.head_hash = row[0], row[1]

    @contextlib.contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot {doing} the event log {self.path}: {exc}") from None

    def _take_lock(self) -> None:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(self.path) from None
        self._lock_fd = fd

    async def close(self) -> None:
        """Close the file and release the writer lock. Safe to call twice."""
        db, self._db = self._db, None
        if db is not None:
            await db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"event log {self.path} is not open")
        return self._db

    async def known_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._translated("read"):
                async with self.db.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk) as cur:
                    found.update(row[0] for row in await cur.fetchall())
        return found

    async def known_blobs(self, digests: Iterable[str]) -> set[str]:
        wanted = list(digests)
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        with self._translated("read"):
            async with self.db.execute(f"SELECT digest FROM blobs WHERE digest IN ({marks})", wanted) as cur:
                return {row[0] for row in await cur.fetchall()}

    async def append(self, new: Sequence[NewEvent], blobs: Mapping[str, bytes] | None = None) -> None:
        """Append events (in ascending seq, after the head) and blobs in one transaction."""
        rows = []
        prev, head = self.head_hash, self.head_seq
        for e in new:
            if e.seq <= head:
                raise StoreError(f"seq {e.seq} is not after the log's head {head}")
            h = link(prev, e.seq, e.id, e.data)
            rows.append((e.seq, e.id, e.type, e.subject, e.workflow_id, e.ts, e.data, prev, h, e.seal))
            prev, head = h, e.seq
        try:
            await self.db.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            if blobs:
                await self.db.executemany(
                    "INSERT OR IGNORE INTO blobs (digest, size, data) VALUES (?,?,?)",
                    [(d, len(b), b) for d, b in blobs.items()])
            await self.db.commit()
        except sqlite3.Error as exc:
            await self.db.rollback()
            error = DuplicateEvent if "UNIQUE constraint failed: events.id" in str(exc) else StoreError
            raise error(f"append to {self.path} failed: {exc}") from exc
        self.head_hash, self.head_seq = prev, head

    async def read(self, from_seq: int = 0, *, workflow_id: str | None = None,
                   batch: int = 5000) -> AsyncGenerator[StoredEvent, None]:
        """Rows with seq >= from_seq, in seq order; a snapshot of the log as it is now.

        Leaving the loop early? Close the generator (`contextlib.aclosing`) before the log.
        A reader of many rows should take them in chunks (`read_chunks`): a step of an async
        generator per row costs as much as reading the row.
        """
        async for chunk in self.read_chunks(from_seq, workflow_id=workflow_id, batch=batch):
            for row in chunk:
                yield row

    async def read_chunks(self, from_seq: int = 0, *, workflow_id: str | None = None,
                          batch: int = 5000) -> AsyncGenerator[list[StoredEvent], None]:
        """`read`'s rows, up to `batch` at a time, made `StoredEvent`s in one msgspec call."""
        async for rows in self.scan(_COLUMNS, from_seq, workflow_id=workflow_id, batch=batch):
            yield msgspec.convert(rows, list[StoredEvent])

    async def scan(self, columns: str, from_seq: int = 0, *, workflow_id: str | None = None,
                   batch: int = 5000, types: Collection[str] = ()) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Tuples of `columns` (of `seq, id, type, subject, workflow_id, ts, data, prev_hash,
        hash`) for the rows with seq >= from_seq in seq order, up to `batch` per list: one
        call into aiosqlite's thread per chunk, since its cost is per call, not per row.
        `types`: only rows of these event types (every row is still read, but in SQLite, so a
        pass over a few types of a long log moves only their rows into Python)."""
        columns = _checked(columns)
        args: tuple[object, ...]
        if workflow_id is None:
            sql, args = f"SELECT {columns} FROM events WHERE seq >= ?", (from_seq,)
        else:
            sql = f"SELECT {columns} FROM events WHERE workflow_id = ? AND seq >= ?"
            args = (workflow_id, from_seq)
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += tuple(types)
        sql += " ORDER BY seq"
        with self._translated("read"):
            async with self.db.execute(sql, args) as cur:
                while rows := await cur.fetchmany(batch):
                    yield rows  # type: ignore[misc]

    async def in_thread(self, fn: Callable[[LogReader], T]) -> T:
        """Run `fn` in a worker thread on a read-only connection of its own, and return what it
        returns. The log as of that connection's first read: rows appended meanwhile may or
        may not be seen, as with `scan`."""
        self.db  # noqa: B018 (refuses a log that is not open)

        def run() -> T:
            with self._translated("read"):
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
                try:
                    return fn(SqliteLogReader(db, self.path))
                finally:
                    db.close()

        return await asyncio.to_thread(run)

    async def blob(self, digest: str) -> bytes | None:
        with self._translated("read"):
            async with self.db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)) as cur:
                row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def get_blob(self, ref: BlobRef) -> bytes:
        """The blob's bytes, for `events.resolve`; `BlobError` when the log has no copy."""
        data = await self.blob(ref.digest)
        if data is None:
            raise BlobError(ref.digest, f"not in the event log {self.path}")
        return data

    async def head(self) -> tuple[int, bytes]:
        with self._translated("read"):
            async with self.db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1") as cur:
                row = await cur.fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))

    async def count(self) -> int:
        with self._translated("read"):
            async with self.db.execute("SELECT count(*) FROM events") as cur:
                row = await cur.fetchone()
        return int(row[0]) if row else 0


_conforms: type[EventLog] = SqliteEventLog  # mypy checks that the SQLite log is an `EventLog`
