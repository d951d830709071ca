"""What a reader of the stream sees: deliveries, the stream's and a consumer's state, live
subscriptions and followers, in Ymera's own small types; nats-py's stay below this line.

A `Delivery` is a message as a consumer handed it over: its subject and bytes, and the
stream seq and delivery count read off its ack subject. nats-py's `Msg` is one (structurally,
so the hot paths wrap nothing); `ack` and `nak` turn its errors into `BusError`s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.subscription import Subscription as _NatsSubscription
from nats.js import JetStreamContext

from ._errors import BusError

__all__ = ["ConsumerState", "Delivery", "Follower", "StreamState", "Subscription", "ack", "nak", "pending_after"]


class Delivery(Protocol):
    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def reply(self) -> str: ...

    @property
    def headers(self) -> dict[str, str] | None: ...


class StreamState(msgspec.Struct, frozen=True):
    first_seq: int
    last_seq: int
    created: str  # ISO time the stream was created: a stream made anew restarts its seqs


class ConsumerState(msgspec.Struct, frozen=True):
    num_pending: int  # not delivered yet
    num_ack_pending: int  # delivered, not acked
    delivered_seq: int  # the last stream seq delivered
    ack_floor_seq: int  # every stream seq up to this one is acked


async def ack(delivery: Delivery) -> None:
    try:
        await delivery.ack()  # type: ignore[attr-defined]
    except nats.errors.Error as exc:
        raise BusError(f"ack failed: {exc}") from exc


async def nak(delivery: Delivery) -> None:
    try:
        await delivery.nak()  # type: ignore[attr-defined]
    except nats.errors.Error as exc:
        raise BusError(f"nak failed: {exc}") from exc


def pending_after(delivery: Delivery) -> int:
    """How many messages the consumer had left to deliver after this one."""
    return int(delivery.metadata.num_pending)  # type: ignore[attr-defined]


class Subscription:
    """A plain (core NATS) subscription: its callback gets each message as it is published."""

    def __init__(self, sub: _NatsSubscription) -> None:
        self._sub = sub

    async def stop(self) -> None:
        try:
            await self._sub.unsubscribe()
        except nats.errors.Error:
            pass  # the connection is gone, and the subscription with it


class Follower:
    """An ordered reader of the stream from a seq (live views, `events tail`)."""

    def __init__(self, sub: JetStreamContext.PushSubscription) -> None:
        self._sub = sub

    async def next(self, timeout: float) -> Delivery | None:
        """The next message, or None if none came within `timeout` seconds."""
        try:
            return await self._sub.next_msg(timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        except nats.errors.Error as exc:
            raise BusError(f"reading the stream failed: {exc}") from exc

    async def batch(self, most: int, timeout: float, linger: float = 0.0) -> list[Delivery]:
        """The messages waiting, up to `most`, once one has come (and `linger` seconds more have
        passed, for those that trickle in after it); [] if none came within `timeout` seconds.
        One wake-up for a burst, where `next` costs one a message."""
        first = await self.next(timeout)
        if first is None:
            return []
        if linger:
            await asyncio.sleep(linger)
        msgs = [first]
        queue = self._sub._pending_queue  # what nats-py has read and not handed over yet
        while len(msgs) < most and not queue.empty():
            msgs.append(queue.get_nowait())
            queue.task_done()
        if len(msgs) > 1:  # nats-py counts what it queued until it is handed over
            self._sub._pending_size -= sum(len(m.data) for m in msgs[1:])
        return msgs

    async def pending(self) -> int:
        """How many messages it has still to hand over (0: caught up with the stream)."""
        try:
            info = await self._sub.consumer_info()
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"reading the stream failed: {exc}") from exc
        return int(info.num_pending or 0)

    async def stop(self) -> None:
        try:
            await self._sub.unsubscribe()
        except nats.errors.Error:
            pass


Callback = Callable[[Delivery], Awaitable[None]]
