"""Moving large field values out of events into content-addressed blobs, and back.

An event over `INLINE_LIMIT` bytes has its declared `blob_fields` replaced by a `BlobRef`
(sha256 and size) in `event.blobs`; `resolve` puts the values back. Where the bytes live
is the caller's business (a JetStream object store, the SQLite store): this module only
takes `put` and `get` functions, so it stays free of I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ._catalog import Event
from ._codec import MAX_EVENT_BYTES, encode
from ._envelope import BlobRef
from ._errors import BlobError, EventTooLarge

__all__ = ["INLINE_LIMIT", "BlobGet", "BlobPut", "blob_ref", "check_blob", "offload", "resolve"]

INLINE_LIMIT = 64 * 1024
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
    if len(data) <= limit:
        return event, data
    refs = dict(event.blobs)
    changes: dict[str, Any] = {}
    for name in event.blob_fields:
        value = _encoder.encode(getattr(event, name))
        if len(value) < _MIN_BLOB:
            continue
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


async def resolve(event: Event, get: BlobGet) -> Event:
    """Return the event with every blob-held field put back in place."""
    if not event.blobs:
        return event
    types = {field.name: field.type for field in msgspec.structs.fields(type(event))}
    changes: dict[str, Any] = {}
    for name, ref in event.blobs.items():
        if name not in types:
            raise BlobError(ref.digest, f"{type(event).__name__} has no field {name!r}")
        data = check_blob(ref, await get(ref))
        changes[name] = msgspec.json.decode(data, type=types[name])
    return msgspec.structs.replace(event, blobs={}, **changes)
