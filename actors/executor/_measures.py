"""What the selector knows of the models: the performance tracker (`llm.Tracker`), folded from
the stream by every executor.

Listens to: LLMCalled (latency, failures, cost per model and task type), TaskAssessed (the
assessor's quality score of a result, naming its model) and FeedbackGiven (people's ratings),
through ordered readers of the stream from `WINDOW` back, then live. Emits nothing.
Decides nothing: the selector reads the tracker when it chooses (`llm.Selector`). The past is
read in the background: an executor takes tasks at once, choosing on what it has read so far.
A replayed call (no provider called) measures nothing, nor does the score of a replayed result.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

import llm
from bus import Bus, BusError, Follower
from events import FeedbackGiven, LLMCalled, MalformedEvent, TaskAssessed, now, subject_filter

__all__ = ["WINDOW", "Measures"]

_log = structlog.get_logger("ymera.executor")
WINDOW = timedelta(days=30)  # how far back measurements count
SUBJECTS = tuple(subject_filter(kind) for kind in (LLMCalled, TaskAssessed, FeedbackGiven))
_WAIT = 5.0


class Measures:
    def __init__(self, tracker: llm.Tracker) -> None:
        self.tracker = tracker
        self.folded = 0
        self._followers: list[Follower] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self, bus: Bus) -> None:
        since = now() - WINDOW
        for subject in SUBJECTS:
            follower = await bus.follow(subject=subject, since=since)
            self._followers.append(follower)
            self._tasks.append(asyncio.create_task(self._fold(bus, follower)))

    async def stop(self) -> None:
        self._stopping = True  # as well as the cancel: see SharedPools.stop
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for follower in self._followers:
            await follower.stop()

    def apply(self, event: object) -> None:
        tracker = self.tracker
        if isinstance(event, LLMCalled):
            if event.replay_of is None:
                tracker.called(f"{event.provider}/{event.model}", event.task_type, event.outcome, event.latency_ms,
                               event.cost_usd)
        elif isinstance(event, TaskAssessed):
            if event.model and event.replay_of is None:
                tracker.assessed(event.model, event.task_type, event.overall)
        elif isinstance(event, FeedbackGiven):
            if event.model:
                tracker.rated(event.agent, event.model, event.task_type, event.rating)
        else:
            return
        self.folded += 1

    async def _fold(self, bus: Bus, follower: Follower) -> None:
        while not self._stopping:
            try:
                msg = await follower.next(_WAIT)
            except BusError as exc:
                _log.warning("model measurements are no longer folded", error=str(exc))
                return
            if msg is None:
                continue
            try:
                self.apply(bus.decode_msg(msg))
            except MalformedEvent:
                continue
