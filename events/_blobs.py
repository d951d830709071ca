"""Moving large field values out of events into content-addressed blobs, and back.

An event over `INLINE_LIMIT` bytes has its declared `blob_fields` replaced by a `BlobRef`
(sha256 and size) in `event.blobs`; `resolve` puts the values back. Every reader of events
goes through `resolve` (readers of the bus through `bus.Bus.read`: each actor's runtime, the
executor, the client, live projections; `store.rebuild` from the log), and every blob is
read back through `load_blob`, which checks it against its digest. Where
the bytes live is the caller's business (a JetStream object store, the SQLite store): this
module only takes `put` and `get` functions, so it stays free of I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import msgspec

from ._catalog import Event
from ._codec import MAX_EVENT_BYTES, encode
from ._envelope import BlobRef
from ._errors import BlobError, EventTooLarge

__all__ = [
    "INLINE_LIMIT",
    "MAX_BLOB_BYTES",
    "BlobGet",
    "BlobPut",
    "blob_ref",
    "check_blob",
    "load_blob",
    "offload",
    "resolve",
]

INLINE_LIMIT = 64 * 1024
# The largest value a blob holds. Every reader holds a value whole in memory, and SQLite
# refuses a blob over 1 GB, which would stop the store writer: refused when published.
MAX_BLOB_BYTES = 64 * 1024 * 1024
# Fields smaller than this stay inline even when the event as a whole is too large.
_MIN_BLOB = 1024

BlobPut = Callable[[BlobRef, bytes], Awaitable[None]]
BlobGet = Callable[[BlobRef], Awaitable[bytes]]

_encoder = msgspec.json.Encoder()


def blob_ref(data: bytes) -> BlobRef:
    return BlobRef(digest=hashlib.sha256(data).hexdigest(), size=len(data))


def check_blob(ref: BlobRef, data: bytes) -> bytes:
    """Return `data` if it is the blob `ref` names; raise `BlobError` otherwise."""
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.digest:
        raise BlobError(ref.digest, f"content does not match its digest ({len(data)} bytes read)")
    return data


def _default_of(cls: type[Any], name: str) -> Any:
    for field in msgspec.structs.fields(cls):
        if field.name == name:
            if field.default_factory is not msgspec.NODEFAULT:
                return field.default_factory()
            return field.default
    raise KeyError(name)


async def offload(event: Event, put: BlobPut, limit: int = INLINE_LIMIT) -> tuple[Event, bytes]:
    """Return the event as it should travel, and its encoding."""
    data = encode(event)
    if len(data) <= min(limit, event.inline_limit):
        return event, data
    refs = dict(event.blobs)
    changes: dict[str, Any] = {}
    for name in event.blob_fields:
        value = _encoder.encode(getattr(event, name))
        if len(value) < _MIN_BLOB:
            continue
        if len(value) > MAX_BLOB_BYTES:
            raise EventTooLarge(type(event).__name__, len(value), MAX_BLOB_BYTES, name)
        ref = blob_ref(value)
        await put(ref, value)
        refs[name] = ref
        changes[name] = _default_of(type(event), name)
    if changes:
        event = msgspec.structs.replace(event, blobs=refs, **changes)
        data = encode(event)
    if len(data) > MAX_EVENT_BYTES:
        raise EventTooLarge(type(event).__name__, len(data), MAX_EVENT_BYTES)
    return event, data


async def load_blob(ref: BlobRef, get: BlobGet, type: Any = Any) -> Any:
    """The value blob `ref` holds: read with `get`, checked against its digest, decoded as `type`."""
    data = check_blob(ref, await get(ref))
    try:
        return msgspec.json.decode(data, type=type)
    except msgspec.DecodeError as exc:
        raise BlobError(ref.digest, f"content is not a valid value: {exc}") from None


async def resolve(event: Event, get: BlobGet, keep: Collection[str] = ()) -> Event:
    """Return the event with its blob-held fields put back in place.

    `keep` names fields (`"TaskSucceeded.output"`) a reader leaves as references, because it
    never reads them or reads them later: they stay in `event.blobs`, their value the default.
    """
    if not event.blobs:
        return event
    kind = type(event).__name__
    types = {field.name: field.type for field in msgspec.structs.fields(type(event))}
    changes: dict[str, Any] = {}
    kept: dict[str, BlobRef] = {}
    for name, ref in event.blobs.items():
        if name not in types:
            raise BlobError(ref.digest, f"{kind} has no field {name!r}")
        if f"{kind}.{name}" in keep:
            kept[name] = ref
        else:
            changes[name] = await load_blob(ref, get, types[name])
    if not changes:
        return event
    return msgspec.structs.replace(event, blobs=kept, **changes)
