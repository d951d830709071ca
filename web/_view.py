"""The view: this process's projections of the log, rebuilt from the SQLite store, then followed live.

At `start` every projection (runs, metrics, the DAGs, the model calls, and any extra one, such as
/metrics' Prometheus projection) is folded from the stored log, read-only, in a thread of its own;
then the view follows the stream from the seq right after the last row it folded. A row's `seq` is
the JetStream stream sequence of the message it was stored from (docs/store.md; the store writer
resumes at the log's head + 1 and `ymera audit verify` compares row and message by it), so the log
holds everything up to its last row that the stream holds and the writer kept, and the stream holds
the rest. Messages before that row that left no row (malformed, forged, late copies) are ones the
fold of the stream would drop too.

Each event, rebuilt or live, passes one gate (`store.Once`, as `store.rebuild` and
`store.LiveProjection` fold) before every projection folds it, so a copy the stream holds twice is
folded once; a projection gets its blob-held fields in place but for those it names `by_reference`
(as with `store.rebuild`). Each event folded live is handed to the `Hub` (web/_live.py) too.

Nothing here writes: the log is opened read-only, the stream is read with an ordered consumer that
keeps no state on the server. Kill the process and start it again: it folds the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Any, Self

import structlog

import store
from actors import Settings
from bus import Bus, BusError, Delivery, stream_seq
from events import BLOB_FIELDS, BlobError, BlobRef, Event, MalformedEvent, WorkflowSubmitted, decode, resolve

from ._live import Hub
from ._routes_models import ModelCalls

__all__ = ["Dags", "View"]

_log = structlog.get_logger("ymera.web")

# What the runs projection reads: the tasks, the plan, the problems and the results; not the task
# outputs, inputs and specs, the tools' results, the model responses.
_RUNS_READ = frozenset({"WorkflowSubmitted.tasks", "WorkflowValidated.levels", "WorkflowValidated.critical_path",
                        "WorkflowInvalid.problems", "WorkflowCompleted.results", "WorkflowFailed.results"})
# How long the follower waits for a message before it looks whether it should stop.
POLL_SECONDS = 0.2
# How long it waits before following again after the stream could not be read.
RETRY_SECONDS = 1.0
# How long a read of the log waits for the store writer to reach what the view folded (`settled_log`).
LOG_WAIT_SECONDS = 0.5
STORE_CONSUMER = "store"  # the store writer's durable consumer


class Dags:
    """Projection "dags": run id -> task id -> the ids of the tasks it depends on, from each submission."""

    name = "dags"
    by_reference = BLOB_FIELDS - {"WorkflowSubmitted.tasks"}

    def initial(self) -> dict[str, dict[str, list[str]]]:
        return {}

    def apply(self, state: dict[str, dict[str, list[str]]], event: Event) -> dict[str, dict[str, list[str]]]:
        if isinstance(event, WorkflowSubmitted) and event.id not in state:
            state[event.id] = {task.id: list(task.dependencies) for task in event.tasks}
        return state


class _Runs(store.WorkflowRuns):
    """`store.WorkflowRuns`, told which blob-held fields it never reads (so a live fold fetches none of them)."""

    by_reference = BLOB_FIELDS - _RUNS_READ


def default_extra() -> list[store.Projection[Any]]:
    """The extra projections `ymera serve` folds: /metrics' (web/_metrics.py)."""
    from ._metrics import Prometheus

    return [Prometheus()]


def _by_reference(projection: store.Projection[Any]) -> frozenset[str]:
    """The blob-held fields a projection reads no value of (none, unless it says so), as `store.rebuild` reads it."""
    keep: Collection[str] = getattr(projection, "by_reference", frozenset())
    return frozenset(keep)


class View:
    """The projections of one log and its stream (module docstring). `View(settings, bus)`; `bus`
    None (`View.offline`): rebuilt from the log only, never followed."""

    def __init__(self, settings: Settings, bus: Bus | None, *,
                 extra: Sequence[store.Projection[Any]] | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.hub = Hub()
        self.log: store.EventLog = store.SqliteEventLog(settings.log_path, readonly=True)
        own: list[store.Projection[Any]] = [_Runs(), store.Metrics(), Dags(), ModelCalls()]
        self._projections = [*own, *(default_extra() if extra is None else extra)]
        names = [p.name for p in self._projections]
        if len(set(names)) != len(names):
            raise ValueError(f"two projections of the view share a name: {names}")
        self._keeps = [_by_reference(p) for p in self._projections]
        self._applies = [p.apply for p in self._projections]
        self._states: list[Any] = [p.initial() for p in self._projections]
        self.once = store.Once()
        self.last_seq = 0  # the last stream seq folded (a row of the log, or a message of the stream)
        self.rebuilt_seq = 0  # the last seq the rebuild from the log folded
        self.folded = 0  # events folded, rebuilt and live
        self.skipped: list[tuple[int, int]] = []  # seq ranges the stream no longer held when followed
        self.follow_error: str | None = None  # why following the stream failed last, until it works again
        self._progress = asyncio.Condition()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self.folded_any_live = False

    @classmethod
    def offline(cls, settings: Settings, *, extra: Sequence[store.Projection[Any]] | None = None) -> View:
        """A view rebuilt from the log alone (`await view.start()` or `async with`), never following a stream."""
        return cls(settings, None, extra=extra)

    async def settled_log(self, timeout: float = LOG_WAIT_SECONDS) -> store.EventLog:
        """The log, once the store writer has handled every seq this view folded (waiting at most
        `timeout`): what the windowed reports read from it is then as of the same event as the
        projections, though the writer lets a small batch wait a moment for more
        (`store.LINGER_SECONDS`). Offline, past the timeout, or with NATS not answering, the log
        as it is (a writer that is behind shows on /healthz)."""
        # The seq folded now, not what it folds meanwhile: under load that would be a moving target.
        deadline, target = time.monotonic() + timeout, self.last_seq
        while self.bus is not None:
            try:
                state = await self.bus.consumer_state(STORE_CONSUMER)
            except BusError:
                break
            if state is None or state.ack_floor_seq >= target or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.005)
        return self.log

    # ---- the projections' states ------------------------------------------------------------

    @property
    def runs(self) -> store.Runs:
        state: store.Runs = self._states[0]
        return state

    @property
    def metrics(self) -> store.MetricsState:
        state: store.MetricsState = self._states[1]
        return state

    @property
    def dags(self) -> dict[str, dict[str, list[str]]]:
        state: dict[str, dict[str, list[str]]] = self._states[2]
        return state

    @property
    def states(self) -> dict[str, object]:
        """The state of every projection but runs, metrics and dags, by its name ("model_calls", extras)."""
        return {p.name: s for p, s in zip(self._projections[3:], self._states[3:], strict=True)}

    # ---- life -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the log read-only, fold it, and (with a bus) follow the stream from just after it."""
        if self._started:
            raise RuntimeError("the view has started already")
        self._started = True
        await self.log.open()  # a StoreError naming the path when there is no log yet
        try:
            last, folded = await self.log.in_thread(self._rebuild)
        except BaseException:
            await self.log.close()
            raise
        self.rebuilt_seq = self.last_seq = last
        self.folded = folded
        _log.info("view rebuilt", log=str(self.log.path), through_seq=last, events=folded)
        if self.bus is not None:
            self._task = asyncio.create_task(self._follow(self.bus), name="ymera-web-view")

    async def stop(self) -> None:
        """Stop following and close the log. Safe to call twice."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self.log.close()

    async def wait_for(self, seq: int, timeout: float = 30.0) -> None:
        """Until every message up to stream seq `seq` has been folded; TimeoutError after `timeout`."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.last_seq >= seq), timeout)

    # ---- the fold ---------------------------------------------------------------------------

    def _rebuild(self, reader: store.LogReader) -> tuple[int, int]:
        """Fold every row (in a thread: nothing else touches the states until `start` returns)."""
        last = folded = 0
        admit = self.once.admit
        for rows in reader.scan("seq, data"):
            for _, data in rows:
                event = decode(data)
                if not admit(event):
                    continue
                if event.blobs:
                    self._apply_each(event, self._resolved_sync(event, reader))
                else:
                    self._apply_all(event)
                folded += 1
            last = rows[-1][0]
        return last, folded

    def _resolved_sync(self, event: Event, reader: store.LogReader) -> list[Event]:
        """The event as each projection reads it, its blobs read from the log's copies."""
        by_keep: dict[frozenset[str], Event] = {}
        for keep in self._keeps:
            if keep not in by_keep:
                by_keep[keep] = store.completed(resolve(event, reader.get_blob, keep))
        return [by_keep[keep] for keep in self._keeps]

    def _apply_all(self, event: Event) -> None:
        states = self._states
        for i, apply in enumerate(self._applies):
            states[i] = apply(states[i], event)

    def _apply_each(self, event: Event, resolved: list[Event]) -> None:
        states = self._states
        for i, apply in enumerate(self._applies):
            states[i] = apply(states[i], resolved[i])

    async def _resolved(self, event: Event, bus: Bus) -> list[Event]:
        """The event as each projection reads it, each blob fetched from the bucket once."""
        fetched: dict[str, bytes] = {}

        async def get(ref: BlobRef) -> bytes:
            if ref.digest not in fetched:
                fetched[ref.digest] = await bus.get_blob(ref)
            return fetched[ref.digest]

        by_keep: dict[frozenset[str], Event] = {}
        for keep in self._keeps:
            if keep not in by_keep:
                by_keep[keep] = await resolve(event, get, keep)
        return [by_keep[keep] for keep in self._keeps]

    async def _fold(self, msg: Delivery, bus: Bus) -> None:
        seq = stream_seq(msg)
        if seq <= self.last_seq:
            return  # folded already (a follower started again after an error)
        if seq > self.last_seq + 1 and not self.folded_any_live:
            self.skipped.append((self.last_seq + 1, seq - 1))
            _log.warning("the stream no longer holds the messages after the log's last row: not folded",
                         first=self.last_seq + 1, last=seq - 1)
        event: Event | None
        try:
            event = bus.decode_msg(msg)
            resolved = await self._resolved(event, bus) if event.blobs else None
        except (MalformedEvent, BlobError):
            event = None  # the store writer records it as MessageRejected (a later message)
        if event is not None and self.once.admit(event):
            if resolved is None:
                self._apply_all(event)
            else:
                self._apply_each(event, resolved)
            self.folded += 1
            self.hub.publish(seq, event)
        self.folded_any_live = True
        self.last_seq = seq

    async def _follow(self, bus: Bus) -> None:
        while not self._stop.is_set():
            try:
                follower = await bus.follow(self.last_seq + 1)
            except BusError as exc:
                await self._failed(exc)
                continue
            try:
                self.follow_error = None
                while not self._stop.is_set():
                    msgs = await follower.batch(500, POLL_SECONDS)
                    for msg in msgs:
                        await self._fold(msg, bus)
                    if msgs:
                        async with self._progress:
                            self._progress.notify_all()
            except BusError as exc:
                await self._failed(exc)
            except Exception:
                _log.exception("the view stopped following the stream")
                self.follow_error = "the view's follower crashed (see the server's log)"
                raise
            finally:
                with contextlib.suppress(BusError):
                    await follower.stop()

    async def _failed(self, exc: BusError) -> None:
        self.follow_error = str(exc)
        _log.warning("following the stream failed; trying again", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), RETRY_SECONDS)

