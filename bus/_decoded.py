"""Events decoded once for all the connections of one process.

With every actor in one process (`actors.run_all`, what `ymera.WorkflowOrchestrator` runs),
each actor reads the stream on a connection of its own, so one success is decoded by the store
writer, the distributor, the assessor and the monitor in turn. Decoding is a pure function of
a message's subject and bytes, and an event is a frozen Struct, so the connections opened from
one (`Bus.as_actor`) share the events they decoded: the first reader of a message decodes it,
the others find it here. Each connection still checks each message's signature itself. A
process running one actor (`ymera actor NAME`) opens no such connections and keeps no events.

What is kept is bounded twice: the last 4,096 events, holding at most 16 MiB of messages (an
event is about as large as its message), so large outputs cannot pile up.
"""

from __future__ import annotations

from events import Event, decode_message

__all__ = ["Decoded"]


class Decoded:
    """The last `most` events decoded, by (subject, bytes), their messages `most_bytes` at most:
    `decode` reads one."""

    def __init__(self, most: int = 4096, most_bytes: int = 16 * 1024 * 1024) -> None:
        self.most = most
        self.most_bytes = most_bytes
        self.held_bytes = 0
        self._events: dict[tuple[str, bytes], Event] = {}

    def decode(self, subject: str, data: bytes) -> Event:
        """`events.decode_message`, once for the same subject and bytes while they are here."""
        key = (subject, data)
        event = self._events.get(key)
        if event is None:
            event = decode_message(subject, data)  # MalformedEvent: nothing kept
            if len(data) <= self.most_bytes:
                while self._events and (len(self._events) >= self.most
                                        or self.held_bytes + len(data) > self.most_bytes):
                    oldest = next(iter(self._events))
                    del self._events[oldest]
                    self.held_bytes -= len(oldest[1])
                self._events[key] = event
                self.held_bytes += len(data)
        return event
