"""The envelope every event carries, and the identifiers it is built from.

An event caused by another gets an id derived from its cause, so a handler that sees the
same input twice emits the same output ids and JetStream's duplicate window (and the
store's unique id) drop the copy.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import msgspec

from ._errors import InvalidId

__all__ = [
    "ID_RULE",
    "NO_WORKFLOW",
    "RESERVED_IDS",
    "BlobRef",
    "EventBase",
    "Name",
    "WorkflowId",
    "check_task_id",
    "check_workflow_id",
    "derive_id",
    "new_id",
    "now",
]

# Workflow and task ids become NATS subject tokens, so they may not hold '.', '*', '>' or
# spaces. '_' alone is reserved for events that belong to no workflow. One pattern serves the
# decoder (`Name`) and the clients' check before they publish (`check_id`).
_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
ID_RULE = "1 to 128 letters, digits, '_' or '-', starting with a letter or digit"
Name = Annotated[str, msgspec.Meta(pattern=f"^{_NAME_PATTERN}$")]
NO_WORKFLOW = "_"
RESERVED_IDS = {NO_WORKFLOW: "events that belong to no workflow"}
WorkflowId = Annotated[str, msgspec.Meta(pattern=f"^(_|{_NAME_PATTERN})$")]
_NAME = re.compile(_NAME_PATTERN)

# A fixed namespace makes derived ids stable across processes, hosts and releases.
_NAMESPACE = uuid.UUID("6f1c3f0e-8a51-4b55-9b7c-3c1d2f3a9e10")


def check_workflow_id(value: object) -> str:
    """`value` if a user may name a workflow so; else InvalidId naming it and the rule (or what reserves it)."""
    if isinstance(value, str) and value in RESERVED_IDS:
        raise InvalidId("workflow id", value, f"is reserved for {RESERVED_IDS[value]}")
    return _check("workflow id", value)


def check_task_id(value: object) -> str:
    """`value` if it can name a task; else InvalidId naming it and the rule."""
    return _check("task id", value)


def _check(what: str, value: object) -> str:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise InvalidId(what, value, f"is not valid: an id is {ID_RULE} (ids become NATS subject tokens)")


def new_id() -> str:
    """A fresh id for an event that has no cause (a submission, a command)."""
    return str(uuid.uuid4())


def derive_id(cause_id: str, kind: str, *parts: object, key: bytes | None = None) -> str:
    """The id of the event of `kind` caused by `cause_id`, the same on every redelivery. With
    `key` (the deployment's id key, `Settings.id_key`), an HMAC-SHA256 of the same under it:
    the same for every actor of the deployment, and not to be worked out by anyone without
    the key, who could otherwise publish an event's id before it and have the real one
    dropped as a copy."""
    joined = "\x1f".join([cause_id, kind, *(str(p) for p in parts)])
    if key is None:
        return str(uuid.uuid5(_NAMESPACE, joined))
    inner, outer = _hmac_states(key)
    h = inner.copy()
    h.update(joined.encode())
    o = outer.copy()
    o.update(h.digest())
    # Version 8 (a custom UUID) and the RFC 4122 variant, written into the first 16 bytes.
    n = int.from_bytes(o.digest()[:16], "big") & _UUID_CLEAR | _UUID_SET
    x = f"{n:032x}"
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x8000 << 64) | (0x8000 << 48)


@functools.lru_cache(maxsize=8)
def _hmac_states(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 under `key` with its two padded-key states hashed once (RFC 2104): an id
    then costs two copies and two short updates, against `hmac.new`'s keying per call."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


_SHA256_BLOCK = 64


def now() -> datetime:
    return datetime.now(UTC)


class BlobRef(msgspec.Struct, frozen=True):
    """A value stored once, by content, in the blob bucket; the event keeps only this."""

    digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, msgspec.Meta(ge=0)]


class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True,
                omit_defaults=True):
    """Fields shared by every event.

    Unknown fields are ignored, so a reader keeps working when a newer writer adds an
    optional field (schema evolution: add optional fields, never reuse a tag).

    `run_id` names the run an event belongs to: a workflow id names a workflow, each
    execution of it is a run, and a run's id is the id of the `WorkflowSubmitted` that
    started it (a submission needs no run id of its own; see `events.run_of`). Empty on
    events that belong to no run, and on events written before runs existed.

    `blobs` maps a field name to the blob that holds its value when the value was too large
    to travel inline; the field itself then holds its default. See `events.resolve`.
    """

    # Subclasses set these: the subject domain and the last subject token.
    domain: ClassVar[str]
    verb: ClassVar[str]
    # Fields whose values may be moved to a blob when the event would be too large: over
    # `inline_limit` bytes (events.INLINE_LIMIT, unless the type says less).
    blob_fields: ClassVar[tuple[str, ...]] = ()
    inline_limit: ClassVar[int] = 64 * 1024

    id: str
    ts: datetime
    workflow_id: WorkflowId
    run_id: str = ""
    causation_id: str | None = None
    actor: str = "client"
    blobs: dict[str, BlobRef] = {}
