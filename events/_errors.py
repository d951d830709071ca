"""The root of every error Ymera raises, and the errors of the event vocabulary.

    YmeraError
    ├── MalformedEvent        bytes that are not a valid event         (events)
    ├── EventTooLarge         an event over the limit even after blobs, or a value over the blob limit (events)
    ├── BlobError             a blob missing, or not matching its digest (events, store)
    ├── InvalidId             a workflow or task id that cannot name one (events; checked before publishing)
    ├── BusError                                                       (bus)
    │   ├── BusUnavailable    no NATS server answers at the URL
    │   ├── ServerStartError  the embedded nats-server did not start
    │   └── ConsumerConfigError  redelivery could outlast the duplicate window
    ├── StoreError                                                     (store)
    │   ├── StoreLocked       another writer holds the event log
    │   └── DuplicateEvent    an append held an id the log already has
    ├── SettingsError         a setting with a value of the wrong kind (actors)
    ├── GaveUpWaiting         a workflow did not end within the caller's timeout, and what became of it (ymera)
    └── TaskError             one attempt failed: kind, retryable, retry_after (actors.executor)

Each message reads as one line a user can act on; each error keeps its facts as fields.
"""

from __future__ import annotations

__all__ = ["BlobError", "EventTooLarge", "InvalidId", "MalformedEvent", "YmeraError"]


class YmeraError(Exception):
    """Base of every error Ymera raises on purpose."""


class MalformedEvent(YmeraError, ValueError):
    """Bytes that are not a valid event. `reason` is the sentence a user reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventTooLarge(YmeraError):
    """An event too large to publish: as a whole (`field` None), or one field's value too large
    even for a blob."""

    def __init__(self, event_type: str, size: int, limit: int, field: str | None = None) -> None:
        if field is None:
            message = (f"{event_type} is {size} bytes after moving its large fields to blobs, "
                       f"over the {limit}-byte event limit")
        else:
            message = f"{event_type}.{field} is {size} bytes, over the {limit}-byte limit of a blob"
        super().__init__(message)
        self.event_type = event_type
        self.size = size
        self.limit = limit
        self.field = field


class BlobError(YmeraError):
    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(f"blob {digest[:12]}…: {reason}")
        self.digest = digest
        self.reason = reason


class InvalidId(YmeraError):
    """A workflow or task id that breaks the id rule, or is reserved; raised before anything is published."""

    def __init__(self, what: str, value: object, rule: str) -> None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else \
            f"{value[:40]!r}… ({len(value)} characters)"
        super().__init__(f"{what} {shown} {rule}")
        self.what = what
        self.value = value
        self.rule = rule
