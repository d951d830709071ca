"""Task kinds are handlers in one registry: a declaration the validator checks submissions
against, a handler the executor runs with the context it built from its settings. A new
kind is one module and one `register` call."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bus
import events
from actors import load_settings, run_all
from actors.executor import Outcome
from actors.registry import HANDLERS, TASK_KINDS, Context, Param, TaskKind, register
from actors.validator import validate_workflow
from ymera import WorkflowClient

from .engine import all_events

SHOUT = TaskKind("shout", "Returns `text` in capitals, with its dependencies' outputs.",
                 (Param("text", "string", required=True),))


async def shout(task: events.TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    return Outcome(output=" ".join([str(task.parameters["text"]).upper(), *map(str, inputs.values())]))


@pytest.fixture
def registered() -> Iterator[None]:
    register(SHOUT, shout)
    try:
        yield
    finally:
        del TASK_KINDS["shout"], HANDLERS["shout"]


def test_every_declared_kind_has_a_handler_and_a_kind_is_registered_once() -> None:
    assert TASK_KINDS.keys() == HANDLERS.keys()
    with pytest.raises(ValueError, match="task kind 'noop' has a handler already"):
        register(TASK_KINDS["noop"], shout)
    TASK_KINDS["sleeping"] = TaskKind("sleeping", "declared by hand")
    try:
        with pytest.raises(ValueError, match="task kind 'sleeping' is declared already, differently"):
            register(TaskKind("sleeping", "another"), shout)
    finally:
        del TASK_KINDS["sleeping"]


def test_the_validator_checks_a_registered_kind_s_parameters(registered: None) -> None:
    settings = load_settings({}, dotenv=None)
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=[
        events.TaskSpec(id="a", type="shout"), events.TaskSpec(id="b", type="whisper")])
    assert [(p.task_id, p.field, p.message) for p in validate_workflow(submission, settings)] == [
        ("a", "parameters.text", "missing required parameter 'text' (a string)"),
        ("b", "type", "unknown task type 'whisper'; known types: analysis, code, code_generation, code_review, "
                      "command, design, documentation, echo, files, git, http, llm, mcp, noop, python, research, "
                      "shout, sleep, sql, summarization, testing"),
    ]


async def test_a_kind_added_by_one_registration_runs_end_to_end(registered: None, nats_bus: bus.Bus,
                                                                 tmp_path: Path) -> None:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    stop, ready = asyncio.Event(), asyncio.Event()
    engine = asyncio.create_task(run_all(settings, nats_bus, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-shout", tasks=[
            events.TaskSpec(id="greet", type="echo", parameters={"text": "world"}),
            events.TaskSpec(id="loud", type="shout", parameters={"text": "hello"}, dependencies=["greet"])])
        client = WorkflowClient(nats_bus)
        end, _ = await client.wait("wf-shout", await client.submit(submission), timeout=60)
    finally:
        stop.set()
        await engine
    assert isinstance(end, events.WorkflowCompleted), end
    outputs = {e.task_id: e.output for e in await all_events(nats_bus, "ymera.task.wf-shout.>")
               if isinstance(e, events.TaskSucceeded)}
    assert outputs == {"greet": "world", "loud": "HELLO world"}
