"""Reading a durable pull consumer in batches, through one subscription callback.

nats-py's `fetch` hands every message through `next_msg`, which costs a task and a
`wait_for` per message; measured on these machines that halves the store writer's intake
(bench/event_path.py). Here one pull request is outstanding at a time and its messages
collect in a list as they arrive (on the client's direct path, `_client.py`: no queue, task
or header parse per message), so a reader gets everything that came while it was busy in one
`next()`: batching follows load by itself.

A reader off the critical path may `linger`: a batch smaller than `LINGER_BELOW` waits that
long once for more to join it. When events trickle in (a chain of tasks, one event at a time),
the store writer otherwise spent a transaction and its thread round trips on every event, and
with the monitor and the assessor woke for each one, taking the CPU the next step waits for
(BENCHMARKS.md, "Throughput").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig

from ._client import Client
from ._errors import BusError
from ._reading import Delivery

__all__ = ["LINGER_BELOW", "PullBatches", "deliveries", "resume", "stream_seq"]

_STATUS = "Status"
_HEARTBEAT = "100"
LINGER_BELOW = 64  # a batch this large or larger goes at once: a burst needs no wait to be worth a batch


class PullBatches:
    """Batches of messages from durable consumer `durable` on `stream`, in delivery order."""

    def __init__(self, nc: Client, stream: str, durable: str, *, batch: int = 1000, poll: float = 0.1,
                 linger: float = 0.0) -> None:
        self.nc = nc
        self.durable = durable
        self.batch = batch
        self.poll = poll
        self.linger = linger
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: list[Delivery] = []
        self._arrived = asyncio.Event()
        self._left = 0  # messages the outstanding request may still deliver
        self._expires_at = 0.0

    async def start(self) -> None:
        self._sub = await self.nc.subscribe_direct(self._inbox, self._on_msg)

    async def stop(self) -> None:
        """Stop receiving. Messages delivered but not returned are redelivered after ack_wait."""
        sub, self._sub = self._sub, None
        if sub is not None:
            self.nc.forget_direct(sub)
        if sub is not None and not self.nc.is_closed:
            try:
                await sub.unsubscribe()
            except nats.errors.Error:
                pass  # the connection is going: the subscription goes with it

    async def next(self, limit: int | None = None) -> list[Delivery]:
        """What has arrived, waiting up to `poll` seconds for something; [] when idle. With
        `linger`, fewer than `LINGER_BELOW` messages wait that long once for more.

        `limit` caps a new pull request, for a reader that must not hold more messages than
        it can start at once (an executor with free slots); without it, `batch`.
        """
        if not self._buffer:
            try:
                await self._request(limit or self.batch)
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                await asyncio.sleep(self.poll)  # the client reconnects; ask again then
                return []
            except nats.errors.Error as exc:
                raise BusError(f"pulling from consumer {self.durable} failed: {exc}") from exc
            # asyncio.timeout, not wait_for: no task per wait on every reader's hot path.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._arrived.wait()
        if self.linger and 0 < len(self._buffer) < LINGER_BELOW:
            await asyncio.sleep(self.linger)
        msgs, self._buffer = self._buffer, []
        self._arrived.clear()
        return msgs

    async def _request(self, batch: int) -> None:
        # A request lost to a reconnect never ends on its own; its expiry retires it.
        if self._left > 0 and time.monotonic() < self._expires_at:
            return
        self._left = batch
        expires = max(self.poll * 10, 1.0)
        self._expires_at = time.monotonic() + expires + 0.5
        body = json.dumps({"batch": batch, "expires": int(expires * 1e9)}).encode()
        await self.nc.publish(self._next_subject, body, reply=self._inbox)

    def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            self._buffer.append(msg)
            self._left -= 1
        elif status != _HEARTBEAT:
            self._left = 0  # 404 no messages, 408 expired, 409 ended by the server: ask again
        self._arrived.set()


async def resume(nc: Client, stream: str, durable: str, config: ConsumerConfig, *, batch: int = 1000,
                 poll: float = 0.1, linger: float = 0.0) -> PullBatches:
    """Recreate durable consumer `durable` as `config` says (a single reader resuming at the seq
    its own state reached) and read it in batches."""
    js = nc.jetstream()
    try:
        await js.delete_consumer(stream, durable)
    except nats.js.errors.NotFoundError:
        pass
    await js.add_consumer(stream, config)
    batches = PullBatches(nc, stream, durable, batch=batch, poll=poll, linger=linger)
    await batches.start()
    return batches


def stream_seq(msg: Delivery) -> int:
    """A JetStream message's stream sequence, read straight off its ack subject.

    `msg.metadata` parses every field of the subject into objects; on the hot paths only
    this one is needed, and it costs 5-9 % of an actor's time (bench/throughput.py).
    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...` (9 tokens), or with a domain and
    an account hash before the stream (12 or more).
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    if len(tokens) >= 12:
        return int(tokens[7])
    return int(msg.metadata.sequence.stream)  # type: ignore[attr-defined]


def deliveries(msg: Delivery) -> int:
    """How many times this message has been delivered (1 the first time), off its ack subject as
    `stream_seq` reads it: the token before the stream seq."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[4])
    if len(tokens) >= 12:
        return int(tokens[6])
    return int(msg.metadata.num_delivered)  # type: ignore[attr-defined]
