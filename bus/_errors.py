"""Errors of the bus: NATS, the embedded server, consumer configuration."""

from __future__ import annotations

from events import YmeraError

__all__ = ["BusError", "BusUnavailable", "ConsumerConfigError", "Fenced", "ServerStartError"]


class BusError(YmeraError):
    pass


class Fenced(BusError):
    """A publish made on the condition that the stream's last message on `over` was seq
    `after` found a later one there (`last`, when the stream says): another writer got there
    first. Nothing was stored; read up to `last` and decide again."""

    def __init__(self, over: str, after: int, last: int | None) -> None:
        now = f"seq {last}" if last is not None else "a later seq"
        super().__init__(f"publish refused: the last message on {over} is {now}, not seq {after}")
        self.over = over
        self.after = after
        self.last = last


class BusUnavailable(BusError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach NATS at {url}: {reason}")
        self.url = url
        self.reason = reason


class ServerStartError(BusError):
    def __init__(self, binary: str, reason: str) -> None:
        super().__init__(f"embedded nats-server ({binary}) did not start: {reason}")
        self.binary = binary
        self.reason = reason


class ConsumerConfigError(BusError):
    def __init__(self, consumer: str, redelivery_span: float, duplicate_window: float) -> None:
        super().__init__(
            f"consumer {consumer!r} may redeliver a message up to {redelivery_span:g}s after "
            f"its first delivery, past the stream's {duplicate_window:g}s duplicate window, so "
            "a redelivered input could publish its outputs twice; shorten ack_wait/backoff, "
            "lower max_deliver, or widen the duplicate window"
        )
        self.consumer = consumer
        self.redelivery_span = redelivery_span
        self.duplicate_window = duplicate_window
