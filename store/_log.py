"""What an event log is, whatever holds it: the interface the store writer, the audit, replay
and the projections use. `SqliteEventLog` (store/_sqlite.py) is the default backend; a
PostgreSQL log is another class with these methods, and passes the same contract suite
(tests/store_contract.py) unchanged.

Errors are `StoreError`s (`DuplicateEvent` for an id stored already), their text the
backend's: callers match on the type, never on the words.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection, Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from events import BlobRef

from ._chain import NewEvent, StoredEvent

__all__ = ["EventLog", "LogReader", "completed"]

T = TypeVar("T")


class LogReader(Protocol):
    """A synchronous, read-only view of the log, for a long CPU-bound pass run in a thread of
    its own (`EventLog.in_thread`)."""

    def scan(self, columns: str, from_seq: int = 0, *, batch: int = 5000) -> Iterator[list[tuple[Any, ...]]]: ...

    def blob(self, digest: str) -> bytes | None: ...

    async def get_blob(self, ref: BlobRef) -> bytes:
        """For `events.resolve`; never suspends (`store.completed` runs a resolve with it)."""
        ...


class EventLog(Protocol):
    """An append-only, hash-chained log of events in stream order (docs/store.md)."""

    path: Path  # where it is, as a user reads it in a message
    head_seq: int  # the last seq appended, 0 for an empty log
    head_hash: bytes  # its hash, `GENESIS` for an empty log

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    async def append(self, new: Sequence[NewEvent], blobs: Mapping[str, bytes] | None = None) -> None:
        """Append events (ascending seqs after the head) and blobs in one transaction, chaining
        each row to the one before; all or nothing. `DuplicateEvent` for an id stored already."""
        ...

    async def known_ids(self, ids: Iterable[str]) -> set[str]: ...

    async def known_blobs(self, digests: Iterable[str]) -> set[str]: ...

    def read(self, from_seq: int = 0, *, workflow_id: str | None = None,
             batch: int = 5000) -> AsyncGenerator[StoredEvent, None]: ...

    def read_chunks(self, from_seq: int = 0, *, workflow_id: str | None = None,
                    batch: int = 5000) -> AsyncGenerator[list[StoredEvent], None]: ...

    def scan(self, columns: str, from_seq: int = 0, *, workflow_id: str | None = None,
             batch: int = 5000, types: Collection[str] = ()) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Tuples of `columns` in seq order; `types`: only rows of these event types."""
        ...

    async def in_thread(self, fn: Callable[[LogReader], T]) -> T:
        """Run `fn` on a read-only view of its own, in a worker thread; return its result."""
        ...

    async def blob(self, digest: str) -> bytes | None: ...

    async def get_blob(self, ref: BlobRef) -> bytes: ...

    async def count(self) -> int: ...

    async def head(self) -> tuple[int, bytes]:
        """The last row's seq and hash as the log holds them now ((0, GENESIS) when empty): a
        reader's `head_seq` is where the log stood when it opened, and a writer elsewhere goes on."""
        ...


def completed(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (one awaiting only `LogReader.get_blob`),
    run to its end here: how a reader in a thread uses the one async `events.resolve`."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the coroutine suspended; only one that never does can be completed")
