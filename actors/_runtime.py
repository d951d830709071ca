"""How an actor runs: rebuild its state from the stream, reconcile, then handle events as they come.

An actor is a fold with reactions. `apply(event)` updates its state and nothing else;
`react(event)` returns the events that one input causes; `reconcile(now)` returns every
event its state says should exist and may not yet: a ready task not released, a retry
that is due, a workflow whose last task ended. Reconciling is what makes a crash at any
moment harmless: after a restart the state is folded again from the stream (the log every
host can read), `reconcile` re-emits whatever the dead process had decided but not yet
published, and deterministic ids make anything it had published a dropped duplicate.

Single-instance actors (everything but the executor) read through their own durable
consumer, recreated on start just past what the rebuild folded, and ack a batch only after
the events it caused are published. A start restores the actor's last snapshot and folds
only the stream after it (actors/_snapshot.py); events the stream no longer holds are read
from the log (actors/_archive.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import structlog

from bus import (
    Bus,
    BusError,
    ConsumerPolicy,
    Delivery,
    PullBatches,
    ack,
    check_consumer,
    fit_consumer,
    pending_after,
    run_worker,
    stream_seq,
)
from config import Settings
from events import BlobError, Event, MalformedEvent, now, resolve, subject_filters

from ._archive import fold_archived, matcher
from ._snapshot import Snapshots

__all__ = ["Actor", "ActorWorker", "rebuild", "run_actor"]

_log = structlog.get_logger("ymera.actor")
E = TypeVar("E", bound=Event)
POLL_SECONDS = 0.05
# A tail shorter than this many stream seqs, and than a tenth of the stream, is read without
# server-side subject filters (`_fold_stream`).
UNFILTERED_TAIL = 20_000


class Actor:
    """Base of the single-instance actors. Subclasses set `name`, `reads` and `own`."""

    name: ClassVar[str]
    # The events this actor folds and reacts to, live and when rebuilding.
    reads: ClassVar[tuple[type[Event], ...]]
    # The events only this actor emits. It folds each when it decides it, so they are read
    # back only when rebuilding, never live: a delivery per decision saved.
    own: ClassVar[tuple[type[Event], ...]] = ()
    # Their subject filters, derived from them (`events.subject_filters`), never written: what
    # an actor listens to and what it folds cannot disagree.
    subjects: ClassVar[tuple[str, ...]]
    own_subjects: ClassVar[tuple[str, ...]]
    # How often `reconcile` runs while live (timers: retries, timeouts); None: only at start.
    tick_seconds: ClassVar[float | None] = None
    # How long a small batch waits for more (`bus.PullBatches`): for an actor off a step's
    # critical path, which then wakes once for events that trickle in, not once for each.
    linger_seconds: ClassVar[float] = 0.0
    # The attributes that hold the folded state, with their types: what a snapshot saves and
    # restores (actors/_snapshot.py). Bump `state_version` when `apply` changes meaning.
    state_fields: ClassVar[dict[str, Any]] = {}
    state_version: ClassVar[int] = 1
    # Every event reaches `apply` with its blob-held fields back in place, except these
    # (`"TaskSucceeded.output"`): fields the actor never reads, or reads later with `resolve`.
    by_reference: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.subjects = subject_filters(cls.reads)
        cls.own_subjects = subject_filters(cls.own)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus: Bus | None = None  # set by run_actor; for reading blobs

    async def resolve(self, event: E) -> E:
        """The event with its blob-held fields back in place, `by_reference` ones included."""
        if not event.blobs or self.bus is None:
            return event
        resolved: E = await resolve(event, self.bus.get_blob)  # type: ignore[assignment]
        return resolved

    def passes_over(self, data: bytes) -> bool:
        """Whether a message, by its bytes alone, holds nothing this actor would fold or react
        to, so it need not be decoded and checked (the assessor: a success scored in its
        attempt). Only what `apply` would change nothing for may be passed over."""
        return False

    def apply(self, event: Event) -> None:
        """Fold one event into the state. Deterministic: no I/O, no clock."""

    async def react(self, event: Event) -> list[Event]:
        """The events this input causes, decided on the state after `apply(event)`."""
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        """Every event the state says should exist by `at` and may not yet."""
        return []

    async def handle(self, batch: list[Event]) -> list[Event]:
        """Fold a batch and return what it causes: by default `apply` then `react`, event by event.
        An actor whose decisions are per workflow may fold the whole batch and decide once."""
        out: list[Event] = []
        for event in batch:
            self.apply(event)
            out.extend(await self.react(event))
        return out


async def rebuild(actor: Actor, bus: Bus, snapshots: Snapshots | None = None) -> int:
    """Restore the actor's snapshot, if it has a usable one, and fold every stored event on its
    subjects after it; return the stream seq folded through."""
    state = await bus.stream_state()
    last, first = state.last_seq, state.first_seq
    restored = await snapshots.load(state.created) if snapshots is not None else 0
    start = restored + 1
    subjects = [*actor.subjects, *actor.own_subjects]
    from_log = 0
    if first > start and last >= start:
        from_log = await fold_archived(actor, bus, subjects, start, first)
        start = first
    folded = from_log
    try:
        if last >= start:
            folded += await _fold_stream(actor, bus, subjects, start, last)
    finally:
        _log.info("rebuilt", actor=actor.name, events=folded, from_log=from_log, snapshot_seq=restored,
                  through_seq=max(last, restored))
    return max(last, restored)


async def _fold_stream(actor: Actor, bus: Bus, subjects: list[str], start: int, last: int) -> int:
    """Fold the stored events on `subjects` from seq `start` through `last`; return how many.

    A short tail of a long stream is read unfiltered and filtered here: creating a consumer
    with subject filters makes nats-server count its pending messages over every subject in
    the stream (a stream with a million events has nearly as many subjects), which at a
    million events took longer than reading the whole tail (bench/startup.py)."""
    tail = last - start + 1
    wanted = matcher(subjects) if tail < UNFILTERED_TAIL and tail * 10 < last else None
    folded = 0
    async with bus.replay(f"{actor.name}-rebuild", start, None if wanted is not None else subjects) as batches:
        while True:
            msgs = await batches.next()
            if not msgs:
                # Nothing pending on our subjects below `last`: we are through.
                consumer = await bus.consumer_state(batches.durable)
                if consumer is None:
                    # A restarted nats-server forgets the replay's in-memory consumer: what was
                    # read is not the whole history, and a state folded from it would be wrong
                    # for good (a snapshot would keep it). Crash; the restart rebuilds again.
                    raise BusError(f"rebuilding {actor.name}: the replay consumer is gone after {folded} "
                                   f"events (nats-server restarted?), before seq {last} was read")
                if consumer.num_pending == 0:
                    break
                continue
            for msg in msgs:
                if stream_seq(msg) > last:
                    return folded
                if wanted is not None and not wanted(msg.subject):
                    continue
                if actor.passes_over(msg.data):
                    folded += 1  # read, and nothing in it to fold
                    continue
                event = await _read(actor, bus, msg)
                if event is not None:
                    actor.apply(event)
                    folded += 1
            # Parsing the full metadata costs; once per batch tells whether more is coming.
            if pending_after(msgs[-1]) == 0:
                return folded
    return folded


class ActorWorker:
    """A single-instance actor on the runtime (`bus.run_worker`): rebuilt from its snapshot and
    the stream, reconciled, then fed its consumer's batches; `reconcile` again every
    `tick_seconds`, a snapshot between batches when one is due."""

    bus: Bus  # set by `start`

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.name = actor.name
        self.applied = 0  # the last stream seq folded
        self.snapshots: Snapshots | None = None
        self.next_tick = 0.0

    async def start(self, bus: Bus) -> PullBatches:
        actor = self.actor
        policy = fit_consumer(ConsumerPolicy(ack_wait=30.0, max_deliver=3), bus.stream)
        check_consumer(actor.name, policy, bus.stream)
        actor.bus = bus
        self.bus = bus
        self.snapshots = Snapshots(actor, bus)
        self.applied = await rebuild(actor, bus, self.snapshots)
        await _publish(bus, await actor.reconcile(now()))
        batches = await bus.reader(actor.name, policy, subjects=actor.subjects, start_seq=self.applied + 1,
                                   ack_all=True, batch=500, poll=POLL_SECONDS, linger=actor.linger_seconds)
        _log.info("actor started", actor=actor.name, resume_at=self.applied + 1)
        self.next_tick = time.monotonic() + (actor.tick_seconds or 0)
        return batches

    def room(self) -> int | None:
        return None

    async def handle(self, msgs: Sequence[Delivery]) -> None:
        batch: list[Event] = []
        for msg in msgs:
            seq = stream_seq(msg)
            if seq <= self.applied:
                continue  # folded already (a redelivery)
            self.applied = seq
            if self.actor.passes_over(msg.data):
                continue
            event = await _read(self.actor, self.bus, msg)
            if event is not None:
                batch.append(event)
        await _publish(self.bus, await self.actor.handle(batch))
        await ack(msgs[-1])

    async def between(self) -> None:
        actor = self.actor
        if actor.tick_seconds is not None and time.monotonic() >= self.next_tick:
            await _publish(self.bus, await actor.reconcile(now()))
            self.next_tick = time.monotonic() + actor.tick_seconds
        # Between batches: every output published, every input folded (actors/_snapshot.py).
        assert self.snapshots is not None
        self.snapshots.maybe_take(self.applied)

    async def finish(self, graceful: bool) -> None:
        if graceful and self.snapshots is not None:
            await self.snapshots.close(self.applied)


async def run_actor(actor: Actor, bus: Bus, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run until `stop` is set; finish the batch in hand, publish, ack, return."""
    await run_worker(ActorWorker(actor), bus, stop, ready)


async def _publish(bus: Bus, events: list[Event]) -> None:
    if events:
        await bus.publish_many(events)


async def _read(actor: Actor, bus: Bus, msg: Delivery) -> Event | None:
    """The event a message holds, its blobs resolved; None for what the store writer rejects."""
    try:
        return await bus.read(msg, actor.by_reference)
    except MalformedEvent:
        return None  # the store writer records it as MessageRejected
    except BlobError as exc:
        _log.warning("event skipped: a blob cannot be read", actor=actor.name, subject=msg.subject, error=str(exc))
        return None  # the store writer records it as MessageRejected too
