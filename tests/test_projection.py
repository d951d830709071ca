"""A projection rebuilt from the log equals the one folded live from the bus."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bus
import events
import store

from .support import running_writer, wait_until

WORKFLOWS = ["wf-a", "wf-b", "wf-c"]


def _event(kind: str, workflow_id: str, task: int, run_id: str = "") -> events.Event:
    common = {"id": events.new_id(), "ts": events.now(), "workflow_id": workflow_id, "run_id": run_id}
    task_fields = {"task_id": f"t{task}", "attempt": 1}
    match kind:
        case "submitted":
            return events.WorkflowSubmitted(**common, tasks=[events.TaskSpec(id=f"t{task}", type="noop")])
        case "admitted":
            return events.WorkflowAdmitted(**common, principal="p")
        case "refused":
            return events.WorkflowRefused(**common, principal="p", reason="rate limit")
        case "validated":
            return events.WorkflowValidated(**common, levels=[[f"t{task}"]])
        case "ready":
            return events.TaskReady(**common, **task_fields)
        case "started":
            return events.TaskStarted(**common, **task_fields, executor="ex")
        case "succeeded":
            return events.TaskSucceeded(**common, **task_fields, output=task)
        case "completed":
            return events.WorkflowCompleted(**common, overall_quality=0.9)
        case "failed":
            return events.WorkflowFailed(**common, reason="task failed")
    return events.WorkflowCancelled(**common)


KINDS = ["submitted", "admitted", "refused", "validated", "ready", "started", "succeeded", "completed", "failed",
         "cancelled"]
# Each step: publish a new event (naming the run of an earlier submission, or no run), re-publish an
# earlier one past the duplicate window, or send garbage.
step = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(KINDS), st.sampled_from(WORKFLOWS), st.integers(0, 3),
              st.integers(-1, 3)),
    st.tuples(st.just("copy"), st.integers(0, 1000)),
    st.tuples(st.just("garbage"), st.binary(max_size=40)),
)


@pytest.fixture(scope="module")
def server() -> Iterator[bus.EmbeddedServer]:
    with tempfile.TemporaryDirectory() as tmp, bus.EmbeddedServer(Path(tmp)) as srv:
        yield srv


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=60))
def test_rebuilt_projection_equals_the_live_one(server: bus.EmbeddedServer, steps: list[tuple]) -> None:
    asyncio.run(asyncio.wait_for(_scenario(server.url, steps), 30))


async def _scenario(url: str, steps: list[tuple]) -> None:
    connection = await bus.connect(url)
    await connection.js.purge_stream(bus.STREAM)
    start = (await connection.js.stream_info(bus.STREAM)).state.last_seq + 1
    live = [store.LiveProjection(p, connection, start)
            for p in (store.WorkflowStatus(), store.WorkflowRuns(), store.EventCounts())]
    stop = asyncio.Event()
    followers = [asyncio.create_task(p.run(stop)) for p in live]
    with tempfile.TemporaryDirectory() as tmp:
        async with store.SqliteEventLog(Path(tmp) / "events.db") as log:
            async with running_writer(connection, log) as writer:
                sent: list[events.Event] = []
                for s in steps:
                    if s[0] == "event":
                        runs = [e.id for e in sent if isinstance(e, events.WorkflowSubmitted) and e.workflow_id == s[2]]
                        run = runs[s[4] % len(runs)] if runs and s[4] >= 0 else ""
                        sent.append(_event(*s[1:4], run_id=run))
                        await connection.publish(sent[-1])
                    elif s[0] == "copy" and sent:
                        late = sent[s[1] % len(sent)]
                        await connection.js.publish(events.subject_of(late), events.encode(late))
                    elif s[0] == "garbage":
                        await connection.js.publish("ymera.wf.x.submitted", s[1])
                last = await _settled(connection, writer, start)
            for p in live:
                await p.wait_for(last)
            stop.set()
            await asyncio.gather(*followers)
            for p in live:
                rebuilt, through = await store.rebuild(p.projection, log)
                assert rebuilt == p.state
                assert through <= last
    await connection.close()


async def _settled(connection: bus.Bus, writer: store.StoreWriter, start: int) -> int:
    """The stream's last seq once the writer has handled everything, its own rejections included."""
    last = -1
    while last != (last := (await connection.js.stream_info(bus.STREAM)).state.last_seq) and last >= start:
        await wait_until(lambda: writer.position >= last, what=f"seq {last} handled")
        await asyncio.sleep(0.05)
    return last
