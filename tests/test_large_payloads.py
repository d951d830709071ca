"""Submissions and results over the 64 KiB inline limit, end to end: every reader resolves
their blobs (security, validator, distributor, assessor, executor, the client, projections)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

import bus
import events
import store
from actors import Settings, load_settings
from actors._runtime import run_actor
from actors.security import Security
from ymera import Task, WorkflowOrchestrator
from ymera._client import stored

from .conftest import ymera, ymera_env
from .llm_server import OpenAIServer
from .pytasks import text_of_size
from .support import running_writer, stored_events, wait_until


def _settings(tmp_path: Path, **extra: str) -> Settings:
    env = {"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_PYTHON_MODULES": "tests.pytasks", **extra}
    return load_settings(env, dotenv=None)


async def _run(settings: Settings, tasks: list[Task], workflow_id: str = "big",
               timeout: float = 240) -> tuple[dict[str, Any], list[events.Event]]:
    """Run a workflow with the embedded defaults; return its result and every stored event."""
    async with WorkflowOrchestrator(settings) as orch:
        result = await orch.execute_workflow(workflow_id=workflow_id, tasks=tasks, timeout=timeout,
                                             enable_monitoring=False)
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        stored = [await events.resolve(e, _blob_of(log)) for e in await stored_events(log)]
        assert (await store.verify(log)).ok
    return result, stored


def _blob_of(log: store.SqliteEventLog) -> events.BlobGet:
    async def get(ref: events.BlobRef) -> bytes:
        data = await log.blob(ref.digest)
        assert data is not None, f"blob {ref.digest} is not in the log"
        return data
    return get


def _submission(stored: list[events.Event]) -> events.WorkflowSubmitted:
    submitted = next(e for e in stored if isinstance(e, events.WorkflowSubmitted))
    return submitted


async def test_a_submission_of_2500_noop_tasks_runs_and_returns_every_result(tmp_path: Path) -> None:
    result, stored = await _run(_settings(tmp_path), [Task(f"t{i}", task_type="noop") for i in range(2500)])
    assert result["status"] == "completed", result
    assert len(result["results"]) == 2500
    assert {r["status"] for r in result["results"].values()} == {"succeeded"}
    assert "tasks" in (await _raw_submission(tmp_path)).blobs
    assert len(result["parallel_groups"][0]) == 2500
    assert len(_submission(stored).tasks) == 2500


async def test_1200_results_of_an_inline_submission_are_all_returned(tmp_path: Path) -> None:
    """The submission travels inline; the end event's result list does not."""
    settings = _settings(tmp_path)
    result, _ = await _run(settings, [Task(f"t{i}", task_type="noop") for i in range(1200)])
    assert "tasks" not in (await _raw_submission(tmp_path)).blobs
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        completed = next(e for e in await stored_events(log) if isinstance(e, events.WorkflowCompleted))
    assert "results" in completed.blobs
    assert result["status"] == "completed"
    assert sorted(result["results"]) == sorted(f"t{i}" for i in range(1200))


async def _raw_submission(tmp_path: Path) -> events.WorkflowSubmitted:
    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        return _submission(await stored_events(log))


async def test_three_tasks_with_30000_character_descriptions_run(tmp_path: Path) -> None:
    texts = [letter * 30_000 for letter in "abc"]
    result, stored = await _run(_settings(tmp_path), [Task(f"t{i}", task_type="echo", description=text)
                                                      for i, text in enumerate(texts)])
    assert result["status"] == "completed", result
    assert (await _raw_submission(tmp_path)).blobs["tasks"].size > 90_000
    outputs = {e.task_id: e.output for e in stored if isinstance(e, events.TaskSucceeded)}
    assert outputs == {f"t{i}": text for i, text in enumerate(texts)}


async def test_1000_llm_tasks_with_short_prompts_run(tmp_path: Path) -> None:
    with OpenAIServer(model="test-model") as llm:
        settings = _settings(tmp_path, YMERA_LLM_BASE_URL=llm.base_url, YMERA_LLM_MODEL="test-model")
        prompts = [f"Name one fact about the number {i}." for i in range(1000)]
        result, _ = await _run(settings, [Task(f"ask{i}", task_type="llm", parameters={"prompt": prompt})
                                          for i, prompt in enumerate(prompts)])
        assert len(llm.requests) == 1000
    assert result["status"] == "completed", result
    assert len(result["results"]) == 1000
    assert (await _raw_submission(tmp_path)).blobs["tasks"].size > events.INLINE_LIMIT


async def test_a_10_mb_result_reaches_its_dependent_and_every_result_returns(tmp_path: Path) -> None:
    size = 10_000_000
    result, stored = await _run(_settings(tmp_path), [
        Task("big", task_type="python", tools=["python"],
             parameters={"function": "tests.pytasks:text_of_size", "args": {"size": size}}),
        Task("measure", task_type="python", tools=["python"], dependencies=["big"],
             parameters={"function": "tests.pytasks:measure", "args": {"key": "big"}}),
    ])
    assert result["status"] == "completed", result
    assert {t: r["status"] for t, r in result["results"].items()} == {"big": "succeeded", "measure": "succeeded"}
    outputs = {e.task_id: e.output for e in stored if isinstance(e, events.TaskSucceeded)}
    assert outputs["big"] == text_of_size(size)
    # The dependent received the whole output through the blob, byte for byte.
    assert outputs["measure"] == {"length": size,
                                  "sha256": hashlib.sha256(text_of_size(size).encode()).hexdigest()}


async def test_an_output_over_the_blob_limit_fails_its_task_with_the_reason(tmp_path: Path) -> None:
    size = events.MAX_BLOB_BYTES + 1
    result, _ = await _run(_settings(tmp_path), [
        Task("huge", task_type="python", tools=["python"],
             parameters={"function": "tests.pytasks:text_of_size", "args": {"size": size}}),
    ])
    assert result["status"] == "failed"
    encoded = len(msgspec.json.encode(text_of_size(size)))
    assert result["error"] == (
        f"task huge failed: the result cannot be published: TaskSucceeded.output is {encoded} bytes, "
        f"over the {events.MAX_BLOB_BYTES}-byte limit of a blob")
    assert result["results"]["huge"]["attempts"] == 1


async def test_security_refuses_a_120000_character_description_carried_in_a_blob(tmp_path: Path) -> None:
    result, _ = await _run(_settings(tmp_path), [Task("long", task_type="echo", description="x" * 120_000)])
    assert result["status"] == "refused"
    assert result["error"] == "task long: description is 120000 characters, over the limit of 100000"
    assert "tasks" in (await _raw_submission(tmp_path)).blobs


def test_a_5_mb_submission_runs_through_ymera_run_and_prints_every_task(tmp_path: Path) -> None:
    tasks = [{"id": f"long{i}", "type": "echo", "description": str(i) * 100_000} for i in range(2)]
    tasks += [{"id": f"t{i}", "type": "echo", "description": f"{i:04d}" * 500} for i in range(2400)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"workflow_id": "five-mb", "tasks": tasks}))
    assert path.stat().st_size > 5_000_000
    env = ymera_env(tmp_path / "data")
    run = ymera("run", str(path), env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "validated: 2402 tasks in 1 parallel groups, estimated speedup 2402.00x"
    task_lines = [line for line in lines if line.startswith("  ") and "(attempts 1)" in line]
    assert len(task_lines) == 2402
    assert "  long1: succeeded (attempts 1) quality 1.00" in lines
    assert "  t2399: succeeded (attempts 1) quality 1.00" in lines
    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0, audit.stderr
    blobs = int(audit.stdout.split(" and ")[1].split()[0])
    assert blobs >= 5  # the submission, the plan, two long specs and outputs, the results


class _TaskCount:
    """A projection that reads a blob-held field: how many tasks each workflow was submitted with."""

    name = "task_count"

    def initial(self) -> dict[str, int]:
        return {}

    def apply(self, state: dict[str, int], event: events.Event) -> dict[str, int]:
        if isinstance(event, events.WorkflowSubmitted):
            state[event.workflow_id] = len(event.tasks)
        return state


async def test_projections_see_blob_held_fields_rebuilt_and_live(nats_bus: bus.Bus,
                                                                 event_log: store.SqliteEventLog) -> None:
    tasks = [events.TaskSpec(id=f"t{i}", type="noop", description="d" * 200) for i in range(500)]
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wide", tasks=tasks)
    live = store.LiveProjection(_TaskCount(), nats_bus, 1)
    stop = asyncio.Event()
    follower = asyncio.create_task(live.run(stop))
    async with running_writer(nats_bus, event_log):
        ack = await nats_bus.publish(submission)
        await live.wait_for(ack.seq)
        await wait_until(lambda: event_log.head_seq >= ack.seq, what="the submission stored")
    stop.set()
    await follower
    assert "tasks" in (await stored_events(event_log))[0].blobs
    assert live.state == {"wide": 500}
    assert await store.rebuild(_TaskCount(), event_log) == ({"wide": 500}, ack.seq)


async def test_an_actor_rebuilding_from_the_stream_reads_blob_carried_submissions(nats_bus: bus.Bus) -> None:
    """Security folds the submission while rebuilding (it was published before the actor
    started) and decides it from the resolved task list."""
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="before", tasks=[
        events.TaskSpec(id="long", type="echo", description="x" * 120_000)])
    await nats_bus.publish(submission)
    stop, ready = asyncio.Event(), asyncio.Event()
    actor = asyncio.create_task(run_actor(Security(Settings()), nats_bus, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        refused = await stored(nats_bus, "ymera.wf.before.refused")
    finally:
        stop.set()
        await actor
    assert [e.reason for e in refused if isinstance(e, events.WorkflowRefused)] == [
        "task long: description is 120000 characters, over the limit of 100000"]


def test_a_submission_over_the_blob_limit_is_refused_before_it_is_published(
    tmp_path: Path, nats_server: bus.EmbeddedServer,
) -> None:
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"workflow_id": "huge", "tasks": [
        {"id": "t", "type": "echo", "description": "x" * events.MAX_BLOB_BYTES}]}))
    submitted = ymera("submit", str(path), env=ymera_env(tmp_path / "data", nats_server.url), timeout=120)
    size = len(msgspec.json.encode([events.TaskSpec(id="t", type="echo", description="x" * events.MAX_BLOB_BYTES)]))
    assert (submitted.returncode, submitted.stdout) == (1, "")
    assert submitted.stderr == (f"ymera: WorkflowSubmitted.tasks is {size} bytes, "
                                f"over the {events.MAX_BLOB_BYTES}-byte limit of a blob\n")
