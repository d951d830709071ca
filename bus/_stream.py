"""The YMERA stream, how long it keeps events, and the rules its consumers must keep.

Every handler is idempotent because its outputs have ids derived from its input and are
published with `Nats-Msg-Id`. That only holds while a redelivered input arrives inside the
stream's duplicate window, so a consumer whose redeliveries could outlast the window is
refused at start, not discovered in production.

Retention: the stream keeps every event unless told otherwise (`set_retention`); the
SQLite log is the archive. Actors start from a snapshot plus the stream's tail, so a stream
that drops old events is safe as long as every actor's snapshot is newer than what it
dropped (docs/operations.md, "Stream retention").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import msgspec
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from config import Settings
from events import ALL_SUBJECTS

from ._errors import ConsumerConfigError

__all__ = [
    "STREAM",
    "ConsumerPolicy",
    "StreamPolicy",
    "check_consumer",
    "consumer_config",
    "ensure_stream",
    "fit_consumer",
    "redelivery_span",
    "set_retention",
    "stream_policy",
]

STREAM = "YMERA"


class StreamPolicy(msgspec.Struct, frozen=True):
    name: str = STREAM
    duplicate_window: float = 120.0
    storage: str = "file"
    replicas: int = 1
    max_msg_size: int = 1024 * 1024


def stream_policy(settings: Settings) -> StreamPolicy:
    """The YMERA stream as the settings configure it; every process connects with it."""
    return StreamPolicy(duplicate_window=settings.duplicate_window_seconds)


class ConsumerPolicy(msgspec.Struct, frozen=True):
    """How a durable consumer redelivers what it was given and did not ack."""

    ack_wait: float = 30.0
    max_deliver: int = 4
    backoff: tuple[float, ...] = ()
    max_ack_pending: int = 10_000


def redelivery_span(policy: ConsumerPolicy) -> float:
    """Seconds from a message's first delivery to its last possible redelivery."""
    if policy.max_deliver < 1:
        return float("inf")
    waits = []
    for attempt in range(policy.max_deliver - 1):
        if policy.backoff:
            waits.append(policy.backoff[min(attempt, len(policy.backoff) - 1)])
        else:
            waits.append(policy.ack_wait)
    return float(sum(waits))


# A fitted consumer's redeliveries end within this share of the duplicate window.
FIT_SHARE = 0.75


def fit_consumer(policy: ConsumerPolicy, stream: StreamPolicy) -> ConsumerPolicy:
    """`policy`, or, when its redeliveries could outlast the stream's duplicate window (a window
    shortened by YMERA_DUPLICATE_WINDOW_SECONDS), `policy` with its waits shortened in
    proportion so that they end within `FIT_SHARE` of the window."""
    span = redelivery_span(policy)
    if span < stream.duplicate_window or span == float("inf"):
        return policy  # fits; or never ends, which check_consumer refuses
    scale = FIT_SHARE * stream.duplicate_window / span
    return msgspec.structs.replace(policy, ack_wait=policy.ack_wait * scale,
                                   backoff=tuple(wait * scale for wait in policy.backoff))


def check_consumer(name: str, policy: ConsumerPolicy, stream: StreamPolicy) -> None:
    span = redelivery_span(policy)
    if span >= stream.duplicate_window:
        raise ConsumerConfigError(name, span, stream.duplicate_window)


async def ensure_stream(js: JetStreamContext, policy: StreamPolicy) -> None:
    """Create the stream, or bring an existing one to `policy`. Safe to call from every process."""
    config = StreamConfig(
        name=policy.name,
        subjects=[ALL_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE if policy.storage == "file" else StorageType.MEMORY,
        discard=DiscardPolicy.OLD,
        duplicate_window=policy.duplicate_window,
        num_replicas=policy.replicas,
        max_msg_size=policy.max_msg_size,
    )
    try:
        info = await js.stream_info(policy.name)
    except NotFoundError:
        await js.add_stream(config)
        return
    current = info.config
    if (current.duplicate_window != config.duplicate_window
            or current.max_msg_size != config.max_msg_size
            or current.subjects != config.subjects):
        await js.update_stream(config)


async def set_retention(js: JetStreamContext, stream: str, *, max_age: float | None,
                        max_bytes: int | None) -> bool:
    """Bring the stream's limits to `max_age` seconds / `max_bytes` (0: no limit; None: leave
    as it is). Returns whether the stream was changed. Events past a limit are dropped, oldest
    first; the store writer has archived them in the log by then, unless it was down longer."""
    current = (await js.stream_info(stream)).config
    wanted_age = current.max_age if max_age is None else float(max_age)
    wanted_bytes = current.max_bytes if max_bytes is None else (max_bytes or -1)
    if (current.max_age or 0.0) == (wanted_age or 0.0) and (current.max_bytes or -1) == (wanted_bytes or -1):
        return False
    await js.update_stream(dataclasses.replace(current, max_age=wanted_age, max_bytes=wanted_bytes))
    return True


def consumer_config(durable: str, policy: ConsumerPolicy, *, subjects: Sequence[str] = (ALL_SUBJECTS,),
                    start_seq: int | None = None, new_only: bool = False, ack_all: bool = False) -> ConsumerConfig:
    """A durable consumer over `subjects`, from `start_seq`, or only new messages, or from the start."""
    deliver = DeliverPolicy.BY_START_SEQUENCE if start_seq else DeliverPolicy.NEW if new_only else DeliverPolicy.ALL
    return ConsumerConfig(
        durable_name=durable,
        deliver_policy=deliver,
        opt_start_seq=start_seq,
        ack_policy=AckPolicy.ALL if ack_all else AckPolicy.EXPLICIT,
        ack_wait=policy.ack_wait,
        max_deliver=policy.max_deliver,
        backoff=list(policy.backoff) or None,
        max_ack_pending=policy.max_ack_pending,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=list(subjects) if len(subjects) > 1 else None,
    )
