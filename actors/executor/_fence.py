"""The attempts one executor is running: one heartbeat loop keeps them all alive, and a fence
abandons each the moment it stops being this executor's to finish.

One loop beats for every running attempt, in one pipelined batch per interval, so 1,000
attempts in flight cost one timer and one publish round, not 1,000 tasks competing with the
work for the event loop. An attempt's first beat is its `TaskStarted`, sent once it has run
for half an interval at least (so within one and a half intervals of its start); an attempt
that ends sooner has none, its result saying who ran it and since when. The TaskReady is
acked once the stream has the one or the other.

An attempt is abandoned (its work cancelled, no more heartbeats, no result published) when
- the executor learns that the distributor timed it out (a `TaskTimedOut` for it arrives on
  the plain subscription the executor keeps), or
- the stream has had no sign of it for longer than the distributor's loss threshold
  (`Settings.lost_after_seconds`): the process was paused (SIGSTOP, a VM freeze), its loop
  stalled, or NATS was unreachable. The distributor has then timed the attempt out, or will on
  its next look, so its result could only arrive late.
A result that still arrives after its attempt was timed out (its executor never noticed) is
recorded as late by every fold and is never the task's result (docs/engine.md, "Fencing").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from bus import Bus, BusError, Delivery, ack
from config import Settings
from events import (
    EdgeFlagged,
    Event,
    OutputFlagged,
    TaskHeartbeat,
    TaskReady,
    TaskStarted,
    ToolRefused,
    derive_id,
    now,
)
from llm import Call, Choice

if TYPE_CHECKING:
    from ._mcp import ToolCall

__all__ = ["Attempt", "Fence", "run_key"]

_log = structlog.get_logger("ymera.executor")
AttemptKey = tuple[str, str, int]  # run, task id, attempt


def run_key(event: Event) -> str:
    """What an attempt's ids are derived from and its cancellation keyed by: its run (a TaskReady
    from before runs has none, and then its workflow id stands for its only run)."""
    return event.run_id or event.workflow_id


@dataclass
class Attempt:
    ready: TaskReady
    msg: Delivery  # the TaskReady's delivery, acked once the stream has TaskStarted or the result
    # time.monotonic() when the attempt began, then when the newest sign of life the stream has
    # (TaskStarted, then each acknowledged heartbeat) was stamped: the distributor measures
    # silence from its `ts`.
    alive_at: float
    started_at: datetime
    work: asyncio.Task[Event] | None = None
    began: float = 0.0  # time.monotonic() at the start (set from alive_at)
    started: bool = False  # its TaskStarted is in the stream
    acked: bool = False
    beat: int = 0
    abandoned: str | None = None
    calls: list[Call] = field(default_factory=list)  # the records of its LLM calls, as they are made
    choices: list[tuple[int, Choice]] = field(default_factory=list)  # the models chosen, for which call
    # What the scans found (untrusted inputs bound for its prompt, its output) and what a tool
    # refused, published with the result.
    flagged: list[EdgeFlagged | OutputFlagged | ToolRefused] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)  # its MCP calls, as they are made (`_mcp.py`)

    def __post_init__(self) -> None:
        self.began = self.alive_at

    @property
    def key(self) -> AttemptKey:
        return (run_key(self.ready), self.ready.task_id, self.ready.attempt)

    async def ack(self) -> None:
        """Let the TaskReady go (once): unacked, it would be redelivered to another executor."""
        if self.acked:
            return
        self.acked = True
        try:
            await ack(self.msg)
        except BusError as exc:  # redelivered, it is found ended (`Executor._ended_already`)
            _log.warning("TaskReady not acked", workflow=self.ready.workflow_id, task=self.ready.task_id,
                         attempt=self.ready.attempt, error=str(exc))

    def cancel(self) -> None:
        if self.work is not None:
            self.work.cancel()


class Fence:
    def __init__(self, settings: Settings, executor_id: str, actor: str) -> None:
        self.settings = settings
        self.executor_id = executor_id
        self.actor = actor
        self.running: dict[AttemptKey, Attempt] = {}

    def add(self, attempt: Attempt) -> None:
        self.running[attempt.key] = attempt

    def remove(self, attempt: Attempt) -> None:
        if self.running.get(attempt.key) is attempt:
            del self.running[attempt.key]

    def of_run(self, run: str) -> list[Attempt]:
        return [a for a in self.running.values() if run_key(a.ready) == run]

    def silent_for(self, attempt: Attempt, at: float | None = None) -> float:
        return (time.monotonic() if at is None else at) - attempt.alive_at

    def still_ours(self, attempt: Attempt) -> bool:
        """Whether the attempt may still report: not abandoned, and not silent past the loss threshold."""
        if attempt.abandoned is None and self.silent_for(attempt) > self.settings.lost_after_seconds:
            self.abandon(attempt, f"no heartbeat reached the stream for {self.silent_for(attempt):.1f}s "
                                  f"(the distributor times an attempt out after {self.settings.lost_after_seconds:g}s)")
        return attempt.abandoned is None

    def abandon(self, attempt: Attempt, reason: str) -> None:
        if attempt.abandoned is not None:
            return
        attempt.abandoned = reason
        attempt.cancel()
        _log.warning("attempt abandoned", workflow=attempt.ready.workflow_id, task=attempt.ready.task_id,
                     attempt=attempt.ready.attempt, reason=reason)

    def timed_out(self, key: AttemptKey, reason: str) -> None:
        attempt = self.running.get(key)
        if attempt is not None:
            self.abandon(attempt, f"the distributor timed it out: {reason}")

    async def beat(self, bus: Bus, stop: asyncio.Event) -> None:
        """Every heartbeat interval, one batch: a TaskStarted for each attempt that has run half
        an interval and has none yet, a TaskHeartbeat for every other attempt still ours."""
        interval = self.settings.heartbeat_seconds
        next_at = time.monotonic() + interval
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic())
            stamped, ts = time.monotonic(), now()
            due = [a for a in list(self.running.values())
                   if (a.started or stamped - a.began >= interval / 2) and self.still_ours(a)]
            if not due:
                continue
            beats: list[Event] = [self._beat(a, ts) for a in due]
            try:
                await bus.publish_many(beats)
            except BusError as exc:
                _log.warning("heartbeats not published", attempts=len(beats), error=str(exc))
                continue
            for a in due:
                a.alive_at = max(a.alive_at, stamped)
                a.started = True
                await a.ack()

    def _beat(self, a: Attempt, ts: datetime) -> Event:
        r = a.ready
        common: dict[str, Any] = {"ts": ts, "workflow_id": r.workflow_id, "run_id": r.run_id, "causation_id": r.id,
                  "actor": self.actor, "task_id": r.task_id, "attempt": r.attempt, "executor": self.executor_id}
        if not a.started:
            return TaskStarted(id=derive_id(run_key(r), "TaskStarted", r.task_id, r.attempt, key=self.settings.id_key),
                               **common)
        a.beat += 1
        return TaskHeartbeat(id=derive_id(run_key(r), "TaskHeartbeat", r.task_id, r.attempt, a.beat,
                                          key=self.settings.id_key), **common, beat=a.beat)
