"""Key pools and budgets shared by every executor: each folds every executor's reservations
and call records, and reserves each of its own calls in the stream before making it.

Listens to: CallReserved and LLMCalled (`ymera.llm.>`), through an ordered reader of the
stream that starts a day back (the longest limit window, and the day's spend), so an
executor that starts, or starts again after a SIGKILL, rests the keys that were resting and
counts the calls and the spend already made before it takes its first task; then live.
Emits: CallReserved, one per call, before the call (`AttemptGate.admit`), published only if
nothing reached `ymera.llm.>` since this executor folded it (`Bus.publish_after`): a
reservation is decided on every reservation and record before it, so two executors never
take a key's last free slot, or a budget's last dollar, together. One that loses the race
reads what came first and decides again.
Decides: which key (`llm.KeyPool.choose`) and whether the budgets cover the call's estimate
(`llm.Ledger.refusal`); a call no budget covers is refused with the reason.
Its own reservations an executor applies as it makes them (at their seq), so those it skips
in the stream; every record, its own too, it applies as it reads it back, so what it decides
on is the stream. One it made before a restart is another process's now, and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

import structlog

import llm
from bus import Bus, BusError, Fenced, Follower, pending_after, stream_seq
from config import Settings
from events import CallReserved, LLMCalled, MalformedEvent, TaskReady, derive_id, domain_filter, now

from ._fence import run_key

__all__ = ["REPLAY", "AttemptGate", "SharedPools"]

_log = structlog.get_logger("ymera.executor")
REPLAY = timedelta(days=1)  # a key's day limit and the day's budget are the longest windows
LLM_SUBJECTS = domain_filter(LLMCalled)  # reservations and records: what a reservation is fenced on
_WAIT = 5.0  # seconds a read waits for the next message before it looks again


class SharedPools:
    """Folds the stream's reservations and records into `client`'s ledger (`client.ledger`,
    over its pools); `start` returns once the past is in."""

    def __init__(self, client: llm.LLMClient, executor_id: str) -> None:
        self.client = client
        self.ledger = client.ledger
        self.executor_id = executor_id
        self.folded = 0  # other executors' reservations and records folded
        self.seq = 0  # the last stream seq on LLM_SUBJECTS folded: where a reservation is fenced
        self.lost = 0  # reservations refused because another came first (decided again)
        self.caught_up = asyncio.Event()
        self.lock = asyncio.Lock()  # one reservation at a time from this executor
        self.version = 0  # moves on with every change to the ledger
        self._news = asyncio.Event()  # set (and replaced) at every change
        self._follower: Follower | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, bus: Bus) -> None:
        # From a day back; or, when the newest LLM event is older, from it: a fence names the
        # last message on the subjects, so that one must be folded too.
        last = await bus.last_stored(LLM_SUBJECTS)
        since = now() - REPLAY
        if last is not None and last[1] < since:
            self._follower = await bus.follow(last[0], LLM_SUBJECTS)
        else:
            self._follower = await bus.follow(subject=LLM_SUBJECTS, since=since)
        if await self._follower.pending() == 0 and last is None:
            self.caught_up.set()
        self._task = asyncio.create_task(self._fold(bus, self._follower))
        # The past first: a task taken before it is in could call a key that is resting.
        waiting = asyncio.ensure_future(self.caught_up.wait())
        done, _ = await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiting.cancel()
            self._task.result()  # its error (a BusError) is the start's
            raise BusError("the LLM call history ended before it was read")
        _log.info("key pools rebuilt", executor=self.executor_id, events=self.folded, seq=self.seq)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            # The flag as well as the cancel: a cancel that lands as a message arrives can be lost
            # inside nats-py's next_msg (asyncio.wait_for on Python 3.11), and the loop read on.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._follower is not None:
            await self._follower.stop()

    def gate(self, bus: Bus, ready: TaskReady, settings: Settings) -> AttemptGate:
        """What lets the calls of attempt `ready` through."""
        return AttemptGate(self, bus, ready, llm.Budgets(per_run=ready.budget_usd, per_day=settings.daily_budget_usd),
                           settings.id_key)

    async def reach(self, seq: int | None) -> None:
        """Until the fold has passed `seq` (None: until it moves at all)."""
        target = self.seq + 1 if seq is None else seq
        # A fold that does not get there in time (a slow stream): decide again all the same; the
        # fence refuses a decision on a stale view again.
        await self._until(lambda: self.seq >= target)

    async def settled(self) -> None:
        """Until the ledger changes (a hold ends here or elsewhere), or `_WAIT` has passed."""
        version = self.version
        await self._until(lambda: self.version > version)

    def advanced(self, seq: int) -> None:
        if seq > self.seq:
            self.seq = seq
            self.changed()

    def changed(self) -> None:
        """Wake whoever waits for the ledger to change."""
        self.version += 1
        self._news.set()
        self._news = asyncio.Event()

    async def _until(self, done: Callable[[], bool]) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_WAIT):
                while not done():
                    await self._news.wait()

    async def _fold(self, bus: Bus, follower: Follower) -> None:
        while not self._stopping:
            try:
                msg = await follower.next(_WAIT)
            except BusError as exc:
                if not self.caught_up.is_set():
                    raise
                _log.warning("other executors' LLM calls are no longer folded", executor=self.executor_id,
                             error=str(exc))
                return
            if msg is None:
                continue
            try:
                event = bus.decode_msg(msg)
            except MalformedEvent:
                event = None  # the store writer records it as MessageRejected
            # Its own reservations this executor applied as it made them, at their seq; every record,
            # its own too, it applies here, in stream order, so what it decides on is the stream.
            if isinstance(event, CallReserved) and event.executor != self.executor_id:
                self.ledger.reserve(event)
                self.folded += 1
            elif isinstance(event, LLMCalled):
                self.ledger.settle(llm.hold_of(event), event, event.run_id)
                self.folded += 1
            self.advanced(stream_seq(msg))
            if not self.caught_up.is_set() and pending_after(msg) == 0:
                self.caught_up.set()


class AttemptGate:
    """Lets one attempt's calls through: each reserved in the stream first (`llm.Gate`)."""

    def __init__(self, shared: SharedPools, bus: Bus, ready: TaskReady, budgets: llm.Budgets,
                 id_key: bytes | None = None) -> None:
        self.shared = shared
        self.id_key = id_key
        self.bus = bus
        self.ready = ready
        self.budgets = budgets
        self.calls = 0

    async def admit(self, target: llm.Target, tokens: int, cost: float | None) -> llm.Grant:
        shared = self.shared
        self.calls += 1
        pool = shared.client.pools.get(target.endpoint.name)
        while True:
            async with shared.lock:
                grant = await self._reserve(target, tokens, cost, pool)
            if grant is not None:
                return grant
            await shared.settled()  # calls in flight hold the budget: wait for one to end

    async def _reserve(self, target: llm.Target, tokens: int, cost: float | None,
                       pool: llm.KeyPool | None) -> llm.Grant | None:
        """The call reserved; None while calls in flight hold the budget it needs."""
        shared, ready = self.shared, self.ready
        while True:
            shared.ledger.expire()
            refused = shared.ledger.refusal(ready.run_id, cost, self.budgets, target.model)
            if refused is not None:
                if not refused.final:
                    return None
                raise llm.LLMError("budget", refused.reason, retryable=False)
            key_id = pool.choose(target.info, target.model) if pool is not None else None
            at = now()
            reserved = CallReserved(
                id=derive_id(run_key(ready), "CallReserved", ready.task_id, ready.attempt, self.calls,
                             shared.executor_id, key=self.id_key),
                ts=at, workflow_id=ready.workflow_id, run_id=ready.run_id, causation_id=ready.id, actor="executor",
                task_id=ready.task_id, attempt=ready.attempt, call=self.calls, provider=target.endpoint.name,
                model=target.model, key_id=key_id, tokens=tokens, cost_usd=cost, executor=shared.executor_id,
                holds_until=at + timedelta(seconds=ready.timeout_seconds or 300.0))
            try:
                ack = await self.bus.publish_after(reserved, LLM_SUBJECTS, shared.seq)
            except Fenced as lost:  # another reservation or record came first: read it, decide again
                shared.lost += 1
                await shared.reach(lost.last)
                continue
            shared.ledger.reserve(reserved)
            shared.advanced(ack.seq)
            return llm.Grant(key_id, llm.hold_id(ready.run_id, ready.task_id, ready.attempt, self.calls,
                                                 shared.executor_id))

    def done(self, grant: llm.Grant, call: llm.Call | None) -> None:
        """A call's record settles its hold when it is read back from the stream (the executor
        publishes it with the attempt's result), in stream order like everyone's; a call abandoned
        before its answer has none, and lets its key go now (its estimate stays spent)."""
        if call is None:
            self.shared.ledger.settle(grant.hold, None, self.ready.run_id)
            self.shared.changed()


