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

A stop that closes the bus attests everything first. An actor killed between a message and
the attestation that would cover it (SIGKILL, the OOM killer) leaves its leaves in a journal
on disk (bus/_journal.py), which the next start of an actor with the same key attests. What
no journal saves (a host lost with its disk, a journal deleted) stays unattested: `ymera
audit verify` names such events `unattested`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path

import structlog

from events import NO_WORKFLOW, Attested, attested_bytes, encode, now, subject_of

from ._journal import Journal, orphans
from ._publish import PubAck, Publisher, abandon
from ._seal import ATTESTED_MARK, Signer, leaf
from ._sealer import Outgoing

__all__ = ["ATTESTED_MARK", "ATTEST_SECONDS", "Attester"]

ATTEST_SECONDS = 0.02  # how long an actor's event waits, at most, for its attestation to be sent
_LEAF = 16  # bytes of a leaf (bus/_seal.py)
_log = structlog.get_logger("ymera.bus")


class Attester:
    """Publishes through `publisher` at once, each message sealed with its number, and attests
    what was sent every `every` seconds or `most` messages, signed with `signer`; with a
    journal (`keep_journal`), what a killed run of the same key left unattested too."""

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
        self._journal: Journal | None = None
        self._acked: dict[int, int] = {}  # attestations acked past the journal's count: first -> end
        self._through = 0  # messages before it are attested and acked

    async def keep_journal(self, directory: Path) -> int:
        """Attest what killed runs of this key left unattested in `directory` (bus/_journal.py),
        then journal this run's messages there; the number of messages attested for the dead."""
        recovered = 0
        for orphan in orphans(directory, self.signer.name, self.signer.key_id):
            try:
                for at in range(0, len(orphan.leaves), self.most * _LEAF):
                    chunk = orphan.leaves[at:at + self.most * _LEAF]
                    await self._send(self._attestation(orphan.epoch, orphan.first + at // _LEAF, chunk), raise_=True)
                    recovered += len(chunk) // _LEAF
            except Exception as exc:
                os.close(orphan.fd)  # left for the next start
                _log.warning("could not attest what a killed run left; the next start tries again",
                             actor=self.signer.name, journal=str(orphan.path), error=str(exc) or type(exc).__name__)
                break
            orphan.release()
        if recovered:
            _log.info("attested what a killed run left", actor=self.signer.name, messages=recovered)
        if self._journal is not None:
            return recovered
        self._journal = Journal(directory, self.signer.name, self.signer.key_id, self.epoch)
        if self._next:  # sent before the journal was opened
            self._journal.add(self._first, b"".join(self._leaves))
        return recovered

    async def publish(self, messages: list[Outgoing]) -> list[asyncio.Future[PubAck]]:
        """Publish `messages` in order; return their acks' futures once they are sent. Their
        leaves are in the journal before the first goes."""
        first = self._next
        self._next += len(messages)
        leaves = [leaf(m.subject, m.data) for m in messages]
        self._leaves += leaves
        if self._journal is not None:
            self._journal.add(first, b"".join(leaves))
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for number, m in enumerate(messages, first):
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
        the stream has every attestation; the journal goes once it has."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._attest()
        if self._sending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._sending, return_exceptions=True), 5.0)
        if self._journal is not None:
            self._journal.close(done=self._through == self._next)
            self._journal = None

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
        task = asyncio.ensure_future(self._send(self._attestation(self.epoch, first, leaves)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _attestation(self, epoch: str, first: int, leaves: bytes) -> Attested:
        key = self.signer.key_id
        # Its count in its id too: a journal's attestation of a range a dead run began to attest
        # (sent, not acked) covers more, and must not be dropped as the stream's duplicate of it.
        return Attested(id=f"attested-{key}-{epoch}-{first}-{len(leaves) // _LEAF}", ts=now(), workflow_id=NO_WORKFLOW,
                        actor=self.signer.name, key_id=key, epoch=epoch, first=first, leaves=leaves,
                        signature=self.signer.sign(attested_bytes(key, epoch, first, leaves)))

    async def _send(self, event: Attested, raise_: bool = False) -> None:
        try:
            ack = await self.publisher.publish(subject_of(event), encode(event), event.id)
            await asyncio.wait_for(ack, 10.0)
        except Exception as exc:  # the events it covers stay unattested, unless the journal outlives us
            if raise_:
                raise
            _log.warning("attestation not sent", actor=event.actor, epoch=event.epoch, first=event.first,
                         count=len(event.leaves) // _LEAF, error=str(exc) or type(exc).__name__)
            return
        if event.epoch == self.epoch:
            self._acked[event.first] = event.first + len(event.leaves) // _LEAF
            while self._through in self._acked:
                self._through = self._acked.pop(self._through)
            if self._journal is not None:
                self._journal.attested(self._through)
