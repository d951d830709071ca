"""Who emits what (`events.EMITTED_BY`): the table every event type has an entry in, checked
against what the engine really emits in runs that succeed, retry, fail, time out, are
refused, invalid and cancelled, with model calls and a malformed message among them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import bus
import events
from actors import load_settings
from ymera import WorkflowClient

from .engine import all_events, in_process
from .llm_server import OpenAIServer


def test_every_event_type_has_its_emitter() -> None:
    assert set(events.EMITTED_BY) == set(events.EVENT_TYPES)
    assert set(events.EMITTED_BY.values()) == {events.CLIENT, "security", "validator", "distributor", "executor",
                                               "assessor", "monitor", "store", events.ANY_ACTOR}
    assert [kind for kind, owner in events.EMITTED_BY.items() if owner == events.ANY_ACTOR] == ["Attested"]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-test") as srv:
        yield srv


def submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def test_every_event_the_engine_emits_names_the_actor_the_table_says(
        nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> None:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_LLM_BASE_URL": server.base_url,
                              "YMERA_LLM_MODEL": "gpt-test", "YMERA_LLM_API_KEY_1": "k1",
                              "YMERA_HEARTBEAT_SECONDS": "0.2"}, dotenv=None)
    once = events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.05)
    runs = [
        submission("ok", events.TaskSpec(id="ask", type="llm", parameters={"prompt": "hi", "max_tokens": 8}),
                   events.TaskSpec(id="say", type="echo", dependencies=["ask"])),
        submission("fails", events.TaskSpec(id="check", type="echo", parameters={"text": "hello"},
                                            expect=events.Expectations(contains=["bye"]), retry=once),
                   events.TaskSpec(id="after", type="noop", dependencies=["check"])),
        submission("slow", events.TaskSpec(id="nap", type="sleep", parameters={"seconds": 1},
                                           retry=events.RetryPolicy(max_attempts=1))),  # outlives a heartbeat
        submission("invalid", events.TaskSpec(id="x", type="nope")),
    ]
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        for sub in runs:
            await client.wait(sub.workflow_id, await client.submit(sub), timeout=60, run_id=sub.id)
        long = submission("long", events.TaskSpec(id="wait", type="sleep", parameters={"seconds": 30}))
        seq = await client.submit(long)
        await client.submit(submission("long", events.TaskSpec(id="wait", type="noop")))  # refused: one is active
        await asyncio.sleep(0.5)
        await client.cancel("long", "enough", long.id)
        await client.wait("long", seq, timeout=60, run_id=long.id)
        await nats_bus.js.publish(events.subject_filter(events.TaskSucceeded, "ok", "say"), b"{not json")
        await asyncio.sleep(1.0)  # the store writer rejects it
    seen = await all_events(nats_bus)
    wrong = sorted({(type(e).__name__, e.actor) for e in seen
                    if events.EMITTED_BY[type(e).__name__] not in (e.actor, events.ANY_ACTOR)})
    assert wrong == []
    kinds = {type(e).__name__ for e in seen}
    # What these runs must have emitted, so the check above covers them (a TaskTimedOut needs an
    # executor that dies or stops: tests/test_chaos.py; an AlertRaised, a degradation).
    assert kinds >= {"WorkflowSubmitted", "WorkflowAdmitted", "WorkflowRefused", "WorkflowValidated",
                     "WorkflowInvalid", "CancelRequested", "WorkflowCancelled", "WorkflowCompleted", "WorkflowFailed",
                     "TaskReady", "TaskStarted", "TaskHeartbeat", "TaskSucceeded", "TaskFailed", "TaskRetryScheduled",
                     "TaskSkipped", "TaskAssessed", "LLMCalled", "CallReserved", "ModelChosen", "MessageRejected",
                     "ChainCheckpoint"}, kinds
