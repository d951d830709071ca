"""The loop every reader of a durable consumer runs: each actor, the executor, the store writer.

A `Worker` says how it starts (its state rebuilt, its consumer opened), how many messages it
can take now, what a batch does and what happens between batches; `run_worker` drives it the
same way for all of them: start, say ready, take batches until `stop`, then stop fetching
before the worker finishes what it holds, so a stop never leaves a message half-handled (an
unacked one is redelivered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ._pull import PullBatches
from ._reading import Delivery

if TYPE_CHECKING:
    from ._connection import Bus

__all__ = ["Worker", "run_worker"]


class Worker(Protocol):
    """What `run_worker` runs."""

    @property
    def name(self) -> str: ...

    async def start(self, bus: Bus) -> PullBatches:
        """Everything before the first batch (rebuild, reconcile, subscriptions); the reader."""
        ...

    def room(self) -> int | None:
        """How many messages it can take now: None, a full batch; 0, none (`between` waits)."""
        ...

    async def handle(self, msgs: Sequence[Delivery]) -> None:
        """Handle one batch; acking is the worker's (after what it causes is published)."""
        ...

    async def between(self) -> None:
        """After each turn, with or without a batch: timers, snapshots, waiting for room."""
        ...

    async def finish(self, graceful: bool) -> None:
        """After the last batch: in-flight work done, state flushed (`graceful`: on `stop`, not a crash)."""
        ...


async def run_worker(worker: Worker, bus: Bus, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run `worker` until `stop` is set: finish the batch in hand, stop fetching, then `finish`
    (which also runs after a crash, or a failed start: it must undo only what was done)."""
    batches: PullBatches | None = None
    graceful = False
    try:
        batches = await worker.start(bus)
        if ready is not None:
            ready.set()
        while not stop.is_set():
            room = worker.room()
            if room != 0:
                msgs = await batches.next(limit=room)
                if msgs:
                    await worker.handle(msgs)
            await worker.between()
        graceful = True
    finally:
        if batches is not None:
            await batches.stop()
        await worker.finish(graceful)
