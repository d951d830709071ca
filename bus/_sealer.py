"""Signing what a connection publishes, a turn of the event loop at a time.

An executor publishes each attempt's events as the attempt gets to them, a few at a time from
hundreds of attempts in flight; signed one publish at a time, every reader would verify a
signature per publish (~35 µs for the executor to make, and a check for each reader,
bus/_seal.py). Here every message handed over in one turn of the event loop is sealed under
one signature, then published in the order handed over: one more turn of latency, and under
load a signature per hundreds of messages.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

from ._publish import PubAck, Publisher, abandon
from ._seal import MacKeys, Signer, seal

__all__ = ["Outgoing", "Sealer"]


class Outgoing(NamedTuple):
    subject: str
    data: bytes
    msg_id: str
    fence: tuple[str, int] | None = None


_Waiting = tuple[list[Outgoing], "asyncio.Future[list[asyncio.Future[PubAck]]]"]
_Sealed = tuple[list[Outgoing], "asyncio.Future[list[asyncio.Future[PubAck]]]", list[str]]


class Sealer:
    """Publishes through `publisher`, sealing with `signer` everything sent in one loop turn."""

    def __init__(self, publisher: Publisher, signer: Signer, mac_keys: MacKeys | None = None) -> None:
        self.publisher = publisher
        self.signer = signer
        self.mac_key = mac_keys(signer.name) if mac_keys is not None else None
        self._waiting: list[_Waiting] = []
        self._orphans: set[asyncio.Future[None]] = set()  # sends a cancelled first sender left

    async def publish(self, messages: list[Outgoing]) -> list[asyncio.Future[PubAck]]:
        """Publish `messages` in order, sealed with whatever else is sent in this turn of the loop;
        return their acks' futures once they are sent. The first sender of a turn waits the turn
        out (`sleep(0)`: every sender ready in it has handed its messages over) and sends them
        all; the others wait for it. A first sender cancelled meanwhile (an executor's heartbeat
        as its attempt ends) leaves what is left to a task: nobody waits for ever."""
        sent: asyncio.Future[list[asyncio.Future[PubAck]]] = asyncio.get_running_loop().create_future()
        leader = not self._waiting
        self._waiting.append((messages, sent))
        if leader:
            left: deque[_Sealed] = deque()
            try:
                await asyncio.sleep(0)
                left = self._seal_waiting()
                await self._send(left)
            except BaseException:
                sent.cancel()  # its own messages still go (others' may follow them), unawaited
                left.extend(self._seal_waiting())
                if left:
                    task = asyncio.ensure_future(self._send(left))
                    self._orphans.add(task)
                    task.add_done_callback(self._orphans.discard)
                raise
        return await sent

    def _seal_waiting(self) -> deque[_Sealed]:
        """What waits, each sender's messages with their seals (one signature for all)."""
        waiting, self._waiting = self._waiting, []
        everything = [m for messages, _ in waiting for m in messages]
        try:
            seals = iter(seal(self.signer, [(m.subject, m.data) for m in everything], self.mac_key))
        except Exception as exc:
            for _, sent in waiting:
                if not sent.done():
                    sent.set_exception(exc)
            return deque()
        return deque((messages, sent, [next(seals) for _ in messages]) for messages, sent in waiting)

    async def _send(self, left: deque[_Sealed]) -> None:
        """Publish each sender's messages in turn, taking each off `left` once it is sent."""
        while left:
            messages, sent, seals = left[0]
            futures: list[asyncio.Future[PubAck]] = []
            try:
                for m, sealed in zip(messages, seals, strict=True):
                    futures.append(await self.publisher.publish(m.subject, m.data, m.msg_id, fence=m.fence,
                                                                sealed=sealed))
            except Exception as exc:
                abandon(futures)
                if not sent.done():
                    sent.set_exception(exc)
                left.popleft()
                continue
            left.popleft()
            if sent.done():  # its sender gave up waiting: nobody will read these acks
                abandon(futures)
            else:
                sent.set_result(futures)
