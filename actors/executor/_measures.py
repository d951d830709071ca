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

import msgspec
import structlog

import llm
from bus import Bus, BusError, Follower
from events import FeedbackGiven, LLMCalled, MalformedEvent, TaskAssessed, now, subject_filter

__all__ = ["WINDOW", "Measures"]

_log = structlog.get_logger("ymera.executor")
WINDOW = timedelta(days=30)  # how far back measurements count
SUBJECTS = tuple(subject_filter(kind) for kind in (LLMCalled, TaskAssessed, FeedbackGiven))
_WAIT = 5.0
_BATCH = 1000
# The tracker may learn of a call or a score this much later, for the executor to wake once for
# a trickle of them, not for each: this process runs the attempts a step waits for.
_LINGER = 0.05


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
            # The judge's calls grade answers: they say nothing of a model serving the task type.
            if event.replay_of is None and event.purpose == "task":
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
                msgs = await follower.batch(_BATCH, _WAIT, _LINGER)
            except BusError as exc:
                _log.warning("model measurements are no longer folded", error=str(exc))
                return
            for msg in msgs:
                if not _measures_a_model(msg.data):
                    continue  # a tool's or a no-op's score: nothing for the tracker
                try:
                    self.apply(bus.decode_msg(msg))
                except MalformedEvent:
                    continue


class _Peek(msgspec.Struct):
    model: str | None = None
    replay_of: str | None = None
    purpose: str = "task"


_PEEK = msgspec.json.Decoder(_Peek)


def _measures_a_model(data: bytes) -> bool:
    """Whether an event may say something of a model: it names one, is not a replay's, and is
    not the judge's.
    Most scores are of tasks that call no model; a peek at two fields passes them over before
    the whole event is decoded and checked. Anything the peek cannot read is decoded in full,
    for `MalformedEvent` to say why."""
    try:
        peek = _PEEK.decode(data)
    except msgspec.DecodeError:
        return True
    return peek.model is not None and peek.replay_of is None and peek.purpose == "task"
