"""Sending at once, signing after: how an actor seals what it publishes where the server
enforces who publishes what (bus/_access.py).

There, whoever can publish an actor's event is that actor, as the server checks it when the
connection is made; a signature per message proves nothing more in real time, and making it
held every chain step up by a signature and ~200 bytes of header (BENCHMARKS.md, "Signing").
So each message goes out at once with a short seal naming the key, this connection's run
(`epoch`) and the message's number in it,

    @<key id>.<epoch>.<k>

and every `every` seconds (or `most` messages) the actor signs what it sent since in one
`events.Attested`: the leaf hashes of messages `first`..`first + n - 1`, in order. The audit
and whoever reads the log later check each message against the attestation that covers it
(`SealCheck.attest`); readers in real time trust the server, as the actors do.

What this gives up: an actor killed (SIGKILL, a lost host) between a message and the
attestation that would cover it leaves that message unattested for good. `ymera audit verify`
names such events `unattested`: the server took them from the actor's connection, and no
signature says what they held. A stop that closes the bus attests everything first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import structlog

from events import NO_WORKFLOW, Attested, attested_bytes, encode, now, subject_of

from ._publish import PubAck, Publisher, abandon
from ._seal import Signer, leaf
from ._sealer import Outgoing

__all__ = ["ATTESTED_MARK", "ATTEST_SECONDS", "Attester"]

ATTEST_SECONDS = 0.02  # how long an actor's event waits, at most, for its attestation to be sent
ATTESTED_MARK = "@"  # how an attested seal starts (a batch seal starts with its MAC or a '.')
_log = structlog.get_logger("ymera.bus")


class Attester:
    """Publishes through `publisher` at once, each message sealed with its number, and attests
    what was sent every `every` seconds or `most` messages, signed with `signer`."""

    def __init__(self, publisher: Publisher, signer: Signer, *, every: float = ATTEST_SECONDS,
                 most: int = 1024) -> None:
        self.publisher = publisher
        self.signer = signer
        self.every = every
        self.most = most
        self.epoch = secrets.token_hex(6)  # this run's: numbers start again at 0 with each
        self._head = f"{ATTESTED_MARK}{signer.key_id}.{self.epoch}."
        self._next = 0  # the number of the next message
        self._first = 0  # the number of the first leaf in `_leaves`
        self._leaves: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, messages: list[Outgoing]) -> list[asyncio.Future[PubAck]]:
        """Publish `messages` in order; return their acks' futures once they are sent."""
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for m in messages:
                number = self._next
                self._next += 1
                self._leaves.append(leaf(m.subject, m.data))
                futures.append(await self.publisher.publish(m.subject, m.data, m.msg_id, fence=m.fence,
                                                            sealed=f"{self._head}{number}"))
        except BaseException:
            abandon(futures)
            raise
        finally:
            self._schedule()
        return futures

    async def close(self) -> None:
        """Attest whatever is sent and not attested yet, and wait (a few seconds at most) until
        the stream has every attestation."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._attest()
        if self._sending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._sending, return_exceptions=True), 5.0)

    def _schedule(self) -> None:
        if len(self._leaves) >= self.most:
            self._attest()
        elif self._leaves and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every, self._attest)

    def _attest(self) -> None:
        """Sign the leaves waiting and send them as one `Attested` (in a task of its own)."""
        self._timer = None
        if not self._leaves:
            return
        first, leaves = self._first, b"".join(self._leaves)
        self._first += len(self._leaves)
        self._leaves = []
        key = self.signer.key_id
        event = Attested(id=f"attested-{key}-{self.epoch}-{first}", ts=now(), workflow_id=NO_WORKFLOW,
                         actor=self.signer.name, key_id=key, epoch=self.epoch, first=first, leaves=leaves,
                         signature=self.signer.sign(attested_bytes(key, self.epoch, first, leaves)))
        task = asyncio.ensure_future(self._send(event))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, event: Attested) -> None:
        try:
            ack = await self.publisher.publish(subject_of(event), encode(event), event.id)
            await asyncio.wait_for(ack, 10.0)
        except Exception as exc:  # the events it covers stay unattested: the audit will say so
            _log.warning("attestation not sent", actor=event.actor, epoch=event.epoch, first=event.first,
                         count=len(event.leaves) // 16, error=str(exc) or type(exc).__name__)
