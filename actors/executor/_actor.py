"""The executor: runs one attempt of one task, checks its outcome, and reports it. Many may run side by side.

Listens to: TaskReady, through the consumer `executor` that every executor process shares,
so adding processes scales execution out.
Emits: TaskSucceeded (the output met the task's `expect`) or TaskFailed (it did not, or the
attempt failed), each naming the executor and when the attempt began, a success of a kind no
model writes with its score (`TaskSucceeded.quality`, by the assessor's rules: `.._quality`);
for an attempt that outlives its first heartbeat, TaskStarted and then a TaskHeartbeat per
interval (one batch for all its attempts, `_fence.py`); before an attempt's result, a ModelChosen for each
choice of model (`llm.Selector`: which, among which candidates, why) and an LLMCalled for
each call it made to a model (`llm/`), whatever came of it, and before each call a CallReserved
(`_pools.py`: every executor folds every executor's reservations and records, so key pools
and budgets are shared and outlive a restart); with a result whose output held secrets,
personal data or harmful content, an OutputFlagged (`_screen.py`: the first two redacted in
the result); with an llm or agent task's result, an EdgeFlagged for each untrusted input bound
for its prompt in which the input sanitiser found something (`_edges.py`: read before the call;
a high or critical finding fails the attempt, and no model is called); with the failure of an
attempt a built-in tool refused or stopped at a limit, a ToolRefused (`_tools_refusal.py`).
Acks a TaskReady once the stream has the attempt's TaskStarted or its result, whichever comes
first: an executor that dies before either leaves it to be redelivered to another.
Decides: nothing about retries. A failure is reported with its kind and whether a retry
could help; the distributor alone decides. Results are per attempt (their ids name the
attempt); the distributor takes the result of the attempt it is waiting for and records
any other as late. An attempt the executor learns was timed out (TaskTimedOut), or whose
heartbeats stopped reaching the stream for longer than the loss threshold, is abandoned:
no more heartbeats, no result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

import llm
from actors.registry import TASK_KINDS, Context
from bus import (
    Bus,
    BusError,
    ConsumerPolicy,
    Delivery,
    PullBatches,
    ack,
    check_consumer,
    deliveries,
    fit_consumer,
    run_worker,
)
from config import Settings
from events import (
    BlobError,
    CheckResult,
    EdgeFlagged,
    Event,
    EventTooLarge,
    MalformedEvent,
    OutputFlagged,
    TaskFailed,
    TaskReady,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowCancelled,
    derive_id,
    load_blob,
    now,
    subject_filter,
)

from .._checks import check_outcome, failure_line
from .._outcome import TaskError
from .._quality import score_in_attempt
from ._edges import Edge, blocking_reason, scan_edges
from ._fence import Attempt, Fence, run_key
from ._judge import judge
from ._kinds import context, never_awaits, run_task
from ._mcp import record as record_tool_calls
from ._measures import Measures
from ._pools import SharedPools
from ._records import called, tool_called
from ._replay import RecordedRuns
from ._screen import screen
from ._tools_refusal import ToolRefusal, refused_event

__all__ = ["Executor"]

_log = structlog.get_logger("ymera.executor")
CONSUMER = "executor"
SUBJECT = subject_filter(TaskReady)
# An executor acks a TaskReady once the stream has the attempt's TaskStarted (at most one and a
# half heartbeat intervals in) or its result, so an unacked one belongs to an executor that
# died before either: hand it to another one soon, but not before then (`Executor.policy`).
POLICY = ConsumerPolicy(ack_wait=5.0, max_deliver=5)
# Bounded error text: a stack trace must not make the event too large to publish.
MAX_ERROR_CHARS = 2000


class Executor:
    name = "executor"

    def __init__(self, settings: Settings, executor_id: str) -> None:
        self.settings = settings
        self.executor_id = executor_id
        self.running: set[asyncio.Task[None]] = set()
        self.fence = Fence(settings, executor_id, self.name)
        self.cancelled: set[str] = set()
        self.concurrency = settings.executor_concurrency
        self.bus: Bus | None = None  # set by `start`, for the subscriptions' callbacks
        self.ctx: Context | None = None  # the handlers' resources, from `start` to `finish`
        self.shared: SharedPools | None = None  # the key pools and budgets every executor shares
        self.recorded = RecordedRuns()  # what answers replayed attempts' calls
        self._resources = contextlib.AsyncExitStack()

    def policy(self) -> ConsumerPolicy:
        """`POLICY`, its ack wait past the first heartbeat (when TaskStarted lets the TaskReady go)."""
        return msgspec.structs.replace(POLICY, ack_wait=max(POLICY.ack_wait, 2 * self.settings.heartbeat_seconds))

    async def run(self, bus: Bus, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Take attempts until `stop`; then finish the ones running (graceful shutdown)."""
        await run_worker(self, bus, stop, ready)

    # ---- on the runtime (`bus.run_worker`) --------------------------------------------------

    async def start(self, bus: Bus) -> PullBatches:
        self.bus = bus
        policy = fit_consumer(self.policy(), bus.stream)
        check_consumer(CONSUMER, policy, bus.stream)
        # The handlers' resources, among them a connection per attempt that may run: fewer would
        # queue attempts inside the client, inflating their duration_ms (BENCHMARKS.md, "1,000
        # LLM calls in flight").
        self.ctx = await self._resources.enter_async_context(context(self.settings, self.concurrency))
        if self.ctx.llm.pools:  # every executor's calls, the last day's first (`_pools.py`)
            self.shared = SharedPools(self.ctx.llm, self.executor_id)
            self._resources.push_async_callback(self.shared.stop)
            await self.shared.start(bus)
        measures = Measures(self.ctx.llm.tracker)  # what the selector knows of the models
        self._resources.push_async_callback(measures.stop)
        await measures.start(bus)
        # Cancellations and timeouts reach running attempts at once, through plain subscriptions:
        # one missed while this executor was down concerns no attempt it is running.
        for kind, callback in ((WorkflowCancelled, self._on_cancelled), (TaskTimedOut, self._on_timed_out)):
            subscription = await bus.subscribe(subject_filter(kind), callback)
            self._resources.push_async_callback(subscription.stop)
        beating_stop = asyncio.Event()
        beating = asyncio.create_task(self.fence.beat(bus, beating_stop))
        self._resources.push_async_callback(_stopped, beating, beating_stop)
        batches = await bus.reader(CONSUMER, policy, subjects=(SUBJECT,), new_only=True, shared=True,
                                   batch=self.concurrency, poll=0.05)
        _log.info("executor started", executor=self.executor_id, concurrency=self.concurrency)
        return batches

    def room(self) -> int:
        return max(self.concurrency - len(self.running), 0)

    async def handle(self, msgs: Sequence[Delivery]) -> None:
        assert self.ctx is not None
        for msg in msgs:
            task = asyncio.create_task(self._attempt(self._bus(), self.ctx, msg))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def between(self) -> None:
        if self.running and not self.room():
            await asyncio.wait(self.running, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)

    async def finish(self, graceful: bool) -> None:
        """Fetching has stopped: let the attempts running end and report (on a crash too: each
        one's result is still its own), then stop heartbeating and close the resources."""
        try:
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
        finally:
            await self._resources.aclose()
            self.ctx = None

    async def _attempt(self, bus: Bus, ctx: Context, msg: Delivery) -> None:
        try:
            await self._attempt_once(bus, ctx, msg)
        except BusError as exc:
            # Unacked, the TaskReady comes back; started, the attempt is timed out and retried.
            _log.warning("attempt not reported", error=str(exc))

    async def _attempt_once(self, bus: Bus, ctx: Context, msg: Delivery) -> None:
        try:
            ready = await bus.read(msg)
        except (MalformedEvent, BlobError) as exc:
            if isinstance(exc, BlobError):
                _log.warning("task not started: a blob cannot be read", subject=msg.subject, error=str(exc))
            await ack(msg)  # the store writer records it as MessageRejected
            return
        if not isinstance(ready, TaskReady):
            await ack(msg)
            return
        if deliveries(msg) > 1 and await self._ended_already(bus, ready):
            await ack(msg)
            return
        attempt = Attempt(ready, msg, alive_at=time.monotonic(), started_at=now())
        attempt.work = asyncio.create_task(self._run(bus, ctx, attempt))
        self.fence.add(attempt)
        try:
            result = await attempt.work
        except asyncio.CancelledError:
            if attempt.abandoned is not None:
                await self._publish_calls(bus, attempt)  # no result, but the calls were made (and paid)
                return  # unacked, if it never started: another executor gets it
            if run_key(ready) not in self.cancelled:
                raise
            result = self._failed(attempt, 0.0, "the workflow was cancelled", "cancelled", False, None)
        finally:
            self.fence.remove(attempt)
        # A result that could only arrive late is not published (`_fence.py`).
        if not self.fence.still_ours(attempt):
            await self._publish_calls(bus, attempt)
            return
        # The attempt's LLM calls go first, pipelined with the result: a reader of the result
        # finds what it cost in the stream before it.
        calls = await bus.send(called(attempt, *self._who)) if attempt.calls or attempt.choices else None
        try:
            await bus.publish_many([*tool_called(attempt, *self._who), *attempt.flagged, result])
        except EventTooLarge as exc:  # an output over the blob limit: no retry makes it smaller
            await bus.publish(self._failed(attempt, 0.0, f"the result cannot be published: {exc}", "error", False,
                                           None))
        if calls is not None:
            await calls
        await attempt.ack()

    @property
    def _who(self) -> tuple[str, str, bytes | None]:
        """What an attempt's records name: this actor, this executor, the deployment's id key."""
        return self.name, self.executor_id, self.settings.id_key

    async def _publish_calls(self, bus: Bus, attempt: Attempt) -> None:
        if attempt.calls or attempt.choices:
            try:
                await bus.publish_many(called(attempt, *self._who))
            except BusError as exc:
                _log.warning("LLM calls not recorded", task=attempt.ready.task_id, error=str(exc))

    async def _ended_already(self, bus: Bus, ready: TaskReady) -> bool:
        """Whether a redelivered attempt has ended already: its first executor published its
        result but died before acking, or held it (paused) until the distributor timed it out.
        Either way it is no one's to run any more."""
        for kind in (TaskSucceeded, TaskFailed, TaskTimedOut):
            try:
                last = await bus.last(subject_filter(kind, ready.workflow_id, ready.task_id))
            except MalformedEvent:
                continue
            if last is None:
                continue
            if run_key(last) == run_key(ready) and getattr(last, "attempt", 0) >= ready.attempt:
                _log.warning("redelivered attempt not run: it has ended", workflow=ready.workflow_id,
                             task=ready.task_id, attempt=ready.attempt, ended=type(last).__name__)
                return True
        return False

    def _bus(self) -> Bus:
        assert self.bus is not None, "the executor is not running"
        return self.bus

    async def _on_cancelled(self, msg: Delivery) -> None:
        try:
            cancelled = self._bus().decode_msg(msg)
        except MalformedEvent:
            return
        run = run_key(cancelled)
        attempts = self.fence.of_run(run)
        if attempts:
            self.cancelled.add(run)
            for attempt in attempts:
                attempt.cancel()

    async def _on_timed_out(self, msg: Delivery) -> None:
        try:
            event = self._bus().decode_msg(msg)
        except MalformedEvent:
            return
        if isinstance(event, TaskTimedOut):
            self.fence.timed_out((run_key(event), event.task_id, event.attempt), event.reason)

    async def _run(self, bus: Bus, ctx: Context, attempt: Attempt) -> Event:
        ready = attempt.ready
        assert ready.spec is not None
        t0 = time.perf_counter()
        try:
            replay = await self.recorded.of(bus, ready)
        except BusError as exc:
            return self._failed(attempt, t0, str(exc), "error", True, None)
        try:
            inputs = await self._inputs(bus, ready)
            kind = TASK_KINDS.get(ready.spec.type)
            if ready.untrusted_inputs and kind is not None and kind.llm:
                edges = await scan_edges(ready.spec, kind, inputs, set(ready.untrusted_inputs))
                attempt.flagged.extend(self._edge_flagged(attempt, edge) for edge in edges if edge.findings)
                blocked = blocking_reason(edges)
                if blocked is not None:
                    return self._failed(attempt, t0, blocked, "untrusted_input", False, None)
            allowed = ready.timeout_seconds or self.settings.task_timeout_seconds
            record: llm.Recording | None = None
            if never_awaits(ready.spec.type):  # it calls no model and no tool: nothing to record
                outcome = await run_task(ready.spec, inputs, ctx, timeout=allowed)
            else:
                gate = (self.shared.gate(bus, ready, self.settings) if self.shared is not None and replay is None
                        else None)
                with (llm.recording(gate, replay, tried=tuple(ready.tried_models), upgrade=ready.upgrade) as record,
                      record_tool_calls(attempt.tool_calls)):
                    attempt.calls, attempt.choices = record.calls, record.choices
                    outcome = await run_task(ready.spec, inputs, ctx, timeout=allowed)
        except TaskError as exc:
            if isinstance(exc, ToolRefusal):
                attempt.flagged.append(refused_event(exc, ready, self.name, self.settings.id_key))
            return self._failed(attempt, t0, str(exc), exc.kind, exc.retryable, exc.retry_after, exc.model)
        except (BusError, BlobError) as exc:
            return self._failed(attempt, t0, f"could not read an input: {exc}", "error", isinstance(exc, BusError),
                                None)
        except Exception as exc:  # a bug in a task kind must not take the executor down
            _log.exception("task kind crashed", task=ready.task_id, workflow=ready.workflow_id)
            return self._failed(attempt, t0, f"{type(exc).__name__}: {exc}", "error", True, None)
        # The outcome check is part of the attempt: an output that fails it is a failed attempt,
        # and the task's retry policy decides what follows.
        checks = await check_outcome(ready.spec, outcome.output)
        if not all(check.passed for check in checks):
            return self._failed(attempt, t0, failure_line(checks), "outcome", True, None, outcome.model, checks)
        # What flows on is scanned first: secrets and personal data redacted (`_screen.py`).
        output, found = await screen(outcome.output)
        if found.findings:
            attempt.flagged.append(OutputFlagged(
                id=derive_id(run_key(ready), "OutputFlagged", ready.task_id, ready.attempt, key=self.settings.id_key),
                ts=now(), workflow_id=ready.workflow_id, run_id=ready.run_id, causation_id=ready.id, actor=self.name,
                task_id=ready.task_id, attempt=ready.attempt, findings=found.findings, redacted=found.redacted,
                truncated=found.truncated))
        # A model task's answer is graded by the judge, where one is configured (`_judge.py`).
        judged, unjudged = None, ""
        if kind is not None and kind.llm and self.settings.judge.model is not None:
            assert record is not None  # a model's kind awaits: its calls were recorded
            # Within the attempt's own time limit, which the distributor holds the result to.
            left = allowed - (time.perf_counter() - t0)
            with llm.recording_again(record, "judge"):
                judged, unjudged = await judge(ready.spec, inputs, output, self.settings, ctx.llm, left)
        duration_ms = (time.perf_counter() - t0) * 1000
        # What no model wrote is scored here, by the assessor's rules: no `TaskAssessed` follows.
        # Should the scorer fail, the success goes without a score, and the assessor scores it.
        limit = ready.spec.timeout_seconds or self.settings.task_timeout_seconds
        try:
            quality = await score_in_attempt(ready.spec, output, duration_ms=duration_ms, checks=checks,
                                             timeout_seconds=limit)
        except Exception:
            _log.exception("scoring failed: left to the assessor", task=ready.task_id, workflow=ready.workflow_id)
            quality = None
        return TaskSucceeded(id=derive_id(run_key(ready), "TaskSucceeded", ready.task_id, ready.attempt,
                                          key=self.settings.id_key),
                             **self._common(attempt), output=output, duration_ms=duration_ms, model=outcome.model,
                             cost_usd=outcome.cost_usd, usage=outcome.usage,
                             replay_of=ready.replay_of if attempt.calls else None, checks=checks,
                             judged=judged, unjudged=unjudged, quality=quality)

    def _edge_flagged(self, attempt: Attempt, edge: Edge) -> EdgeFlagged:
        ready = attempt.ready
        return EdgeFlagged(id=derive_id(run_key(ready), "EdgeFlagged", ready.task_id, ready.attempt, edge.from_task,
                                        key=self.settings.id_key),
                           ts=now(), workflow_id=ready.workflow_id, run_id=ready.run_id, causation_id=ready.id,
                           actor=self.name, task_id=ready.task_id, attempt=ready.attempt, from_task=edge.from_task,
                           findings=edge.findings, blocked=bool(edge.blocking))

    def _common(self, attempt: Attempt) -> dict[str, Any]:
        ready = attempt.ready
        return {"ts": now(), "workflow_id": ready.workflow_id, "run_id": ready.run_id, "causation_id": ready.id,
                "actor": self.name, "task_id": ready.task_id, "attempt": ready.attempt,
                "executor": self.executor_id, "started_at": attempt.started_at}

    def _failed(self, attempt: Attempt, t0: float, error: str, kind: str, retryable: bool,
                retry_after: float | None, model: str | None = None,
                checks: list[CheckResult] | None = None) -> TaskFailed:
        ready = attempt.ready
        return TaskFailed(id=derive_id(run_key(ready), "TaskFailed", ready.task_id, ready.attempt,
                                       key=self.settings.id_key),
                          **self._common(attempt), error=error[:MAX_ERROR_CHARS], retryable=retryable, kind=kind,
                          retry_after_seconds=retry_after, model=model, checks=checks or [],
                          duration_ms=(time.perf_counter() - t0) * 1000 if t0 else 0.0)

    async def _inputs(self, bus: Bus, ready: TaskReady) -> dict[str, Any]:
        """The dependencies' outputs: inline, or loaded from the blobs of those too large to travel."""
        inputs = dict(ready.inputs)
        for task_id, ref in ready.input_refs.items():
            inputs[task_id] = await load_blob(ref, bus.get_blob)
        return inputs


async def _stopped(beating: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    beating.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beating
