"""The Python API with nothing configured: embedded nats-server, every actor in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

import bus
import events
import store
from actors import Settings
from ymera import Task, TaskPriority, WorkflowOrchestrator


async def test_the_orchestrator_runs_a_workflow_on_the_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    async with WorkflowOrchestrator(settings) as orch:
        assert bus.running_server(tmp_path / "data") is not None
        result = await orch.execute_workflow(workflow_id="wf_api", tasks=[
            Task("greet", task_type="echo", parameters={"text": "hello"}, priority=TaskPriority.HIGH),
            Task("shout", task_type="echo", description="{{ tasks.greet.output }}!", dependencies=["greet"]),
        ], timeout=60)
        assert orch.monitor.get_monitoring_report()["monitoring_status"] == "active"
    assert result["status"] == "completed"
    assert result["parallel_groups"] == [["greet"], ["shout"]]
    assert result["monitoring"]["monitoring_status"] == "active"
    assert bus.running_server(tmp_path / "data") is None  # stopped with the orchestrator

    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        stored = [events.decode(r.data) async for r in log.read()]
        assert (await store.verify(log)).ok
    shout = next(e for e in stored if isinstance(e, events.TaskSucceeded) and e.task_id == "shout")
    assert shout.output == "hello!"
    # close() waited for the store writer: the run's end is in the log, once.
    assert [e.workflow_id for e in stored if isinstance(e, events.WorkflowCompleted)] == ["wf_api"]


async def test_the_same_workflow_id_runs_again_and_each_result_names_its_run(tmp_path: Path) -> None:
    # The original guide's validation script fixes its workflow ids, so a second run reuses them.
    async with WorkflowOrchestrator(Settings(data_dir=tmp_path / "data")) as orch:
        results = [await orch.execute_workflow(workflow_id="wf_fixed", tasks=[
            Task("greet", task_type="echo", parameters={"text": f"hello {n}"})], timeout=60) for n in (1, 2)]
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert results[0]["run_id"] != results[1]["run_id"]
    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        stored = [events.decode(r.data) async for r in log.read()]
    outputs = [(e.run_id, e.output) for e in stored if isinstance(e, events.TaskSucceeded)]
    assert outputs == [(results[0]["run_id"], "hello 1"), (results[1]["run_id"], "hello 2")]


async def test_a_closed_orchestrator_refuses_to_start_again(tmp_path: Path) -> None:
    orch = WorkflowOrchestrator(Settings(data_dir=tmp_path / "data"))
    await orch.close()
    await orch.close()  # twice is fine
    with pytest.raises(events.YmeraError) as info:
        await orch.execute_workflow(workflow_id="wf_late", tasks=[Task("t", task_type="noop")])
    assert str(info.value) == "this WorkflowOrchestrator is closed; create a new one"
