"""`ymera audit verify`: recompute the hash chain and check every row and blob against it.

The chain covers each row's bytes; the other columns (type, subject, workflow, ts) are
checked against the decoded bytes, and each blob against the digest its event carries, so
a change anywhere in the file is found and named by the first seq it breaks.

Each row's bytes are read only as far as those checks need (`_Header`: the fields the
columns and blobs derive from), not decoded as a whole event: the store writer validated
every event's schema before storing it and the chain proves the bytes are those it stored,
so a full decode would add no check and cost most of the audit. A row that fails this
fast check is checked again the long way (`check_row`: a full decode), which names the
break.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

import msgspec

from events import EVENT_TYPES, MAX_EVENT_BYTES, PREFIX, BlobRef, MalformedEvent, decode, subject_of

from ._chain import GENESIS, StoredEvent, link
from ._log import EventLog, LogReader

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


class _Header(msgspec.Struct, gc=False):
    """What the audit reads of an event: the fields its columns and blobs derive from
    (unknown fields are ignored, so the rest of the event costs only a skip)."""

    type: str
    id: str
    ts: datetime
    workflow_id: str
    task_id: str | None = None
    blobs: dict[str, BlobRef] = {}


_read_header = msgspec.json.Decoder(_Header).decode
# Event type → (subject up to the workflow id, subject's last token, whether the task id is
# part of the subject): `subject_of` for a header. Should they ever disagree, rows only take
# the long way round, through `subject_of` itself.
_SUBJECTS = {name: (f"{PREFIX}.{cls.domain}.", f".{cls.verb}", "task_id" in cls.__struct_fields__)
             for name, cls in EVENT_TYPES.items()}


async def verify(log: EventLog, *, batch: int = 5000) -> AuditReport:
    """Check the whole log; the report names the first seq that breaks, if one does. The pass
    runs in a thread of its own, on a view of the log of its own (`EventLog.in_thread`)."""
    return await log.in_thread(lambda reader: _verify(reader, batch))


def _verify(log: LogReader, batch: int) -> AuditReport:
    prev, rows, last_seq = GENESIS, 0, 0
    checked_blobs: set[str] = set()
    sha256, read_header, subjects = hashlib.sha256, _read_header, _SUBJECTS
    for chunk in log.scan(_ALL, batch=batch):
        for row in chunk:
            # The common case inline (a call per row costs as much as a check): a row whose
            # chain link, header and columns agree. Anything else goes the long way round,
            # which names what breaks.
            seq, event_id, kind, subject, workflow_id, ts, data, prev_hash, row_hash, _ = row
            # (`link`, inline: one call of sha256 over the joined bytes is the cheapest way.)
            if (prev_hash == prev and len(data) <= MAX_EVENT_BYTES
                    and sha256(prev + seq.to_bytes(8, "big") + event_id.encode() + data).digest() == row_hash):
                try:
                    e = read_header(data)
                except msgspec.DecodeError:
                    e = None
                if (e is not None and e.id == event_id and e.type == kind and e.workflow_id == workflow_id
                        and e.ts.timestamp() == ts and (shape := subjects.get(kind)) is not None):
                    head, verb, has_task = shape
                    derived: str | None
                    if not has_task:
                        derived = f"{head}{workflow_id}{verb}"
                    else:
                        derived = None if e.task_id is None else f"{head}{workflow_id}.{e.task_id}{verb}"
                    if subject == derived:
                        reason = _check_blobs(log, e.blobs, checked_blobs) if e.blobs else None
                        if reason is not None:
                            return AuditReport(rows, len(checked_blobs), last_seq, prev.hex(),
                                               Break(seq, event_id, reason))
                        prev, rows, last_seq = row_hash, rows + 1, seq
                        continue
            reason = check_row(StoredEvent(*row), prev)
            if reason is None and b'"blobs"' in data:
                reason = _check_blobs(log, decode(data).blobs, checked_blobs)
            if reason is not None:
                return AuditReport(rows, len(checked_blobs), last_seq, prev.hex(), Break(seq, event_id, reason))
            prev, rows, last_seq = row_hash, rows + 1, seq
    return AuditReport(rows, len(checked_blobs), last_seq, prev.hex())


_ALL = ", ".join(StoredEvent.__struct_fields__)


def _check_blobs(log: LogReader, blobs: Mapping[str, BlobRef], checked: set[str]) -> str | None:
    for name, ref in blobs.items():
        if ref.digest in checked:
            continue
        data = log.blob(ref.digest)
        if data is None:
            return f"blob {ref.digest} (field {name}) is missing from the store"
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.digest:
            return f"blob {ref.digest} (field {name}) does not match its digest"
        checked.add(ref.digest)
    return None
