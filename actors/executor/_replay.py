"""An earlier run's model calls, answering a replayed attempt's (`ymera replay --offline`, the
replayed part of `ymera fork`): no provider is called.

Listens to: the recorded run's LLMCalled of the task (read once, from the stream, before the
attempt runs). Emits nothing of its own: the attempt's calls are recorded as any are, marked
`replay_of` and costing 0.
Decides: which record answers which call. The record of the same attempt and call number,
if its request was the same (sha256 of the body); else any record of the task with that
request, a successful one first. A recorded failure fails again (a 429 is retried as the
recorded run retried it, and the next attempt gets the next record). A request the recorded
run never made is refused, naming the task and call: the prompt or the model differs.
"""

from __future__ import annotations

import llm
from bus import Bus, BusError, stream_seq
from events import BlobError, LLMCalled, MalformedEvent, TaskReady, subject_filter

__all__ = ["RecordedRun"]

_READ_WAIT = 2.0  # seconds a read of the recorded calls waits for the next one


class RecordedRun:
    """The calls run `run` recorded for one task, as `llm.Replay` for one attempt of it."""

    def __init__(self, run: str, task_id: str, attempt: int, records: list[LLMCalled]) -> None:
        self.run = run
        self.task_id = task_id
        self.attempt = attempt
        self.records = records

    @classmethod
    async def load(cls, bus: Bus, ready: TaskReady) -> RecordedRun:
        """The recorded run's calls for `ready`'s task, from the stream."""
        assert ready.replay_of is not None
        subject = subject_filter(LLMCalled, ready.workflow_id, ready.task_id)
        records: list[LLMCalled] = []
        last = await bus.last_stored(subject)  # read up to it: the recorded run ended long before
        if last is None:
            return cls(ready.replay_of, ready.task_id, ready.attempt, records)
        follower = await bus.follow(subject=subject)
        try:
            while (msg := await follower.next(_READ_WAIT)) is not None:
                try:
                    event = await bus.read(msg.subject, msg.data)
                except (MalformedEvent, BlobError):
                    event = None
                if isinstance(event, LLMCalled) and event.run_id == ready.replay_of:
                    records.append(event)
                if stream_seq(msg) >= last[0]:
                    break
        finally:
            await follower.stop()
        return cls(ready.replay_of, ready.task_id, ready.attempt, records)

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


async def recorded_run(bus: Bus, ready: TaskReady) -> RecordedRun | None:
    """`RecordedRun.load` for a replayed attempt; None for any other."""
    if ready.replay_of is None:
        return None
    try:
        return await RecordedRun.load(bus, ready)
    except BusError as exc:
        raise BusError(f"the recorded calls of run {ready.replay_of} cannot be read: {exc}") from exc
