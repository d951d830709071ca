"""Large event values, content-addressed: one object per digest in a JetStream object store
bucket (`YMERA_BLOBS`, in nats's object store layout); events carry `BlobRef`s to them
(events/_blobs.py).

Clients may write to the bucket (their submissions' large values go there), so any message on
its subjects may be anyone's. A blob is read back only if its digest matches, so no one can
change what a blob says; and a blob once stored whole stays readable, whatever anyone
publishes on its subjects before or after:

- The bucket's stream takes no rollup header and no purge or delete (`_fit`): no message can
  wipe the ones before it, so every description (meta message) ever stored for a digest stays.
- A copy's chunks go to a fresh subject, each published only if the subject's last message is
  still the chunk before it (`Nats-Expected-Last-Subject-Sequence`): a stored copy is its
  subject's first messages, nothing between them, and a reader reads only as many bytes as
  the description says, so whatever follows them is never read.
- A reader tries the latest description of the digest (the common path: one lookup, one
  read); when the copy it names does not match, every description in turn, oldest first, and
  takes the first copy that matches.
- A writer that finds a description reads the copy back, and stores its own unless one matches.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from events import BlobError, BlobRef, check_blob

from ._errors import BusError

__all__ = ["BLOB_BUCKET", "BlobStore"]

_log = structlog.get_logger("ymera.bus")

BLOB_BUCKET = "YMERA_BLOBS"
_STREAM = f"OBJ_{BLOB_BUCKET}"  # nats's object store names: the stream, its chunk and meta subjects
_CHUNKS = f"$O.{BLOB_BUCKET}.C"
_META = f"$O.{BLOB_BUCKET}.M"
CHUNK_BYTES = 128 * 1024  # nats's object store default: well under NATS's 1 MiB payload limit
_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: a message came between
_WRITE_TRIES = 3
_FIT_SECONDS = 2.0  # a client may not change the stream: it is refused by silence
Copy = dict[str, Any]  # a description: nats's ObjectInfo as JSON (name, nuid, size, chunks, digest, ...)


def _config() -> StreamConfig:
    return StreamConfig(name=_STREAM, description="Ymera content-addressed blobs",
                        subjects=[f"{_CHUNKS}.>", f"{_META}.>"], storage=StorageType.FILE, discard=DiscardPolicy.NEW,
                        allow_direct=True, allow_rollup_hdrs=False, deny_purge=True, deny_delete=True)


def _meta_subject(ref: BlobRef) -> str:
    return f"{_META}.{base64.urlsafe_b64encode(ref.digest.encode()).decode()}"


class BlobStore:
    """`put(ref, data)` stores a blob once; `get(ref)` reads it back, checked against its digest."""

    def __init__(self, js: JetStreamContext, publish_timeout: float) -> None:
        self.js = js
        self.publish_timeout = publish_timeout
        self._ready = False

    async def put(self, ref: BlobRef, data: bytes) -> None:
        """Store a blob under its digest. Storing content already stored (and readable) is a no-op."""
        try:
            await self.open()
            latest = await self._latest(ref)
            if latest is not None:
                try:
                    await self._find(ref, latest)
                    return
                except BlobError:
                    pass  # described, but no copy matches: store a good one
            await self._write(ref, data)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"blob {ref.digest[:12]}…: could not store it in bucket {BLOB_BUCKET}: {exc}") from exc

    async def get(self, ref: BlobRef) -> bytes:
        """A blob's bytes, checked against its digest; `BlobError` when no stored copy matches.

        Read off the copy's chunk subject (`$O.<bucket>.C.<nuid>`, the object store's wire
        format) into one buffer: nats-py's `ObjectStore.get` joins chunks with `bytes +=`,
        quadratic in their number (17 s for 60 MB; bench/blobs.py), or with `writeinto`
        hops to a thread per 128 KiB chunk."""
        try:
            await self.open()
            latest = await self._latest(ref)
            if latest is None:
                raise BlobError(ref.digest, f"not in bucket {BLOB_BUCKET}")
            return await self._find(ref, latest)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"blob {ref.digest[:12]}…: could not read bucket {BLOB_BUCKET}: {exc}") from exc

    # ---- the stream ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Make the bucket's stream, or fit one made before (by nats's object store, which takes
        rollups and purges, or by anyone) to `_config`'s protections; once per connection."""
        if self._ready:
            return
        try:
            info = await self.js.stream_info(_STREAM)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_stream(_config())
                self._ready = True
                return
            except nats.js.errors.BadRequestError:  # made meanwhile by another connection
                info = await self.js.stream_info(_STREAM)
        await self._fit(info.config)
        self._ready = True

    async def _fit(self, config: StreamConfig) -> None:
        if not config.allow_rollup_hdrs and config.deny_purge and config.deny_delete and config.allow_direct \
                and config.max_msgs_per_subject in (None, -1, 0):
            return
        fitted = config.evolve(allow_rollup_hdrs=False, deny_purge=True, deny_delete=True, allow_direct=True,
                               max_msgs_per_subject=-1)
        try:
            await asyncio.wait_for(self.js.update_stream(fitted), _FIT_SECONDS)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            # A client may not update streams; the first actor that opens the bucket fits it.
            _log.warning("blob bucket takes rollups, purges or deletes, and this connection could not stop it",
                         stream=_STREAM, error=str(exc) or type(exc).__name__)

    # ---- reading ---------------------------------------------------------------------------------

    async def _latest(self, ref: BlobRef) -> tuple[int, Copy | None] | None:
        """The seq and description of the digest's latest description (None: it is no
        description, a delete marker or bytes that do not parse); None when there is none."""
        try:
            msg = await self.js.get_last_msg(_STREAM, _meta_subject(ref))
        except nats.js.errors.NotFoundError:
            return None
        return int(msg.seq or 0), _described(msg.data)

    async def _find(self, ref: BlobRef, latest: tuple[int, Copy | None]) -> bytes:
        """The first copy that matches: the latest description's, else each one's, oldest first."""
        seq, copy = latest
        problems = []
        if copy is not None:
            data, problem = await self._copy(ref, copy)
            if data is not None:
                return data
            problems.append(problem)
        tried = 1
        for earlier_seq, earlier in await self._descriptions(ref):
            if earlier_seq == seq:
                continue
            tried += 1
            if earlier is None:
                continue
            data, problem = await self._copy(ref, earlier)
            if data is not None:
                _log.warning("blob: its latest description names no copy that matches; an earlier one does",
                             digest=ref.digest[:12], latest_seq=seq, found_seq=earlier_seq, latest=problems[:1])
                return data
            problems.append(problem)
        described = f"{tried} descriptions of it" if tried > 1 else "its one description"
        why = f" (the latest: {problems[0]})" if problems and copy is not None else ""
        raise BlobError(ref.digest, f"no copy in bucket {BLOB_BUCKET} matches its digest: {described} "
                                    f"tried{why}")

    async def _descriptions(self, ref: BlobRef) -> list[tuple[int, Copy | None]]:
        """Every description of the digest the stream holds, oldest first."""
        found: list[tuple[int, Copy | None]] = []
        sub = await self.js.subscribe(_meta_subject(ref), ordered_consumer=True)
        try:
            while True:
                msg = await sub.next_msg(timeout=self.publish_timeout)
                found.append((msg.metadata.sequence.stream, _described(msg.data)))
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def _copy(self, ref: BlobRef, copy: Copy) -> tuple[bytes | None, str]:
        """The bytes of the copy `copy` describes if they match `ref`, else None and why not."""
        size, nuid = copy.get("size"), copy.get("nuid")
        if size != ref.size or not isinstance(nuid, str) or not nuid or "." in nuid or "*" in nuid or ">" in nuid:
            return None, f"it describes {size!r} bytes at {str(nuid)[:40]!r}"
        subject = f"{_CHUNKS}.{nuid}"
        data = bytearray()
        if size:
            # The first chunk by a lookup: a subject with none (a made-up description) would
            # otherwise be waited on; on it, every chunk says how many follow.
            try:
                first = await self.js.get_msg(_STREAM, seq=1, subject=subject, next=True, direct=True)
            except nats.js.errors.NotFoundError:
                return None, f"no chunk at {nuid[:40]!r}"
            data += first.data or b""
            if len(data) < size:
                await self._chunks(ref, subject, int(first.seq or 0), data, size)
        try:
            return check_blob(ref, bytes(data)), ""
        except BlobError as exc:
            return None, exc.reason

    async def _chunks(self, ref: BlobRef, subject: str, first_seq: int, data: bytearray, size: int) -> None:
        """The chunks after seq `first_seq` on `subject` onto `data`, until it holds `size` bytes
        or they run out."""
        start = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first_seq)
        sub = await self.js.subscribe(subject, ordered_consumer=True, config=start)
        try:
            while len(data) < size:
                msg = await sub.next_msg(timeout=self.publish_timeout)
                if msg.metadata.sequence.stream != first_seq:  # delivered from it: at least one comes
                    data += msg.data
                if msg.metadata.num_pending == 0:
                    break  # cut short
        except nats.errors.TimeoutError:
            raise BusError(f"blob {ref.digest[:12]}…: no chunk from bucket {BLOB_BUCKET} within "
                           f"{self.publish_timeout:g}s ({len(data)} of {size} bytes read)") from None
        finally:
            await sub.unsubscribe()

    # ---- writing ---------------------------------------------------------------------------------

    async def _write(self, ref: BlobRef, data: bytes) -> None:
        """Chunks on a fresh subject, none with anything between them, then their description."""
        for _ in range(_WRITE_TRIES):
            nuid = _fresh_nuid()
            subject, last, chunks = f"{_CHUNKS}.{nuid}", 0, 0
            try:
                for start in range(0, len(data), CHUNK_BYTES):
                    ack = await self.js.publish(subject, data[start:start + CHUNK_BYTES], timeout=self.publish_timeout,
                                                headers={_EXPECTED_LAST: str(last)})
                    last, chunks = ack.seq, chunks + 1
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code == _WRONG_LAST_SEQUENCE:
                    continue  # someone published on the fresh subject meanwhile: start over on another
                raise
            description = {
                "name": ref.digest, "bucket": BLOB_BUCKET, "nuid": nuid, "size": len(data), "chunks": chunks,
                "digest": "SHA-256=" + base64.urlsafe_b64encode(bytes.fromhex(ref.digest)).decode(),
                "mtime": datetime.now(UTC).isoformat(), "options": {"max_chunk_size": CHUNK_BYTES},
            }
            await self.js.publish(_meta_subject(ref), json.dumps(description).encode(), timeout=self.publish_timeout)
            return
        raise BusError(f"blob {ref.digest[:12]}…: {_WRITE_TRIES} tries to store it in bucket {BLOB_BUCKET} "
                       "each met messages of someone else's between its chunks")


def _fresh_nuid() -> str:
    """A new copy's chunk subject token: random, so no one can publish on it before the copy's
    first chunk, and any who does after is caught by the expected sequence."""
    return uuid.uuid4().hex


def _described(data: bytes | None) -> Copy | None:
    try:
        copy = json.loads(data or b"")
    except ValueError:
        return None
    return copy if isinstance(copy, dict) and not copy.get("deleted") else None
