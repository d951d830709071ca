"""One NATS connection: JetStream publishing with dedupe ids, and the blob bucket.

This is the boundary where nats-py's errors become Ymera's: nothing above it catches a
nats exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, ObjectStoreConfig, PubAck, StorageType
from nats.js.object_store import ObjectStore

from events import ALL_SUBJECTS, BlobError, BlobRef, Event, check_blob, offload, subject_of

from ._errors import BusError, BusUnavailable
from ._snapshots import SnapshotStore
from ._stream import StreamPolicy, ensure_stream

__all__ = ["BLOB_BUCKET", "Bus", "connect", "connect_when_up"]

BLOB_BUCKET = "YMERA_BLOBS"
MSG_ID = "Nats-Msg-Id"
_log = structlog.get_logger("ymera.bus")


class Bus:
    """A connected client: `publish` events, `put_blob`/`get_blob`, `close` once."""

    def __init__(self, nc: Client, js: JetStreamContext, url: str, stream: StreamPolicy,
                 publish_timeout: float) -> None:
        self.nc = nc
        self.js = js
        self.url = url
        self.stream = stream
        self.publish_timeout = publish_timeout
        self._blobs: ObjectStore | None = None
        self.snapshots = SnapshotStore(js)  # actors' folded state (actors/_snapshot.py)

    async def publish(self, event: Event) -> PubAck:
        """Publish one event and wait until the stream has it (or had it: a duplicate)."""
        acks = await self.publish_many([event])
        return acks[0]

    async def publish_many(self, events: Sequence[Event]) -> list[PubAck]:
        """Publish events pipelined, in order, and wait for every ack."""
        return await (await self.send(events))

    async def send(self, events: Sequence[Event]) -> Awaitable[list[PubAck]]:
        """Send events in order and return, without waiting, what waits for their acks.

        For work that can overlap the round trip (an executor starts the task while
        TaskStarted is on its way); whoever depends on the events must await the acks.
        """
        futures = []
        try:
            for event in events:
                event, data = await offload(event, self.put_blob)
                futures.append(await self.js.publish_async(
                    subject_of(event), data, headers={MSG_ID: event.id}))
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            _abandon(futures)
            raise BusError(f"publish failed: {exc}") from exc
        except BaseException:
            _abandon(futures)
            raise
        return self._acks(futures)

    async def _acks(self, futures: list[asyncio.Future[PubAck]]) -> list[PubAck]:
        """Every ack, in order. No gather: a caller cancelled mid-wait (an executor's heartbeat, when
        its attempt ends) would leave a gathering future holding an exception nobody retrieves."""
        if not futures:
            return []
        try:
            _, pending = await asyncio.wait(futures, timeout=self.publish_timeout)
        except asyncio.CancelledError:
            _abandon(futures)
            raise
        if pending:
            _abandon(futures)
            raise BusError(f"nats: no ack from stream {self.stream.name} within "
                           f"{self.publish_timeout:g}s") from None
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            _abandon(futures)
            if isinstance(failed, (nats.errors.Error, nats.js.errors.Error)):
                raise BusError(f"publish failed: {failed}") from failed
            raise failed
        return [f.result() for f in futures]

    async def last(self, subject: str) -> bytes | None:
        """The payload of the newest message on `subject` in the stream; None if there is none."""
        try:
            msg = await self.js.get_last_msg(self.stream.name, subject)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"could not read the stream: {exc}") from exc
        return bytes(msg.data or b"")

    async def pending(self, consumer: str) -> int | None:
        """Messages durable consumer `consumer` has not delivered yet; None if unknown (no such
        consumer, no answer)."""
        try:
            info = await self.js.consumer_info(self.stream.name, consumer)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
            return None
        return int(info.num_pending)

    async def follow(self, start_seq: int = 1, subject: str = ALL_SUBJECTS) -> JetStreamContext.PushSubscription:
        """An ordered, unacknowledged reader of the stream from `start_seq` (live views, tail)."""
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1))
        return await self.js.subscribe(subject, stream=self.stream.name, ordered_consumer=True, config=config)

    async def _bucket(self) -> ObjectStore:
        if self._blobs is None:
            try:
                self._blobs = await self.js.object_store(BLOB_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._blobs = await self.js.create_object_store(
                    BLOB_BUCKET, ObjectStoreConfig(storage=StorageType.FILE,
                                                   description="Ymera content-addressed blobs"))
        return self._blobs

    async def put_blob(self, ref: BlobRef, data: bytes) -> None:
        """Store a blob under its digest. Storing the same content twice is a no-op."""
        bucket = await self._bucket()
        try:
            await bucket.get_info(ref.digest)
            return
        except nats.js.errors.ObjectNotFoundError:
            pass
        await bucket.put(ref.digest, data)

    async def get_blob(self, ref: BlobRef) -> bytes:
        """A blob's bytes, checked against its digest.

        Read off the object's chunk subject (`$O.<bucket>.C.<nuid>`, the object store's wire
        format) into one buffer: nats-py's `ObjectStore.get` joins chunks with `bytes +=`,
        quadratic in their number (17 s for 60 MB; bench/blobs.py), or with `writeinto`
        hops to a thread per 128 KiB chunk."""
        bucket = await self._bucket()
        try:
            info = await bucket.get_info(ref.digest)
        except nats.js.errors.ObjectNotFoundError:
            raise BlobError(ref.digest, f"not in bucket {BLOB_BUCKET}") from None
        data = bytearray()
        if info.size:
            sub = await self.js.subscribe(f"$O.{BLOB_BUCKET}.C.{info.nuid}", ordered_consumer=True)
            try:
                while True:
                    msg = await sub.next_msg(timeout=self.publish_timeout)
                    data += msg.data
                    if msg.metadata.num_pending == 0:
                        break
            except nats.errors.TimeoutError:
                raise BusError(f"blob {ref.digest[:12]}…: no chunk from bucket {BLOB_BUCKET} within "
                               f"{self.publish_timeout:g}s ({len(data)} of {info.size} bytes read)") from None
            finally:
                await sub.unsubscribe()
        return check_blob(ref, bytes(data))

    async def close(self) -> None:
        """Flush and close. Safe to call twice."""
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), 5.0)
        except (TimeoutError, nats.errors.Error):
            await self.nc.close()


async def connect(url: str, *, name: str = "ymera", stream: StreamPolicy | None = None,
                  connect_timeout: float = 2.0, publish_timeout: float = 10.0) -> Bus:
    """Connect, make sure the stream exists, and keep reconnecting for as long as we live."""
    last_error: list[BaseException] = []
    client: list[Client] = []

    async def on_error(exc: Exception) -> None:
        last_error.append(exc)
        _log.debug("nats error", error=str(exc) or type(exc).__name__)

    async def on_disconnect() -> None:
        if client and (client[0].is_closed or client[0].is_draining):
            return  # our own close
        _log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        _log.info("nats reconnected", url=url)

    try:
        nc = await nats.connect(
            url, name=name, connect_timeout=connect_timeout, max_reconnect_attempts=2,
            reconnect_time_wait=0.25, error_cb=on_error, disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect, pending_size=8 * 1024 * 1024,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        cause = last_error[-1] if last_error else exc
        raise BusUnavailable(url, _describe(cause)) from None
    client.append(nc)
    # Having reached the server once, a later outage (a restart, a failover) is waited out
    # rather than fatal: from here on, reconnect forever.
    nc.options["max_reconnect_attempts"] = -1
    policy = stream or StreamPolicy()
    js = nc.jetstream(timeout=publish_timeout)
    try:
        await ensure_stream(js, policy)
    except nats.js.errors.ServiceUnavailableError:
        await nc.close()
        raise BusUnavailable(url, "the server has JetStream disabled (start it with -js)") from None
    except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
        await nc.close()
        raise BusUnavailable(url, f"could not set up stream {policy.name}: {_describe(exc)}") from None
    return Bus(nc, js, url, policy, publish_timeout)


def _abandon(futures: list[asyncio.Future[PubAck]]) -> None:
    """Cancel what is still waiting and mark every failure as seen, so none is reported as lost."""
    for f in futures:
        if f.done():
            if not f.cancelled():
                f.exception()
        else:
            f.cancel()

async def connect_when_up(url: str, stop: asyncio.Event, *, name: str = "ymera", first_wait: float = 0.5,
                          max_wait: float = 10.0, stream: StreamPolicy | None = None) -> Bus | None:
    """Connect, waiting with backoff while no server answers at `url` (an actor started before
    NATS); None if `stop` is set first. Each wait is logged, so an operator sees why nothing runs."""
    wait, attempt = first_wait, 1
    while True:
        try:
            return await connect(url, name=name, stream=stream)
        except BusUnavailable as exc:
            _log.warning(f"waiting for NATS at {url} (attempt {attempt}, next in {wait:g}s)", reason=exc.reason)
        try:
            await asyncio.wait_for(stop.wait(), wait)
            return None
        except TimeoutError:
            pass
        attempt += 1
        wait = min(wait * 2, max_wait)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is nats-server running?)"
    if isinstance(exc, (asyncio.TimeoutError, nats.errors.TimeoutError)):
        return "timed out"
    text = str(exc).removeprefix("nats: ")
    return text or type(exc).__name__
