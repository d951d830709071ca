"""The live feed: each event the view folds, fanned out to every open Server-Sent Events client.

One follower of the stream per process (the view's) feeds a `Hub`: a ring of the latest entries
that every client of all events reads through a cursor of its own, and a bounded buffer for
each client of one workflow. A client too slow to keep up is not allowed to hold the others or
the view back: its oldest entries are lost and its next write says how many (`lagged`), so the
page knows to reload what it shows.

`GET /api/live` (`live_routes`) serves a listener as Server-Sent Events: each event as
`id: <seq>`, `event: <type>`, `data: <the event as JSON>`; `event: lagged` with
`{"dropped": N}` before the first entry after a drop; a comment line every
`KEEPALIVE_SECONDS` while nothing happens, so proxies keep the connection open. Each event is
encoded once, however many clients read it, and a client gets what arrived since its last
write in one write, at most one every `LINGER_SECONDS` (0.1 s), rather than one per event.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import msgspec
from litestar import get
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

import events
from events import Event

__all__ = ["BATCH", "KEEPALIVE_SECONDS", "LINGER_SECONDS", "QUEUE_SIZE", "Entry", "Hub", "Listener", "live_routes"]

# Entries a client may fall behind by before the oldest are dropped.
QUEUE_SIZE = 1000
# Seconds of silence after which a client gets a comment line (a keep-alive).
KEEPALIVE_SECONDS = 15.0
# Entries written to a client in one write, at most.
BATCH = 256
# How long a client's stream waits after a write before it writes again: what arrives meanwhile
# goes out in the next write. A busy engine emits thousands of events a second; written one by
# one to each of hundreds of clients, they would cost the server more than the engine's work.
LINGER_SECONDS = 0.1
# How long the browser waits before it reconnects after the connection drops (milliseconds).
RETRY_MS = 2000


class Entry(NamedTuple):
    """One event for the clients: its stream seq, the event, and its Server-Sent Events frame."""

    seq: int
    event: Event
    frame: bytes


def frame(seq: int, event: Event) -> bytes:
    return b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (seq, type(event).__name__.encode(),
                                                         msgspec.json.encode(event))


def lagged_frame(dropped: int) -> bytes:
    return b"event: lagged\r\ndata: %s\r\n\r\n" % msgspec.json.encode({"dropped": dropped})


class Listener:
    """One client's view of the hub, and how many entries it lost since it last read.

    A client of every event reads the hub's one ring of the latest `size` entries through a
    cursor of its own (nothing per event is done for it: 200 such clients at 3,000 events/s
    would otherwise be 600,000 appends a second); a client of one workflow gets that
    workflow's entries in a buffer of its own, at most `size`."""

    def __init__(self, hub: Hub, workflow_id: str | None, size: int) -> None:
        self.hub = hub
        self.workflow_id = workflow_id
        self.size = size
        self.buffer: deque[Entry] = deque()  # a client of one workflow: its entries
        self.cursor = hub.end  # a client of every event: the ring's index of the next entry to read
        self._dropped = 0
        self.closing = False  # the hub closed (the server is stopping): end once the rest is read
        self.closed = False  # ... and it has been
        self._wake = asyncio.Event()

    @property
    def dropped(self) -> int:
        """Entries lost since the client last read: the oldest, pushed out while it did not."""
        if self.workflow_id is None:
            return self._dropped + max(0, self.hub.start - self.cursor)
        return self._dropped

    def offer(self, entry: Entry) -> None:
        """An entry of this client's workflow."""
        buffer = self.buffer
        if len(buffer) >= self.size:
            buffer.popleft()
            self._dropped += 1
        buffer.append(entry)
        self._wake.set()

    def end(self) -> None:
        self.closing = True
        self._wake.set()

    def _waiting(self) -> int:
        if self.workflow_id is None:
            return self.hub.end - max(self.cursor, self.hub.start)
        return len(self.buffer)

    async def batch(self, timeout: float | None, limit: int = BATCH) -> tuple[list[Entry], int] | None:
        """The entries waiting (at most `limit`; at least one unless the hub closed: see `closed`)
        and how many were dropped before them; None if none came within `timeout` seconds."""
        if not self._waiting() and not self.closing:
            self._wake.clear()
            if self.workflow_id is None:
                self.hub.sleeping.add(self)
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return None
            finally:
                self.hub.sleeping.discard(self)
        dropped = self.dropped
        self._dropped = 0
        if self.workflow_id is None:
            first = max(self.cursor, self.hub.start)
            got = self.hub.entries(first, limit)
            self.cursor = first + len(got)
        else:
            buffer = self.buffer
            got = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        self.closed = self.closing and not self._waiting()
        return got, dropped

    async def entries(self) -> AsyncIterator[tuple[int, dict[str, Any], int]]:
        """Each entry `(seq, event as a dict, count dropped just before it (0 when none was))`,
        until the hub closes."""
        while not self.closed:
            got = await self.batch(None)
            assert got is not None  # no timeout
            for i, entry in enumerate(got[0]):
                yield entry.seq, msgspec.to_builtins(entry.event), got[1] if i == 0 else 0


class Hub:
    """Fans each folded event out to the listeners that want it; never waits on one."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.size = size
        self.listeners: set[Listener] = set()
        self.closed = False
        # The listeners by the workflow they follow (None: every one), so an event costs only its own.
        self._by_workflow: dict[str | None, set[Listener]] = {}
        # The latest entries, for the clients of every event; `end`: the index after the last.
        self.ring: deque[Entry] = deque(maxlen=size)
        self.end = 0
        self.sleeping: set[Listener] = set()  # clients of every event waiting for the next entry

    @property
    def start(self) -> int:
        """The index of the oldest entry the ring holds."""
        return self.end - len(self.ring)

    def entries(self, first: int, limit: int) -> list[Entry]:
        """At most `limit` entries of the ring from index `first` (not before `start`)."""
        offset = first - self.start
        return list(itertools.islice(self.ring, offset, offset + limit))

    def listen(self, workflow_id: str | None = None) -> Listener:
        listener = Listener(self, workflow_id, self.size)
        if self.closed:
            listener.end()
        else:
            self.listeners.add(listener)
            self._by_workflow.setdefault(workflow_id, set()).add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        self.sleeping.discard(listener)
        following = self._by_workflow.get(listener.workflow_id)
        if following is not None:
            following.discard(listener)
            if not following:
                del self._by_workflow[listener.workflow_id]

    def close(self) -> None:
        """End every client's stream once it has read what it holds (a server stopping: its
        open streams would otherwise hold the shutdown until they time out)."""
        self.closed = True
        for listener in self.listeners:
            listener.end()
        self.listeners.clear()
        self._by_workflow.clear()

    def publish(self, seq: int, event: Event) -> None:
        everyone = self._by_workflow.get(None)
        followers = self._by_workflow.get(event.workflow_id)
        if not everyone and not followers:
            return
        entry = Entry(seq, event, frame(seq, event))
        if everyone:
            self.ring.append(entry)
            self.end += 1
            if self.sleeping:
                for listener in self.sleeping:
                    listener._wake.set()
                self.sleeping.clear()
        for listener in followers or ():
            listener.offer(entry)


# ---- GET /api/live ------------------------------------------------------------------------------------------


@dataclass
class _Frames(ServerSentEventMessage):
    """Frames already encoded (`frame`, `lagged_frame`), written as they are."""

    frames: bytes = b""

    def encode(self) -> bytes:
        return self.frames


async def _stream(hub: Hub, listener: Listener, keepalive: float, linger: float
                  ) -> AsyncIterator[ServerSentEventMessage]:
    try:
        # At once, so the client knows it is connected (and how soon to come back if cut off).
        yield ServerSentEventMessage(data=None, comment="ymera live", retry=RETRY_MS)
        while True:
            got = await listener.batch(keepalive, listener.size)
            if got is None:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            entries, dropped = got
            head = [lagged_frame(dropped)] if dropped else []
            if entries or head:
                yield _Frames(data=None, frames=b"".join(head + [e.frame for e in entries]))
            if listener.closed:
                return
            await asyncio.sleep(linger)
    finally:
        hub.leave(listener)


_DESCRIPTION = """Every event the view folds from now on, as Server-Sent Events: `id: <stream seq>`,
`event: <event type>`, `data: <the event as JSON>` (docs/events.md). A client that falls more than
a thousand events behind loses the oldest and is told so first: `event: lagged`, `data: {"dropped": N}`;
it should reload what it shows. A comment line comes every 15 s while nothing happens. A browser's
EventSource cannot send headers: it passes its token as `?token=`."""


def live_routes(hub: Hub, keepalive: float = KEEPALIVE_SECONDS, linger: float = LINGER_SECONDS
                ) -> list[HTTPRouteHandler]:
    """`GET /api/live` over `hub`, optionally for one workflow (`?workflow_id=`)."""

    @get("/api/live", summary="Live events (Server-Sent Events)", description=_DESCRIPTION,
         media_type="text/event-stream", tags=["live"])
    async def live(workflow_id: Annotated[str | None, Parameter(description="only this workflow's events")] = None,
                   token: Annotated[str | None, Parameter(
                       description="the API token, for a client that cannot send `Authorization: Bearer` (a "
                                   "browser's EventSource); the app's guard reads it")] = None,
                   ) -> ServerSentEvent:
        if workflow_id is not None and workflow_id != "_":
            try:
                events.check_workflow_id(workflow_id)
            except events.InvalidId as e:
                raise ValidationException(detail=str(e)) from None
        listener = hub.listen(workflow_id)
        return ServerSentEvent(_stream(hub, listener, keepalive, linger),
                               background=BackgroundTask(hub.leave, listener))

    return [live]

