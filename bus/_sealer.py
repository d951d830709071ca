"""Signing what a connection publishes, a turn of the event loop at a time.

An executor publishes each attempt's events as the attempt gets to them, a few at a time from
hundreds of attempts in flight; signed one publish at a time, every reader would verify a
signature per publish (~100 µs each, bus/_seal.py). Here every message handed over in one
turn of the event loop is sealed under one signature, then published in the order handed
over: one more turn of latency, and under load a signature per hundreds of messages.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from ._publish import PubAck, Publisher
from ._seal import Signer, seal

__all__ = ["Outgoing", "Sealer"]


class Outgoing(NamedTuple):
    subject: str
    data: bytes
    msg_id: str
    fence: tuple[str, int] | None = None


_Waiting = tuple[list[Outgoing], "asyncio.Future[list[asyncio.Future[PubAck]]]"]


class Sealer:
    """Publishes through `publisher`, sealing with `signer` everything sent in one loop turn."""

    def __init__(self, publisher: Publisher, signer: Signer) -> None:
        self.publisher = publisher
        self.signer = signer
        self._waiting: list[_Waiting] = []
        self._sending: set[asyncio.Future[None]] = set()

    async def publish(self, messages: list[Outgoing]) -> list[asyncio.Future[PubAck]]:
        """Publish `messages` in order, sealed with whatever else is sent in this turn of the loop;
        return their acks' futures once they are sent."""
        sent: asyncio.Future[list[asyncio.Future[PubAck]]] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._start)
        self._waiting.append((messages, sent))
        return await sent

    def _start(self) -> None:
        waiting, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(waiting))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, waiting: list[_Waiting]) -> None:
        everything = [m for messages, _ in waiting for m in messages]
        try:
            seals = iter(seal(self.signer, [(m.subject, m.data) for m in everything]))
        except Exception as exc:
            for _, sent in waiting:
                if not sent.done():
                    sent.set_exception(exc)
            return
        for messages, sent in waiting:
            mine = [next(seals) for _ in messages]
            futures: list[asyncio.Future[PubAck]] = []
            try:
                for m, sealed in zip(messages, mine, strict=True):
                    futures.append(await self.publisher.publish(m.subject, m.data, m.msg_id, fence=m.fence,
                                                                sealed=sealed))
            except Exception as exc:
                for f in futures:
                    f.cancel()
                if not sent.done():
                    sent.set_exception(exc)
                continue
            if sent.done():  # its sender gave up waiting: nobody will read these acks
                for f in futures:
                    f.cancel()
            else:
                sent.set_result(futures)
