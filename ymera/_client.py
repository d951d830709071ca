"""A client of a running Ymera: submit a workflow, follow its events, wait for its end.

It talks to NATS only, so it works the same against actors in this process, in other
processes, or on other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import msgspec

from bus import ATTEST_SECONDS, Bus
from events import (
    RUN_ENDS,
    BlobError,
    CancelRefused,
    CancelRequested,
    Event,
    MalformedEvent,
    WorkflowSubmitted,
    YmeraError,
    new_id,
    now,
    run_of,
    workflow_filter,
)
from store import Run, WorkflowRuns

__all__ = [
    "CANCEL_ANSWER_SECONDS",
    "END_STATUS",
    "END_TYPES",
    "UNSHOWN",
    "CancelDenied",
    "WorkflowClient",
    "describe_problem",
    "history",
    "result_of",
    "run_result",
    "run_view",
    "store_caught_up",
    "stored",
]

# How a run can end, and what its status then reads. A `MessageRejected` is not among them:
# a stray message on a workflow's subject belongs to no run and changes none.
END_STATUS: dict[type, str] = {kind: kind.verb for kind in RUN_ENDS}  # completed, failed, …
END_TYPES = RUN_ENDS
# What a client never shows, left in its blobs: task outputs and inputs may be large.
UNSHOWN = frozenset({"TaskSucceeded.output", "TaskReady.inputs", "TaskReady.spec"})
# How long `cancel` waits for the distributor's answer: the run's end, or a refusal.
CANCEL_ANSWER_SECONDS = 10.0


class CancelDenied(YmeraError):
    """The distributor refused a cancel (`CancelRefused`): neither the run's submitter nor an
    admin asked. The run goes on."""

    def __init__(self, refusal: CancelRefused) -> None:
        super().__init__(refusal.reason)
        self.run_id = refusal.run_id
        self.principal = refusal.principal
        self.submitted_by = refusal.submitted_by


class WorkflowClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def submit(self, submission: WorkflowSubmitted) -> int:
        """Publish the submission; return its stream seq (an earlier copy's, if it was a duplicate).
        The submission's id is the id of the run it starts. Where clients sign (YMERA_NATS_AUTH),
        its principal is this client's, whatever the workflow said."""
        principal = self.bus.principal
        if principal is not None and submission.principal != principal:
            submission = msgspec.structs.replace(submission, principal=principal)
        ack = await self.bus.publish(submission)
        return int(ack.seq)

    async def cancel(self, workflow_id: str, reason: str = "", run_id: str = "", *,
                     wait: float | None = CANCEL_ANSWER_SECONDS) -> Event | None:
        """Ask to cancel run `run_id` of the workflow (without one: whichever run is active), as
        this client's principal; then wait up to `wait` seconds for the answer. The run's end
        (`WorkflowCancelled`, or how it ended meanwhile) is returned; a refusal (another principal's
        run, docs/security.md "Who may cancel a run") raises `CancelDenied`; None: no answer in time
        (no distributor running, or the run had already ended), or `wait` None (not waited for)."""
        request = CancelRequested(id=new_id(), ts=now(), workflow_id=workflow_id, run_id=run_id, reason=reason,
                                  principal=self.bus.principal)
        ack = await self.bus.publish(request)
        if wait is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                async for event in self.events(workflow_id, int(ack.seq)):
                    if isinstance(event, CancelRefused) and event.causation_id == request.id:
                        raise CancelDenied(event)
                    if isinstance(event, END_TYPES) and run_of(event) == (run_id or run_of(event)):
                        return event
        return None

    async def events(self, workflow_id: str, start_seq: int = 1) -> AsyncIterator[Event]:
        """Every event of one workflow (all its runs) from `start_seq`, live, forever; each id once (a
        copy the stream kept past its duplicate window is skipped, as the log skips it)."""
        sub = await self.bus.follow(start_seq, workflow_filter(workflow_id))
        ids: set[str] = set()
        try:
            while True:
                msg = await sub.next(timeout=1.0)
                if msg is None:
                    continue
                try:
                    event = await self.bus.read(msg, UNSHOWN)
                except (MalformedEvent, BlobError):
                    continue  # the store writer records it as MessageRejected
                if event.id not in ids:
                    ids.add(event.id)
                    yield event
        finally:
            await sub.stop()

    async def wait(self, workflow_id: str, start_seq: int = 1, on_event: Callable[[Event], None] | None = None,
                   timeout: float | None = None, *, run_id: str | None = None) -> tuple[Event, list[Event]]:
        """Follow one run until it ends; return its last event and every event of it seen.

        The run is `run_id`, or else the first one submitted at or after `start_seq`. Events
        of the workflow's other runs, and messages that belong to no run, are passed over."""
        seen: list[Event] = []

        async def follow() -> Event:
            run = run_id
            async for event in self.events(workflow_id, start_seq):
                if run is None and isinstance(event, WorkflowSubmitted):
                    run = event.id
                if run is None or run_of(event) != run:
                    continue
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


def run_view(seen: list[Event], run_id: str) -> Run:
    """The run `run_id` folded from its events (the projection `WorkflowRuns`)."""
    projection = WorkflowRuns()
    runs = projection.initial()
    for event in seen:
        runs = projection.apply(runs, event)
    if run_id not in runs.runs:
        raise YmeraError(f"no run {run_id} among the events given")
    return runs.runs[run_id]


def result_of(end: Event, seen: list[Event]) -> dict[str, Any]:
    """The result as users of the original guide read it: status, quality, per-task results, and the run."""
    return run_result(run_view(seen, run_of(end)))


def run_result(run: Run) -> dict[str, Any]:
    """A run as a dict: status, run id, quality, per-task results, the reasons of its end."""
    result: dict[str, Any] = {"workflow_id": run.workflow_id, "run_id": run.run_id, "status": run.state,
                              "overall_quality": run.overall_quality}
    if run.state in ("completed", "failed", "cancelled"):
        result["duration_ms"] = run.duration_ms
        result["results"] = {task_id: {"task_id": task_id, "status": t.state, "attempts": t.attempts,
                                       "quality": t.quality, "error": t.reason, "duration_ms": t.duration_ms,
                                       "model": t.model, "cost_usd": t.cost_usd}
                             for task_id, t in run.tasks.items()}
    if run.state == "invalid":
        result["errors"] = [describe_problem(p.task_id, p.field, p.message) for p in run.problems]
    elif run.reason is not None:
        result["error"] = run.reason
    if run.estimated_parallel_speedup is not None:
        result["parallel_groups"] = run.levels
        result["critical_path"] = run.critical_path
        result["estimated_parallel_speedup"] = run.estimated_parallel_speedup
    return result


def describe_problem(task_id: str | None, field: str | None, message: str) -> str:
    where = ".".join(x for x in (f"task {task_id}" if task_id else None, field) if x)
    return f"{where}: {message}" if where else message


async def history(bus: Bus, workflow_id: str) -> list[Event]:
    """Every event of one workflow stored in the stream so far."""
    return await stored(bus, workflow_filter(workflow_id), UNSHOWN)


async def stored(bus: Bus, subject: str, keep: Collection[str] = ()) -> list[Event]:
    """Every valid event on `subject` in the stream so far, in stream order, each id once (as the
    log keeps it), its blobs resolved but for `keep`."""
    out: list[Event] = []
    ids: set[str] = set()
    async for msg in bus.read_through(subject):
        with contextlib.suppress(MalformedEvent, BlobError):
            event = await bus.read(msg, keep)
            if event.id not in ids:
                ids.add(event.id)
                out.append(event)
    return out


async def store_caught_up(bus: Bus, timeout: float = 15.0) -> None:
    """Wait until the store writer has every event in the stream (before stopping an in-process
    engine), and the attestations of them the actors send within `ATTEST_SECONDS` (bus/_attest.py)."""
    await asyncio.sleep(2 * ATTEST_SECONDS)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        writer = await bus.consumer_state("store")
        if writer is not None and writer.num_pending == 0 and writer.num_ack_pending == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise YmeraError(f"the store writer did not catch up with the stream within {timeout:g}s")
        await asyncio.sleep(0.05)
