"""The store writer: the one process that appends the whole YMERA stream to the event log.

Listens to: every subject (`ymera.>`), through the durable consumer `store`, in stream order.
Emits: `MessageRejected` for a message that is not a valid event on its own subject; with a
signer, a `ChainCheckpoint` (the log's head seq and hash, signed) every `checkpoint_rows` rows
or `checkpoint_seconds` after a row, and when it stops: the stream keeps them apart from the
log file, so a log cut, emptied or rewritten no longer agrees with them (`store.verify`).
Decides: nothing about workflows. It resumes at the log's head + 1 (the consumer is
recreated there on start), appends each fetched batch in one transaction, copies the blobs
its events name into the log, and acks only after the commit. A second copy of an event
that slipped past the duplicate window is recognised by its id and not stored again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

import structlog

from bus import (
    Bus,
    ConsumerPolicy,
    Delivery,
    PullBatches,
    UntrustedEvent,
    ack,
    check_consumer,
    fit_consumer,
    run_worker,
    seal_of,
    stream_seq,
)
from events import (
    NO_WORKFLOW,
    BlobError,
    BlobRef,
    ChainCheckpoint,
    MalformedEvent,
    MessageRejected,
    checkpoint_bytes,
    derive_id,
    excerpt,
    now,
    workflow_of,
)

from ._chain import NewEvent
from ._errors import DuplicateEvent
from ._log import EventLog

__all__ = ["Signer", "StoreWriter"]

_log = structlog.get_logger("ymera.store")
# An idle writer re-polls this often; it bounds how long a stop request waits.
POLL_SECONDS = 0.1
# How long a small batch waits for more (`bus.PullBatches`): events that trickle in share a
# transaction, so the log is at most this much behind the stream while the writer spends a
# commit on several events, not on each (a chain's step: BENCHMARKS.md, "Throughput").
LINGER_SECONDS = 0.01


class Signer(Protocol):
    """Who vouches for the checkpoints (`guard.Identity`)."""

    key_id: str
    public_key: str

    def sign(self, data: bytes) -> str: ...


class StoreWriter:
    name = "store"

    def __init__(self, bus: Bus, log: EventLog, *, durable: str = "store",
                 batch: int = 1000, policy: ConsumerPolicy | None = None, signer: Signer | None = None,
                 checkpoint_rows: int = 1000, checkpoint_seconds: float = 10.0,
                 linger: float = LINGER_SECONDS) -> None:
        self.bus = bus
        self.log = log
        self.durable = durable
        self.batch = batch
        self.linger = linger
        # The writer resumes from its own head, not from redelivery, so acks only report
        # progress; a long ack_wait keeps a slow commit from causing needless redelivery.
        self.policy = policy or fit_consumer(ConsumerPolicy(ack_wait=60.0, max_deliver=2), bus.stream)
        check_consumer(durable, self.policy, bus.stream)
        # The last stream seq handled: stored, rejected, or dropped as a copy. The log's head
        # can be behind it when the newest messages left no row.
        self.position = log.head_seq
        self.stored = 0
        self.rejected = 0
        self.duplicates = 0
        self.signer = signer
        self.checkpoint_rows = checkpoint_rows
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoints = 0
        self._unvouched = 0  # rows stored since the last checkpoint (checkpoints themselves not counted)
        self._first_unvouched = 0.0  # time.monotonic() of the first of them

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Append until `stop` is set; then finish the batch in hand and return."""
        await run_worker(self, self.bus, stop, ready)

    # ---- on the runtime (`bus.run_worker`) --------------------------------------------------

    async def start(self, bus: Bus) -> PullBatches:
        batches = await bus.reader(self.durable, self.policy, start_seq=self.log.head_seq + 1, ack_all=True,
                                   batch=self.batch, poll=POLL_SECONDS, linger=self.linger)
        _log.info("store writer started", log=str(self.log.path), resume_at=self.log.head_seq + 1)
        return batches

    def room(self) -> None:
        return None

    async def handle(self, msgs: Sequence[Delivery]) -> None:
        await self.write(msgs)

    async def between(self) -> None:
        if self._unvouched and time.monotonic() - self._first_unvouched >= self.checkpoint_seconds:
            await self.checkpoint()

    async def finish(self, graceful: bool) -> None:
        # Every batch is committed and acked before the next is fetched; the head is vouched for.
        if graceful and self._unvouched:
            await self.checkpoint()

    async def checkpoint(self) -> ChainCheckpoint | None:
        """Publish a signed checkpoint of the log's head (None without a signer or a head)."""
        if self.signer is None or not self.log.head_seq:
            return None
        stream, seq, head = self.bus.stream.name, self.log.head_seq, self.log.head_hash.hex()
        event = ChainCheckpoint(
            id=derive_id(f"{stream}:{seq}", "checkpoint"), ts=now(), workflow_id=NO_WORKFLOW, actor=self.name,
            stream=stream, head_seq=seq, head_hash=head, key_id=self.signer.key_id,
            public_key=self.signer.public_key, signature=self.signer.sign(checkpoint_bytes(stream, seq, head)))
        await self.bus.publish(event)
        self.checkpoints += 1
        self._unvouched = 0
        return event

    async def write(self, msgs: Sequence[Delivery]) -> None:
        """Append one fetched batch and ack it."""
        new: list[NewEvent] = []
        blobs: dict[str, bytes] = {}
        rejections: list[MessageRejected] = []
        seen: set[str] = set()
        head = self.log.head_seq
        for msg in msgs:
            seq = stream_seq(msg)
            if seq <= head:
                continue  # redelivered after we stored it
            head = seq
            try:
                event = self.bus.decode_msg(msg)
                if event.blobs:
                    await self._fetch_blobs(event.blobs.values(), blobs)
            except (MalformedEvent, BlobError) as exc:
                rejections.append(self._rejection(msg, seq, str(exc),
                                                  "untrusted" if isinstance(exc, UntrustedEvent) else "malformed"))
                continue
            if event.id in seen:
                self.duplicates += 1
                continue
            seen.add(event.id)
            new.append(NewEvent(seq, event.id, type(event).__name__, msg.subject,
                                event.workflow_id, event.ts.timestamp(), msg.data, seal_of(msg.headers)))
        if rejections:
            await self.bus.publish_many(rejections)
            self.rejected += len(rejections)
            for r in rejections:
                _log.warning("message rejected", subject=r.subject, reason=r.reason, seq=r.stream_seq)
        if new or blobs:
            try:
                await self.log.append(new, blobs)
            except DuplicateEvent:
                # A copy that came past the duplicate window: rare, so looked up only now.
                known = await self.log.known_ids(seen)
                self.duplicates += len(known)
                new = [e for e in new if e.id not in known]
                await self.log.append(new, blobs)
            self.stored += len(new)
            vouched = sum(e.type != "ChainCheckpoint" for e in new)
            if vouched and self.signer is not None:
                if not self._unvouched:
                    self._first_unvouched = time.monotonic()
                self._unvouched += vouched
        if msgs:
            await ack(msgs[-1])
        self.position = max(self.position, head)
        if self._unvouched >= self.checkpoint_rows:
            await self.checkpoint()

    def _rejection(self, msg: Delivery, seq: int, reason: str,
                   kind: Literal["malformed", "untrusted"] = "malformed") -> MessageRejected:
        # Derived from the stream position, so re-reading the same bad message after a
        # crash re-emits the same rejection, which the duplicate window and the log drop.
        return MessageRejected(
            id=derive_id(f"{self.bus.stream.name}:{seq}", "rejected"), ts=now(),
            workflow_id=workflow_of(msg.subject), causation_id=None, actor=self.name,
            subject=msg.subject, reason=reason, excerpt=excerpt(msg.data),
            size=len(msg.data), stream_seq=seq, kind=kind,
        )

    async def _fetch_blobs(self, refs: Iterable[BlobRef], into: dict[str, bytes]) -> None:
        """Copy the blobs an event names from the bucket into `into`, unless the log has them."""
        wanted = [r for r in refs if r.digest not in into]
        have = await self.log.known_blobs(r.digest for r in wanted)
        for ref in wanted:
            if ref.digest not in have:
                into[ref.digest] = await self.bus.get_blob(ref)
