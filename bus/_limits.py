"""Rate windows in a JetStream key-value bucket, so every process counts the same calls and a
restart forgets none of them.

One key per principal; its value is the msgpack list of the times (seconds since the epoch) of
the calls admitted in the principal's window. The bucket keeps one revision per key (history 1)
on file storage. Here a window is only read, and written back with compare-and-set on the
revision read: what a call may do is decided above the bus (guard/_ratelimit.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ._errors import BusError

if TYPE_CHECKING:
    from ._connection import Bus

__all__ = ["RATE_BUCKET", "RateWindow", "RateWindows"]

RATE_BUCKET = "YMERA_RATES"
# A principal made only of these characters is its own key (readable in `nats kv ls`); any
# other is base32 of its UTF-8, the KV key alphabet being `[-/_=.a-zA-Z0-9]`.
_PLAIN = re.compile(r"[-_a-zA-Z0-9]{1,64}")
# Past this many bytes a principal is keyed by its SHA-256: a key is part of a NATS subject,
# and a subject must fit the server's 4 KB control line.
_LONGEST_ENCODED = 128

_decode_times = msgspec.msgpack.Decoder(tuple[float, ...]).decode
_encode_times = msgspec.msgpack.Encoder().encode


class RateWindow(msgspec.Struct, frozen=True):
    """A principal's admitted call times as read, and the revision a write must still find
    there (0: the principal has no key yet)."""

    times: tuple[float, ...]
    revision: int


class RateWindows:
    """`read(principal)` a principal's window; `write(principal, times, revision)` it back,
    False if another writer got there first."""

    def __init__(self, connection: Bus, bucket: str = RATE_BUCKET) -> None:
        self.js = connection.js
        self.bucket = bucket
        self._kv: KeyValue | None = None
        self._opening = asyncio.Lock()  # many first checks at once open the bucket once

    @staticmethod
    def key_of(principal: str) -> str:
        """The bucket key of `principal`: `p.<principal>` for a plain name, `b.<base32>` of any
        other, `h.<sha256 hex>` of one too long to spell out. The prefixes keep them apart."""
        if _PLAIN.fullmatch(principal):
            return f"p.{principal}"
        raw = principal.encode()
        if len(raw) > _LONGEST_ENCODED:
            return f"h.{hashlib.sha256(raw).hexdigest()}"
        return "b." + base64.b32encode(raw).decode().rstrip("=")

    async def _bucket(self) -> KeyValue:
        async with self._opening:
            if self._kv is None:
                try:
                    self._kv = await self.js.key_value(self.bucket)
                except nats.js.errors.BucketNotFoundError:
                    # Made the same way by every process: a second create of it is a no-op.
                    self._kv = await self.js.create_key_value(KeyValueConfig(
                        bucket=self.bucket, history=1, storage=StorageType.FILE,
                        description="Ymera sliding rate windows, one key per principal"))
            return self._kv

    async def read(self, principal: str) -> RateWindow:
        """The times admitted for `principal` as last written, and the revision they are at."""
        key = self.key_of(principal)
        try:
            entry = await (await self._bucket()).get(key)
        except nats.js.errors.KeyNotFoundError as exc:
            # A deleted key reads as none, but a write must name the deletion's revision.
            deleted = exc.entry.revision if exc.entry is not None and exc.entry.revision else 0
            return RateWindow((), deleted)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"rate window of principal {principal!r}: read from bucket {self.bucket} failed: "
                           f"{_describe(exc)}") from exc
        try:
            times = _decode_times(entry.value or b"")
        except msgspec.DecodeError as exc:
            raise BusError(f"rate window of principal {principal!r} (key {key} in bucket {self.bucket}) "
                           f"is not a list of times: {exc}") from None
        assert entry.revision is not None
        return RateWindow(times, entry.revision)

    async def write(self, principal: str, times: Sequence[float], revision: int) -> bool:
        """Store `times` as `principal`'s window if it is still at `revision` (0: if it has no
        key); False, and nothing stored, if another write came first."""
        try:
            await (await self._bucket()).update(self.key_of(principal), _encode_times(times), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"rate window of principal {principal!r}: write to bucket {self.bucket} failed: "
                           f"{_describe(exc)}") from exc
        return True


def _describe(exc: BaseException) -> str:
    return str(exc).removeprefix("nats: ") or type(exc).__name__
