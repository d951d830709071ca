"""Events about the system rather than one workflow's plan: rejections and alerts."""

from __future__ import annotations

from typing import ClassVar, Literal

from ._envelope import EventBase

__all__ = ["AlertRaised", "AlertResolved", "Attested", "ChainCheckpoint", "MessageRejected", "attested_bytes",
           "checkpoint_bytes"]


class MessageRejected(EventBase, frozen=True, kw_only=True):
    """A message on `ymera.>` that is not a valid event. It is acked, never retried.

    `stream_seq` is where the bad message sits in the stream; `excerpt` is its start,
    bounded, so the log shows what arrived without storing an arbitrarily large payload.
    """

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "rejected"

    subject: str
    reason: str
    excerpt: str
    size: int
    stream_seq: int | None = None
    # "untrusted": a valid event not signed by the actor its type belongs to (forged, altered,
    # another actor's); "malformed": no valid event at all.
    kind: Literal["malformed", "untrusted"] = "malformed"


class ChainCheckpoint(EventBase, frozen=True, kw_only=True):
    """The store writer vouches for the log's head: at `head_seq` the chain's hash is
    `head_hash`, signed with its Ed25519 key (`key_id`, the public key beside it).

    Published into the stream, which keeps it apart from the log file: a log cut at the end,
    emptied, or rewritten and re-hashed no longer agrees with the checkpoints, and no one
    without the writer's key can make one that does (`ymera audit verify`).
    """

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "checkpoint"

    stream: str  # the stream the log copies (its seqs are the rows' seqs)
    head_seq: int
    head_hash: str  # hex
    signer: str = "store"
    key_id: str
    public_key: str  # base64 Ed25519
    signature: str  # base64, over `checkpoint_bytes`


def checkpoint_bytes(stream: str, head_seq: int, head_hash: str) -> bytes:
    """What a checkpoint's signature covers."""
    return f"ymera-checkpoint\n{stream}\n{head_seq}\n{head_hash}".encode()


class Attested(EventBase, frozen=True, kw_only=True):
    """An actor vouches, after the fact, for what it sent: the leaf hashes (bus/_seal.py) of
    its messages `first`, `first + 1`, ... of one connection's run (`epoch`), signed with its
    Ed25519 key (`key_id`).

    Where the server enforces who publishes what (bus/_access.py), an actor sends each event
    at once with a short seal naming its key, epoch and number, and signs every few
    milliseconds what it sent since (bus/_attest.py): the signatures leave the critical path.
    Any actor may emit one (`events.ANY_ACTOR`); it proves itself, as `ymera audit verify`
    checks its signature against the key of the actor it names.
    """

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "attested"

    key_id: str
    epoch: str
    first: int
    leaves: bytes  # 16 bytes a message, in order
    signature: str  # base64, over `attested_bytes`


def attested_bytes(key_id: str, epoch: str, first: int, leaves: bytes) -> bytes:
    """What an attestation's signature covers."""
    return f"ymera-attest-v1\n{key_id}\n{epoch}\n{first}\n".encode() + leaves


class AlertRaised(EventBase, frozen=True, kw_only=True):
    """The monitor saw a metric cross its rule's threshold (docs/quality.md, "Alerts"). `ts` is
    the event time the rule was evaluated at, so a monitor rebuilt from the log raises it alike.
    `subject` names what the alert is about when a rule watches many (a model, a provider)."""

    domain: ClassVar[str] = "alert"
    verb: ClassVar[str] = "raised"

    alert: str
    severity: Literal["info", "warning", "critical"]
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    subject: str | None = None


class AlertResolved(EventBase, frozen=True, kw_only=True):
    """An alert's metric stayed back past its threshold, by the rules' margin, for the rules'
    number of checks in a row: the alert `raised_id` raised is over."""

    domain: ClassVar[str] = "alert"
    verb: ClassVar[str] = "resolved"

    alert: str
    raised_id: str
    message: str
    metric: str | None = None
    value: float | None = None
    subject: str | None = None
