"""Events decoded once for all the connections of one process.

With every actor in one process (`actors.run_all`, what `ymera.WorkflowOrchestrator` runs),
each actor reads the stream on a connection of its own, so one success is decoded by the store
writer, the distributor, the assessor and the monitor in turn. Decoding is a pure function of
a message's subject and bytes, and an event is a frozen Struct, so the connections opened from
one (`Bus.as_actor`) share the events they decoded: the first reader of a message decodes it,
the others find it here. Each connection still checks each message's signature itself. A
process running one actor (`ymera actor NAME`) opens no such connections and keeps no events.
"""

from __future__ import annotations

from events import Event, decode_message

__all__ = ["Decoded"]


class Decoded:
    """The last `most` events decoded, by (subject, bytes): `decode` reads one."""

    def __init__(self, most: int = 4096) -> None:
        self.most = most
        self._events: dict[tuple[str, bytes], Event] = {}

    def decode(self, subject: str, data: bytes) -> Event:
        """`events.decode_message`, once for the same subject and bytes while they are here."""
        key = (subject, data)
        event = self._events.get(key)
        if event is None:
            event = decode_message(subject, data)  # MalformedEvent: nothing kept
            if len(self._events) >= self.most:
                del self._events[next(iter(self._events))]  # the oldest
            self._events[key] = event
        return event
