"""Projections: pure folds `(state, event) -> state` over the log, rebuilt or live.

A projection is deterministic: no I/O, no clock, nothing but the state and the event.
`apply` may update the state in place and return it, which keeps large folds linear.
Events reach it with their blobs resolved (from the log's copies, or the bucket when live),
except the fields it names in an optional `by_reference` set (`"TaskSucceeded.output"`).
`rebuild` folds the stored log from seq 0; `LiveProjection` folds the bus as events
arrive. Both fold through the same gate (`Once`, store/_once.py: each event id once, events
of a run only while it is active), so copies the stream holds and the log dropped change
nothing, and they reach the same state (tests/test_projection.py checks it with hypothesis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Generic, Protocol, TypeVar

from bus import Bus, Delivery, stream_seq
from events import BlobError, Event, MalformedEvent, decode, resolve

from ._log import EventLog, LogReader, completed
from ._once import Once

__all__ = ["LiveProjection", "Projection", "rebuild"]

S = TypeVar("S")


class Projection(Protocol[S]):
    name: str

    def initial(self) -> S: ...

    def apply(self, state: S, event: Event) -> S: ...


async def rebuild(projection: Projection[S], log: EventLog, from_seq: int = 0) -> tuple[S, int]:
    """Fold the stored log; return the state and the last seq folded. The fold runs in a thread
    of its own, on a view of the log of its own (`EventLog.in_thread`): a projection is pure."""
    return await log.in_thread(lambda reader: _fold(projection, reader, from_seq))


def _fold(projection: Projection[S], log: LogReader, from_seq: int) -> tuple[S, int]:
    state, last, once = projection.initial(), 0, Once()
    keep, apply, admit = by_reference(projection), projection.apply, once.admit
    for rows in log.scan("seq, data", from_seq):
        for _, data in rows:
            event = decode(data)
            if not admit(event):
                continue
            if event.blobs:
                event = completed(resolve(event, log.get_blob, keep))
            state = apply(state, event)
        last = rows[-1][0]
    return state, last


def by_reference(projection: Projection[S]) -> Collection[str]:
    """The blob-held fields a projection reads no value of (none, unless it says so)."""
    keep: Collection[str] = getattr(projection, "by_reference", frozenset())
    return keep


# How long a follower waits for the next message before checking whether it should stop.
POLL_SECONDS = 0.1


class LiveProjection(Generic[S]):
    """Follows the stream from `start_seq`, folding each valid event once, in stream order."""

    def __init__(self, projection: Projection[S], bus: Bus, start_seq: int = 1) -> None:
        self.projection = projection
        self.bus = bus
        self.start_seq = start_seq
        self.state: S = projection.initial()
        self.last_seq = start_seq - 1
        self.once = Once()
        self._progress = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.bus.follow(self.start_seq)
        try:
            while not stop.is_set():
                msg = await sub.next(timeout=POLL_SECONDS)
                if msg is not None:
                    await self._fold(msg)
        finally:
            await sub.stop()

    async def _fold(self, msg: Delivery) -> None:
        seq = stream_seq(msg)
        try:
            event = await self.bus.read(msg, by_reference(self.projection))
        except (MalformedEvent, BlobError):
            event = None  # the store writer records it as MessageRejected
        if event is not None and self.once.admit(event):
            self.state = self.projection.apply(self.state, event)
        async with self._progress:
            self.last_seq = seq
            self._progress.notify_all()

    async def wait_for(self, seq: int, timeout: float = 10.0) -> None:
        """Wait until every message up to `seq` has been folded."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.last_seq >= seq), timeout)
