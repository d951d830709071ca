"""A long history for start-up tests and bench/startup.py: many workflows, most of them ended.

Each workflow is what the engine writes for a chain of tasks t1 <- t2 <- ...: submitted,
admitted, validated, and per task ready, succeeded (with a model and token usage; an attempt
of under a heartbeat sends no TaskStarted), assessed; then completed. Ids are derived as the actors derive them, so an
actor reconciling over this history finds its own decisions already made. The last `active`
workflows stop with their first task running (it outlived its first heartbeat: started), as
a live system has some in flight. Every event
but the submission names its run (the submission's id), as the engine's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import events
from events import derive_id

__all__ = ["EVENTS_PER_WORKFLOW", "history", "publish_history"]

TASKS = 4
EVENTS_PER_WORKFLOW = 3 + 3 * TASKS + 1
_ACTIVE_EVENTS = 5  # submitted, admitted, validated, t1 ready, t1 started


def history(n_events: int, *, active: int = 5, prefix: str = "h", start: datetime | None = None,
            step: timedelta = timedelta(microseconds=50)) -> Iterator[events.Event]:
    """About `n_events` events (whole workflows, `step` apart): `active` of them still running at the end."""
    ended = max(0, (n_events - active * _ACTIVE_EVENTS) // EVENTS_PER_WORKFLOW)
    ts = start or events.now()
    for w in range(ended + active):
        running = w >= ended
        ts += step
        yield from _workflow(f"{prefix}-{w:07d}", ts, running, w)


def _workflow(workflow_id: str, ts: datetime, running: bool, n: int) -> Iterator[events.Event]:
    specs = [events.TaskSpec(id=f"t{i}", type="llm", description=f"part {i} of {workflow_id}",
                             dependencies=[f"t{i - 1}"] if i > 1 else [])
             for i in range(1, TASKS + 1)]
    submitted = events.WorkflowSubmitted(id=derive_id(workflow_id, "submission"), ts=ts, workflow_id=workflow_id,
                                         name="history", principal=f"user-{n % 7}", tasks=specs)
    sid = submitted.id
    yield submitted
    yield events.WorkflowAdmitted(id=derive_id(sid, "admission"), ts=ts, workflow_id=workflow_id, run_id=sid,
                                  causation_id=sid, actor="security", principal=submitted.principal)
    yield events.WorkflowValidated(id=derive_id(sid, "validation"), ts=ts, workflow_id=workflow_id, run_id=sid,
                                   causation_id=sid, actor="validator", levels=[[s.id] for s in specs],
                                   critical_path=[s.id for s in specs], estimated_parallel_speedup=1.0)
    for spec in specs:
        task = spec.id
        ready = events.TaskReady(id=derive_id(sid, "TaskReady", task, 1), ts=ts, workflow_id=workflow_id,
                                 run_id=sid, causation_id=sid, actor="distributor", task_id=task, attempt=1, spec=spec)
        yield ready
        if running:
            yield events.TaskStarted(id=derive_id(sid, "TaskStarted", task, 1), ts=ts, workflow_id=workflow_id,
                                     run_id=sid, causation_id=ready.id, actor="executor", task_id=task, attempt=1,
                                     executor="executor-1")
            return
        done = events.TaskSucceeded(
            id=derive_id(sid, "TaskSucceeded", task, 1), ts=ts, workflow_id=workflow_id, run_id=sid,
            causation_id=ready.id, actor="executor", task_id=task, attempt=1, output={"text": f"summary of {task}"},
            duration_ms=800.0 + n % 400, model="model-a" if n % 3 else "model-b", cost_usd=0.0001,
            usage={"prompt_tokens": 40, "completion_tokens": 20 + n % 50}, executor="executor-1", started_at=ts)
        yield done
        yield events.TaskAssessed(id=derive_id(sid, "TaskAssessed", task), ts=ts, workflow_id=workflow_id,
                                  run_id=sid, causation_id=done.id, actor="assessor", task_id=task, attempt=1,
                                  accuracy=0.9, completeness=0.9, consistency=0.9, efficiency=0.9,
                                  maintainability=0.9, overall=0.9)
    yield events.WorkflowCompleted(id=derive_id(sid, "WorkflowEnded"), ts=ts, workflow_id=workflow_id,
                                   run_id=sid, causation_id=sid, actor="distributor")


async def publish_history(js, stream_events: Iterator[events.Event], *, window: int = 20_000) -> int:  # type: ignore[no-untyped-def]
    """Publish pre-encoded events pipelined (`window` acks outstanding at most); return the last seq."""
    pending: list[asyncio.Future] = []  # type: ignore[type-arg]
    last = 0
    for event in stream_events:
        pending.append(await js.publish_async(events.subject_of(event), events.encode(event),
                                              headers={"Nats-Msg-Id": event.id}))
        if len(pending) >= window:
            last = max(last, (await pending[-1]).seq)
            await asyncio.gather(*pending)
            pending.clear()
    if pending:
        acks = await asyncio.gather(*pending)
        last = max(last, acks[-1].seq)
    return last
