"""A client of a running Ymera: submit a workflow, follow its events, wait for its end.

It talks to NATS only, so it works the same against actors in this process, in other
processes, or on other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import nats.js.errors

from bus import Bus
from events import (
    CancelRequested,
    Event,
    MalformedEvent,
    MessageRejected,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInvalid,
    WorkflowRefused,
    WorkflowSubmitted,
    WorkflowValidated,
    YmeraError,
    decode_message,
    new_id,
    now,
)

__all__ = [
    "END_STATUS",
    "END_TYPES",
    "WorkflowClient",
    "describe_problem",
    "history",
    "result_of",
    "store_caught_up",
    "stored",
]

# How a workflow can end, and what its status then reads.
END_STATUS: dict[type, str] = {
    WorkflowCompleted: "completed", WorkflowFailed: "failed", WorkflowCancelled: "cancelled",
    WorkflowInvalid: "invalid", WorkflowRefused: "refused", MessageRejected: "rejected",
}
END_TYPES = tuple(END_STATUS)


class WorkflowClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def submit(self, submission: WorkflowSubmitted) -> int:
        """Publish the submission; return its stream seq (an earlier copy's, if it was a duplicate)."""
        ack = await self.bus.publish(submission)
        return int(ack.seq)

    async def cancel(self, workflow_id: str, reason: str = "") -> None:
        await self.bus.publish(CancelRequested(id=new_id(), ts=now(), workflow_id=workflow_id, reason=reason))

    async def events(self, workflow_id: str, start_seq: int = 1) -> AsyncIterator[Event]:
        """Every event of one workflow from `start_seq`, live, forever; each id once (a copy the
        stream kept past its duplicate window is skipped, as the log skips it)."""
        sub = await self.bus.follow(start_seq, f"ymera.*.{workflow_id}.>")
        ids: set[str] = set()
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except TimeoutError:
                    continue
                try:
                    event = decode_message(msg.subject, msg.data)
                except MalformedEvent:
                    continue
                if event.id not in ids:
                    ids.add(event.id)
                    yield event
        finally:
            await sub.unsubscribe()

    async def wait(self, workflow_id: str, start_seq: int = 1, on_event: Callable[[Event], None] | None = None,
                   timeout: float | None = None) -> tuple[Event, list[Event]]:
        """Follow until the workflow ends; return its last event and everything seen."""
        seen: list[Event] = []

        async def follow() -> Event:
            async for event in self.events(workflow_id, start_seq):
                seen.append(event)
                if on_event is not None:
                    on_event(event)
                if isinstance(event, END_TYPES):
                    return event
            raise YmeraError("event stream ended")  # pragma: no cover - events() never ends

        try:
            end = await asyncio.wait_for(follow(), timeout)
        except TimeoutError:
            raise YmeraError(f"workflow {workflow_id} did not end within {timeout:g}s") from None
        return end, seen


def result_of(end: Event, seen: list[Event]) -> dict[str, Any]:
    """The result as users of the original guide read it: status, quality, per-task results."""
    validated = next((e for e in seen if isinstance(e, WorkflowValidated)), None)
    result: dict[str, Any] = {"workflow_id": end.workflow_id, "status": _status(end)}
    if isinstance(end, (WorkflowCompleted, WorkflowFailed)):
        result["overall_quality"] = end.overall_quality
        result["duration_ms"] = end.duration_ms
        result["results"] = {r.task_id: msgspec.structs.asdict(r) for r in end.results}
        if isinstance(end, WorkflowFailed):
            result["error"] = end.reason
    elif isinstance(end, WorkflowInvalid):
        result["errors"] = [describe_problem(p.task_id, p.field, p.message) for p in end.problems]
    elif isinstance(end, (WorkflowRefused, WorkflowCancelled, MessageRejected)):
        result["error"] = end.reason
    if validated is not None:
        result["parallel_groups"] = validated.levels
        result["critical_path"] = validated.critical_path
        result["estimated_parallel_speedup"] = validated.estimated_parallel_speedup
    result.setdefault("overall_quality", None)
    return result


def _status(end: Event) -> str:
    return END_STATUS[type(end)]


def describe_problem(task_id: str | None, field: str | None, message: str) -> str:
    where = ".".join(x for x in (f"task {task_id}" if task_id else None, field) if x)
    return f"{where}: {message}" if where else message


async def history(bus: Bus, workflow_id: str) -> list[Event]:
    """Every event of one workflow stored in the stream so far."""
    return await stored(bus, f"ymera.*.{workflow_id}.>")


async def stored(bus: Bus, subject: str) -> list[Event]:
    """Every valid event on `subject` in the stream so far, in stream order, each id once (as the log)."""
    sub = await bus.follow(1, subject)
    out: list[Event] = []
    ids: set[str] = set()
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                return out  # nothing on these subjects at all
            with contextlib.suppress(MalformedEvent):
                event = decode_message(msg.subject, msg.data)
                if event.id not in ids:
                    ids.add(event.id)
                    out.append(event)
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


async def store_caught_up(bus: Bus, timeout: float = 15.0) -> None:
    """Wait until the store writer has every event in the stream (before stopping an in-process engine)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            info = await bus.js.consumer_info(bus.stream.name, "store")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        except nats.js.errors.NotFoundError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise YmeraError(f"the store writer did not catch up with the stream within {timeout:g}s")
        await asyncio.sleep(0.05)
