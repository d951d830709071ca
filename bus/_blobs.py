"""Large event values, content-addressed: one object per digest in a JetStream object store
bucket (`YMERA_BLOBS`); events carry `BlobRef`s to them (events/_blobs.py)."""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from events import BlobError, BlobRef, check_blob

from ._errors import BusError

__all__ = ["BLOB_BUCKET", "BlobStore"]

BLOB_BUCKET = "YMERA_BLOBS"


class BlobStore:
    """`put(ref, data)` stores a blob once; `get(ref)` reads it back, checked against its digest."""

    def __init__(self, js: JetStreamContext, publish_timeout: float) -> None:
        self.js = js
        self.publish_timeout = publish_timeout
        self._store: ObjectStore | None = None

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(BLOB_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._store = await self.js.create_object_store(
                    BLOB_BUCKET, ObjectStoreConfig(storage=StorageType.FILE,
                                                   description="Ymera content-addressed blobs"))
        return self._store

    async def put(self, ref: BlobRef, data: bytes) -> None:
        """Store a blob under its digest. Storing the same content twice is a no-op."""
        try:
            bucket = await self._bucket()
            try:
                await bucket.get_info(ref.digest)
                return
            except nats.js.errors.ObjectNotFoundError:
                pass
            await bucket.put(ref.digest, data)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"blob {ref.digest[:12]}…: could not store it in bucket {BLOB_BUCKET}: {exc}") from exc

    async def get(self, ref: BlobRef) -> bytes:
        """A blob's bytes, checked against its digest.

        Read off the object's chunk subject (`$O.<bucket>.C.<nuid>`, the object store's wire
        format) into one buffer: nats-py's `ObjectStore.get` joins chunks with `bytes +=`,
        quadratic in their number (17 s for 60 MB; bench/blobs.py), or with `writeinto`
        hops to a thread per 128 KiB chunk."""
        try:
            bucket = await self._bucket()
            info = await bucket.get_info(ref.digest)
        except nats.js.errors.ObjectNotFoundError:
            raise BlobError(ref.digest, f"not in bucket {BLOB_BUCKET}") from None
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"blob {ref.digest[:12]}…: could not read bucket {BLOB_BUCKET}: {exc}") from exc
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
            except nats.errors.Error as exc:
                raise BusError(f"blob {ref.digest[:12]}…: reading bucket {BLOB_BUCKET} failed: {exc}") from exc
            finally:
                await sub.unsubscribe()
        return check_blob(ref, bytes(data))
