"""Where actors keep their snapshots: one object per actor in a JetStream object store bucket.

An object store `put` writes the new content's chunks under a fresh id and only then
publishes the object's meta message (a roll-up that replaces the previous one), so a writer
that dies halfway leaves the previous snapshot whole and readable; `get` checks the
content's SHA-256 against the meta. The bytes are opaque here: actors/_snapshot.py gives
them their format.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from ._errors import BusError

__all__ = ["SNAPSHOT_BUCKET", "SnapshotStore"]

SNAPSHOT_BUCKET = "YMERA_SNAPSHOTS"


class SnapshotStore:
    """`save(name, data)` replaces the object `name`; `load(name)` returns it, or None."""

    def __init__(self, js: JetStreamContext, bucket: str = SNAPSHOT_BUCKET) -> None:
        self.js = js
        self.bucket = bucket
        self._store: ObjectStore | None = None

    async def _objects(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                self._store = await self.js.create_object_store(
                    self.bucket, ObjectStoreConfig(storage=StorageType.FILE,
                                                   description="Ymera actor snapshots"))
        return self._store

    async def save(self, name: str, data: bytes) -> None:
        try:
            await (await self._objects()).put(name, data)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"snapshot {name}: write to bucket {self.bucket} failed: "
                           f"{str(exc) or type(exc).__name__}") from exc

    async def load(self, name: str) -> bytes | None:
        """The last snapshot saved whole under `name`; None if there is none.

        A snapshot whose chunks do not match its digest raises BusError (the caller
        ignores it and folds from the start).
        """
        try:
            result = await (await self._objects()).get(name)
        except nats.js.errors.ObjectNotFoundError:
            return None
        except nats.js.errors.DigestMismatchError:
            raise BusError(f"snapshot {name}: content does not match its digest") from None
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"snapshot {name}: read from bucket {self.bucket} failed: "
                           f"{str(exc) or type(exc).__name__}") from exc
        return bytes(result.data or b"")
