"""`ymera audit verify`: recompute the hash chain and check every row and blob against it.

The chain covers each row's bytes; the other columns (type, subject, workflow, ts) are
checked against the decoded bytes, and each blob against the digest its event carries, so
a change anywhere in the file is found and named by the first seq it breaks.
"""

from __future__ import annotations

import contextlib
import hashlib

import msgspec

from events import MalformedEvent, decode, subject_of

from ._chain import GENESIS, StoredEvent, link
from ._sqlite import SqliteEventLog

__all__ = ["AuditReport", "Break", "verify"]


class Break(msgspec.Struct, frozen=True):
    seq: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        return f"seq {self.seq} (event {self.event_id}): {self.reason}"


class AuditReport(msgspec.Struct, frozen=True):
    rows: int
    blobs: int
    head_seq: int
    head_hash: str
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def check_row(row: StoredEvent, prev_hash: bytes) -> str | None:
    """Why this row breaks the chain, or None."""
    if row.prev_hash != prev_hash:
        return "prev_hash does not match the previous row's hash"
    if link(prev_hash, row.seq, row.id, row.data) != row.hash:
        return "hash does not match the row's content"
    try:
        event = decode(row.data)
    except MalformedEvent as exc:
        return f"stored data is not an event: {exc.reason}"
    expected = (event.id, type(event).__name__, subject_of(event), event.workflow_id, event.ts.timestamp())
    actual = (row.id, row.type, row.subject, row.workflow_id, row.ts)
    if expected == actual:  # the common case, compared once
        return None
    for column, want, got in zip(_COLUMNS, expected, actual, strict=True):
        if want != got:
            return f"column {column} is {got!r} but the event says {want!r}"
    return None


_COLUMNS = ("id", "type", "subject", "workflow_id", "ts")


async def verify(log: SqliteEventLog, *, batch: int = 5000) -> AuditReport:
    prev, rows, last_seq = GENESIS, 0, 0
    checked_blobs: set[str] = set()
    sha256 = hashlib.sha256
    async with contextlib.aclosing(log.scan(_ALL, batch=batch)) as chunks:
        async for chunk in chunks:
            for row in chunk:
                # The common case inline (a call per row costs as much as a check): a whole
                # row whose event carries no blob. Anything else goes the long way round.
                seq, event_id, kind, subject, workflow_id, ts, data, prev_hash, row_hash = row
                if prev_hash == prev:
                    h = sha256(prev)
                    h.update(seq.to_bytes(8, "big"))
                    h.update(event_id.encode())
                    h.update(data)
                    if h.digest() == row_hash:
                        try:
                            event = decode(data)
                        except MalformedEvent:
                            event = None
                        if (event is not None and not event.blobs
                                and (event.id, type(event).__name__, subject_of(event), event.workflow_id,
                                     event.ts.timestamp()) == (event_id, kind, subject, workflow_id, ts)):
                            prev, rows, last_seq = row_hash, rows + 1, seq
                            continue
                stored = StoredEvent(*row)
                reason = check_row(stored, prev)
                if reason is None and b'"blobs"' in data:
                    reason = await _check_blobs(log, stored, checked_blobs)
                if reason is not None:
                    broken = Break(seq, event_id, reason)
                    return AuditReport(rows, len(checked_blobs), last_seq, prev.hex(), broken)
                prev, rows, last_seq = row_hash, rows + 1, seq
    return AuditReport(rows, len(checked_blobs), last_seq, prev.hex())


_ALL = ", ".join(StoredEvent.__struct_fields__)


async def _check_blobs(log: SqliteEventLog, row: StoredEvent, checked: set[str]) -> str | None:
    for name, ref in decode(row.data).blobs.items():
        if ref.digest in checked:
            continue
        data = await log.blob(ref.digest)
        if data is None:
            return f"blob {ref.digest} (field {name}) is missing from the store"
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.digest:
            return f"blob {ref.digest} (field {name}) does not match its digest"
        checked.add(ref.digest)
    return None
