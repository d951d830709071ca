"""An earlier run's model calls, answering a replayed attempt's (`ymera replay --offline`, the
replayed part of `ymera fork`): no provider is called.

Listens to: the recorded run's LLMCalled (read from the stream once per executor, the first
time one of its attempts is replayed; `RecordedRuns`). Emits nothing of its own: the
attempt's calls are recorded as any are, marked `replay_of` and costing 0.
Decides: which record answers which call. The record of the same attempt and call number,
if its request was the same (sha256 of the body); else any record of the task with that
request, a successful one first. A recorded failure fails again (a 429 is retried as the
recorded run retried it, and the next attempt gets the next record). A request the recorded
run never made is refused, naming the task and call: the prompt or the model differs.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import llm
from bus import Bus, BusError
from events import BlobError, LLMCalled, MalformedEvent, TaskReady, subject_filter

__all__ = ["RecordedRun", "RecordedRuns"]



class RecordedRun:
    """The calls run `run` recorded for one task, as `llm.Replay` for one attempt of it."""

    def __init__(self, run: str, task_id: str, attempt: int, records: list[LLMCalled]) -> None:
        self.run = run
        self.task_id = task_id
        self.attempt = attempt
        self.records = records

    def model(self, call: int) -> str | None:
        record = self._at(call) or (self.records[-1] if self.records else None)
        return None if record is None else f"{record.provider}/{record.model}"

    def answer(self, call: int, digest: str) -> llm.Recorded:
        record = self._at(call)
        if record is None or record.request_digest != digest:
            same = [r for r in self.records if r.request_digest == digest]
            same.sort(key=lambda r: r.outcome != "ok")
            record = same[0] if same else None
        if record is None:
            raise llm.LLMError("bad_request", f"offline replay of run {self.run}: it recorded no call like this one "
                               f"(task {self.task_id}, attempt {self.attempt}, call {call}): the prompt or the model "
                               f"differs from the recorded run's, or its records are no longer in the stream",
                               retryable=False)
        return llm.Recorded(provider=record.provider, model=record.model, outcome=record.outcome, error=record.error,
                            status=record.status, retry_after_seconds=record.retry_after_seconds,
                            request_digest=record.request_digest, response=record.response)

    def _at(self, call: int) -> LLMCalled | None:
        """The record of this attempt's call `call` (a successful one, if the attempt ran twice)."""
        found = [r for r in self.records if r.attempt == self.attempt and r.call == call]
        found.sort(key=lambda r: r.outcome != "ok")
        return found[0] if found else None


class RecordedRuns:
    """The recorded runs this executor's replayed attempts read: each read from the stream once,
    all its tasks' calls at a time, by one reader (one per attempt would meet the stream's
    limit on consumers with a thousand attempts in flight); the latest `KEPT` kept."""

    KEPT = 4

    def __init__(self) -> None:
        self._runs: OrderedDict[str, asyncio.Task[dict[str, list[LLMCalled]]]] = OrderedDict()

    async def of(self, bus: Bus, ready: TaskReady) -> RecordedRun | None:
        """What answers `ready`'s calls: the recorded run's calls of its task; None if it replays nothing."""
        run = ready.replay_of
        if run is None:
            return None
        loading = self._runs.get(run)
        if loading is None:
            loading = self._runs[run] = asyncio.create_task(_read(bus, ready.workflow_id, run))
            while len(self._runs) > self.KEPT:
                self._runs.popitem(last=False)
        try:
            calls = await asyncio.shield(loading)
        except BusError as exc:
            if self._runs.get(run) is loading:
                del self._runs[run]  # read again by the next attempt
            raise BusError(f"the recorded calls of run {run} cannot be read: {exc}") from exc
        return RecordedRun(run, ready.task_id, ready.attempt, calls.get(ready.task_id, []))


async def _read(bus: Bus, workflow_id: str, run: str) -> dict[str, list[LLMCalled]]:
    """Run `run`'s calls, by task, from the stream (it ended before its replay began)."""
    calls: dict[str, list[LLMCalled]] = {}
    async for msg in bus.read_through(subject_filter(LLMCalled, workflow_id)):
        try:
            event = await bus.read(msg)
        except (MalformedEvent, BlobError):
            continue
        if isinstance(event, LLMCalled) and event.run_id == run:
            calls.setdefault(event.task_id, []).append(event)
    return calls
