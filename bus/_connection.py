"""One NATS connection: JetStream publishing with dedupe ids, and the blob bucket.

This is the boundary where nats-py's errors become Ymera's: nothing above it catches a
nats exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Collection, Sequence
from datetime import datetime
from pathlib import Path

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg

from events import ALL_SUBJECTS, CLIENT, BlobRef, Event, decode_message, offload, resolve, subject_of

from ._access import Credentials
from ._attest import Attester
from ._blobs import BlobStore
from ._client import Client
from ._decoded import Decoded
from ._errors import BusError
from ._publish import NoAnswer, PubAck, Publisher, abandon
from ._pull import PullBatches, resume, stream_seq
from ._reading import Callback, ConsumerState, Delivery, Follower, StreamState, Subscription
from ._seal import Keyring, MacKeys, SealCheck, Signer, seal_of
from ._sealer import Outgoing, Sealer
from ._snapshots import SnapshotStore
from ._stream import ConsumerPolicy, StreamPolicy, consumer_config, set_retention

__all__ = ["Bus"]

_log = structlog.get_logger("ymera.bus")
_READ_THROUGH_WAIT = 5.0  # seconds `Bus.read_through` waits for the next message


class Bus:
    """A connected client: `publish` events, `put_blob`/`get_blob`, `close` once."""

    def __init__(self, nc: Client, js: JetStreamContext, url: str, stream: StreamPolicy,
                 publish_timeout: float, name: str = "ymera", *, signer: Signer | None = None,
                 keyring: Keyring | None = None, mac_keys: MacKeys | None = None,
                 credentials: Credentials | None = None) -> None:
        self.nc = nc
        self.js = js
        self.url = url
        self.name = name  # who this connection is to the server (`as_actor`)
        self.stream = stream
        self.publish_timeout = publish_timeout
        self.blobs = BlobStore(js, publish_timeout)  # large values, by digest (_blobs.py)
        self._publisher = Publisher(nc, publish_timeout)
        self.snapshots = SnapshotStore(js)  # actors' folded state (actors/_snapshot.py)
        # Who this connection authenticated as; with it, the server lets each actor publish its
        # own events only (bus/_access.py), so an actor need not check who sent what it reads.
        self.credentials = credentials
        self.enforced = credentials is not None and nc.auth_required
        self.denied: list[str] = []  # what the server refused this connection, newest last
        # Shared with the connections opened from this one (`as_actor`): what one decoded, the
        # others need not (_decoded.py).
        self.decoded: Decoded | None = None
        self._sign_as(signer, keyring, mac_keys)

    @property
    def principal(self) -> str | None:
        """The principal this connection signs a client's events as (its client key's), if it does."""
        name = self.signer.name if self.signer is not None else ""
        kind, _, principal = name.partition(".")
        return principal if kind == CLIENT and principal else None

    def _sign_as(self, signer: Signer | None, keyring: Keyring | None, mac_keys: MacKeys | None) -> None:
        """Who this connection signs as (an actor's), and whose signatures it checks: with a
        keyring, an event its type's actor did not sign is an `UntrustedEvent` (_seal.py)."""
        self.signer, self.keyring, self.mac_keys = signer, keyring, mac_keys
        self.seals = SealCheck(keyring, mac_keys, senders_enforced=self.enforced) if keyring is not None else None
        # Where the server enforces who publishes what, no actor reads a MAC, and an actor's
        # events go out at once, signed after the fact (bus/_attest.py); a client's are signed
        # before they go, as its principal is read off its signature.
        self._sealer: Sealer | Attester | None = None
        if signer is not None and self.enforced and self.principal is None:
            self._sealer = Attester(self._publisher, signer)
        elif signer is not None:
            self._sealer = Sealer(self._publisher, signer, None if self.enforced else mac_keys)

    # ---- the one point where events leave (signed), and the one where they arrive (checked) --

    def decode(self, subject: str, data: bytes, sealed: str | None) -> Event:
        """The event a message (or a log row) holds, checked against its subject and, with a
        keyring, against its signature `sealed` (`UntrustedEvent`: not its type's actor's); its
        blob-held fields still references. `MalformedEvent` says why it is none."""
        event = decode_message(subject, data) if self.decoded is None else self.decoded.decode(subject, data)
        if self.seals is not None:
            self.seals.check(type(event).__name__, subject, data, sealed, event)
        return event

    def decode_msg(self, msg: Delivery) -> Event:
        """`decode` of a delivered message, its signature read off its headers."""
        return self.decode(msg.subject, msg.data, seal_of(msg.headers))

    async def read(self, msg: Delivery, keep: Collection[str] = ()) -> Event:
        """`decode_msg`, with the blob-held fields back in place (but for `keep`, e.g.
        `"TaskSucceeded.output"`); `BlobError` when a blob cannot be read."""
        event = self.decode_msg(msg)
        # Most events hold no blob: no coroutine for them on the hot path.
        return await resolve(event, self.get_blob, keep) if event.blobs else event

    async def publish(self, event: Event) -> PubAck:
        """Publish one event and wait until the stream has it (or had it: a duplicate)."""
        acks = await self.publish_many([event])
        return acks[0]

    async def publish_many(self, events: Sequence[Event]) -> list[PubAck]:
        """Publish events pipelined, in order, and wait for every ack."""
        return await (await self.send(events))

    async def publish_after(self, event: Event, over: str, seq: int) -> PubAck:
        """Publish `event` only if the stream's last message on `over` (a subject filter) is
        still seq `seq` (0: there is none): a compare-and-set on the stream, for a decision
        taken on everything there through `seq`. `Fenced` if something came after it."""
        event, data = await offload(event, self.put_blob)
        try:
            futures = await self._publish([Outgoing(subject_of(event), data, event.id, (over, seq))])
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"publish failed: {exc}") from exc
        [ack] = await self._acks(futures)
        return ack

    async def send(self, events: Sequence[Event]) -> Awaitable[list[PubAck]]:
        """Send events in order and return, without waiting, what waits for their acks.

        For work that can overlap the round trip (an executor starts the task while
        TaskStarted is on its way); whoever depends on the events must await the acks.
        """
        futures: list[asyncio.Future[PubAck]] = []
        try:
            messages = []
            for event in events:
                event, data = await offload(event, self.put_blob)
                messages.append(Outgoing(subject_of(event), data, event.id))
            futures = await self._publish(messages) if messages else []
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            abandon(futures)
            raise BusError(f"publish failed: {exc}") from exc
        except BaseException:
            abandon(futures)
            raise
        return self._acks(futures)

    async def _publish(self, messages: list[Outgoing]) -> list[asyncio.Future[PubAck]]:
        """Send `messages` in order: sealed, when this connection signs (`Sealer`)."""
        if self._sealer is not None:
            return await self._sealer.publish(messages)
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for m in messages:
                futures.append(await self._publisher.publish(m.subject, m.data, m.msg_id, fence=m.fence))
        except BaseException:
            abandon(futures)
            raise
        return futures

    async def _acks(self, futures: list[asyncio.Future[PubAck]]) -> list[PubAck]:
        """Every ack, in order. No gather: a caller cancelled mid-wait (an executor's heartbeat, when
        its attempt ends) would leave a gathering future holding an exception nobody retrieves."""
        try:
            for future in futures:
                await future  # a refusal raises its BusError, no answer in time NoAnswer (bus/_publish.py)
        except NoAnswer:
            abandon(futures)
            refused = f"; the server refused: {self.denied[-1]}" if self.denied else ""
            raise BusError(f"nats: no ack from stream {self.stream.name} within "
                           f"{self.publish_timeout:g}s{refused}") from None
        except BaseException:
            abandon(futures)
            raise
        return [f.result() for f in futures]

    async def last(self, subject: str) -> Event | None:
        """The newest event on `subject` (no wildcards) in the stream, checked as `decode` checks
        it (`MalformedEvent`); None if there is none."""
        msg = await self._last_msg(subject)
        return None if msg is None else self.decode(subject, bytes(msg.data or b""), seal_of(msg.headers))

    async def last_stored(self, subject: str) -> tuple[int, datetime] | None:
        """The seq and store time of the newest message on `subject` (a filter may have
        wildcards); None if the stream has none."""
        msg = await self._last_msg(subject)
        if msg is None:
            return None
        assert msg.seq is not None
        assert msg.time is not None
        return msg.seq, msg.time

    async def _last_msg(self, subject: str) -> RawStreamMsg | None:
        try:
            return await self.js.get_last_msg(self.stream.name, subject)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not read the stream: {exc}") from exc

    async def pending(self, consumer: str) -> int | None:
        """Messages durable consumer `consumer` has not delivered yet; None if unknown (no such
        consumer, no answer)."""
        try:
            info = await self.js.consumer_info(self.stream.name, consumer)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
            return None
        return int(info.num_pending)

    async def set_retention(self, *, max_age: float | None, max_bytes: int | None) -> bool:
        """Bring the stream's limits to these (`set_retention`); whether it changed them."""
        try:
            return await set_retention(self.js, self.stream.name, max_age=max_age, max_bytes=max_bytes)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not set the retention of stream {self.stream.name}: {exc}") from exc

    async def stream_state(self) -> StreamState:
        """Where the stream stands: its first and last seq, and when it was created."""
        try:
            info = await self.js.stream_info(self.stream.name)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not read stream {self.stream.name}: {exc}") from exc
        return StreamState(first_seq=info.state.first_seq, last_seq=info.state.last_seq,
                           created=info.created.isoformat() if info.created else "")

    async def consumer_state(self, name: str) -> ConsumerState | None:
        """Where durable consumer `name` stands; None if there is no such consumer."""
        try:
            info = await self.js.consumer_info(self.stream.name, name)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not read consumer {name}: {exc}") from exc
        return ConsumerState(num_pending=info.num_pending, num_ack_pending=info.num_ack_pending,
                             delivered_seq=info.delivered.stream_seq if info.delivered else 0,
                             ack_floor_seq=info.ack_floor.stream_seq if info.ack_floor else 0)

    async def follow(self, start_seq: int = 1, subject: str = ALL_SUBJECTS, *,
                     since: datetime | None = None) -> Follower:
        """An ordered, unacknowledged reader of the stream from `start_seq`, or from the first
        message stored at or after `since` (live views, tail, what an actor folds of the past)."""
        if since is not None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1))
        try:
            sub = await self.js.subscribe(subject, stream=self.stream.name, ordered_consumer=True, config=config)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not follow stream {self.stream.name}: {exc}") from exc
        return Follower(sub)

    async def read_through(self, subject: str = ALL_SUBJECTS, start_seq: int = 1) -> AsyncIterator[Delivery]:
        """Every message stored on `subject` from `start_seq` up to the last one stored when the
        read began, in stream order: what the stream holds now, not what comes after."""
        last = await self.last_stored(subject)
        if last is None or last[0] < start_seq:
            return
        follower = await self.follow(start_seq, subject)
        try:
            # A read that stalls this long (the last message removed meanwhile) ends there.
            while (msg := await follower.next(_READ_THROUGH_WAIT)) is not None:
                yield msg
                if stream_seq(msg) >= last[0]:
                    return
        finally:
            await follower.stop()

    async def subscribe(self, subject: str, callback: Callback) -> Subscription:
        """Every message published on `subject` from now on, to `callback` (not the stream's past)."""
        try:
            return Subscription(await self.nc.subscribe(subject, cb=callback))
        except nats.errors.Error as exc:
            raise BusError(f"could not subscribe to {subject}: {exc}") from exc

    async def reader(self, name: str, policy: ConsumerPolicy, *, subjects: Sequence[str] = (ALL_SUBJECTS,),
                     start_seq: int | None = None, new_only: bool = False, ack_all: bool = False,
                     shared: bool = False, batch: int = 1000, poll: float = 0.1,
                     linger: float = 0.0) -> PullBatches:
        """Batches from durable consumer `name`. A single reader's consumer is made anew at
        `start_seq` (it resumes where its own state reached); a `shared` one (executors) is made
        once and joined by every other reader. `linger`: how long a small batch waits for more
        (`PullBatches`)."""
        config = consumer_config(name, policy, subjects=subjects, start_seq=start_seq, new_only=new_only,
                                 ack_all=ack_all)
        try:
            if not shared:
                return await resume(self.nc, self.stream.name, name, config, batch=batch, poll=poll, linger=linger)
            try:
                await self.js.add_consumer(self.stream.name, config)
            except nats.js.errors.BadRequestError:
                pass  # it exists: its readers share it
            batches = PullBatches(self.nc, self.stream.name, name, batch=batch, poll=poll, linger=linger)
            await batches.start()
            return batches
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not read consumer {name}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def replay(self, name: str, start_seq: int, subjects: Sequence[str] | None = None,
                     batch: int = 2000) -> AsyncIterator[PullBatches]:
        """Batches of the stored stream from `start_seq` (on `subjects`, or all of it), through a
        consumer of its own that is gone afterwards: how an actor folds what it missed."""
        name = f"{name}-{uuid.uuid4().hex[:12]}"
        filters = list(subjects or ())
        try:
            await self.js.add_consumer(self.stream.name, ConsumerConfig(
                name=name, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq,
                ack_policy=AckPolicy.NONE, filter_subject=filters[0] if len(filters) == 1 else None,
                filter_subjects=filters if len(filters) > 1 else None, inactive_threshold=30.0, mem_storage=True))
            batches = PullBatches(self.nc, self.stream.name, name, batch=batch, poll=0.2)
            await batches.start()
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not replay stream {self.stream.name}: {exc}") from exc
        try:
            yield batches
        finally:
            await batches.stop()
            try:
                await self.js.delete_consumer(self.stream.name, name)
            except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
                pass  # it expires by itself (inactive_threshold)

    async def put_blob(self, ref: BlobRef, data: bytes) -> None:
        """Store a blob under its digest (`BlobStore.put`)."""
        await self.blobs.put(ref, data)

    async def get_blob(self, ref: BlobRef) -> bytes:
        """A blob's bytes, checked against its digest (`BlobStore.get`)."""
        return await self.blobs.get(ref)

    @contextlib.asynccontextmanager
    async def as_actor(self, actor: str, signer: Signer | None = None, keyring: Keyring | None = None,
                       mac_keys: MacKeys | None = None, credentials: Credentials | None = None) -> AsyncIterator[Bus]:
        """A connection to this bus's server opened as `actor` (named `ymera-<actor>`), signing
        what it publishes with `signer` and checking what it reads with `keyring` and `mac_keys`
        (this bus's, if none are given; bus/_seal.py), authenticated with `credentials`, closed
        afterwards; this one if it is that actor's already (`ymera actor NAME`). Every actor runs
        on a connection of its own, so what the server grants a connection is granted to one actor."""
        name = f"ymera-{actor}"
        keyring, mac_keys = keyring or self.keyring, mac_keys or self.mac_keys
        if self.name == name:
            self._sign_as(signer or self.signer, keyring, mac_keys)
            yield self
            return
        from ._connect import connect  # it makes Buses: imported here, where it is needed

        own = await connect(self.url, name=name, stream=self.stream, publish_timeout=self.publish_timeout,
                            signer=signer, keyring=keyring, mac_keys=mac_keys, credentials=credentials,
                            require_auth=self.enforced)
        if self.decoded is None:
            self.decoded = Decoded()
        own.decoded = self.decoded  # actors in one process: each message decoded once
        try:
            yield own
        finally:
            await own.close()

    async def keep_journal(self, directory: Path) -> int:
        """Where this connection attests what it sends (an actor's, where the server enforces
        who publishes what: bus/_attest.py), keep a journal of it in `directory`, and first
        attest what killed runs of the same key left there; the number of their messages attested."""
        if isinstance(self._sealer, Attester):
            return await self._sealer.keep_journal(directory)
        return 0

    async def close(self) -> None:
        """Flush and close. Safe to call twice."""
        if self.nc.is_closed:
            return
        if isinstance(self._sealer, Attester):
            await self._sealer.close()  # what it sent, attested before it goes
        try:
            await asyncio.wait_for(self.nc.drain(), 5.0)
        except (TimeoutError, nats.errors.Error):
            await self.nc.close()
        self._publisher.close()
