"""The attempts one executor is running: one heartbeat loop keeps them all alive, and a fence
abandons each the moment it stops being this executor's to finish.

One loop beats for every running attempt, in one pipelined batch per interval, so 1,000
attempts in flight cost one timer and one publish round, not 1,000 tasks competing with the
work for the event loop.

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
from dataclasses import dataclass

import structlog

from actors._settings import Settings
from bus import Bus, BusError
from events import Event, TaskHeartbeat, TaskReady, derive_id, now

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
    work: asyncio.Task[Event]
    # time.monotonic() when the newest sign of life the stream has (TaskStarted, then each
    # acknowledged heartbeat) was stamped: the distributor measures silence from its `ts`.
    alive_at: float
    beat: int = 0
    abandoned: str | None = None

    @property
    def key(self) -> AttemptKey:
        return (run_key(self.ready), self.ready.task_id, self.ready.attempt)


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
        attempt.work.cancel()
        _log.warning("attempt abandoned", workflow=attempt.ready.workflow_id, task=attempt.ready.task_id,
                     attempt=attempt.ready.attempt, reason=reason)

    def timed_out(self, key: AttemptKey, reason: str) -> None:
        attempt = self.running.get(key)
        if attempt is not None:
            self.abandon(attempt, f"the distributor timed it out: {reason}")

    async def beat(self, bus: Bus, stop: asyncio.Event) -> None:
        """Every heartbeat interval, one batch: a TaskHeartbeat per attempt still ours."""
        interval = self.settings.heartbeat_seconds
        next_at = time.monotonic() + interval
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic())
            stamped, ts = time.monotonic(), now()
            alive = [a for a in list(self.running.values()) if self.still_ours(a)]
            if not alive:
                continue
            beats = []
            for a in alive:
                a.beat += 1
                r = a.ready
                beats.append(TaskHeartbeat(
                    id=derive_id(run_key(r), "TaskHeartbeat", r.task_id, r.attempt, a.beat), ts=ts,
                    workflow_id=r.workflow_id, run_id=r.run_id, causation_id=r.id, actor=self.actor,
                    task_id=r.task_id, attempt=r.attempt, executor=self.executor_id, beat=a.beat))
            try:
                await bus.publish_many(beats)
            except BusError as exc:
                _log.warning("heartbeats not published", attempts=len(beats), error=str(exc))
                continue
            for a in alive:
                a.alive_at = max(a.alive_at, stamped)
