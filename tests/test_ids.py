"""Workflow and task ids are checked by the events' rule before anything is published.

A bad id used to reach NATS: the Python API published workflow `>` and got a bare NATS
`ServerError`; workflow `a.b` was published on a subject nobody followed and waited forever.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import bus
import events
import runner
from actors import Settings
from ymera import Task, WorkflowOrchestrator

RULE = ("is not valid: an id is 1 to 128 letters, digits, '_' or '-', starting with a letter or digit "
        "(ids become NATS subject tokens)")
LONG = "x" * 200
BAD = [">", "a.b", "a b", "*", "", LONG]
SHOWN = {LONG: f"'{'x' * 40}'… (200 characters)"}


def invalid(what: str, value: str) -> str:
    return f"{what} {SHOWN.get(value, repr(value))} {RULE}"


def workflow_id_message(value: str) -> str:
    if value == "_":
        return "workflow id '_' is reserved for events that belong to no workflow"
    return invalid("workflow id", value)


async def _published(url: str) -> int:
    connection = await bus.connect(url)
    try:
        return int((await connection.js.stream_info(connection.stream.name)).state.messages)
    finally:
        await connection.close()


@pytest.mark.parametrize("value", [*BAD, "_"])
def test_a_task_refuses_an_id_that_cannot_name_one(value: str) -> None:
    with pytest.raises(events.InvalidId) as info:
        Task(value)
    assert str(info.value) == invalid("task id", value)
    assert (info.value.what, info.value.value) == ("task id", value)


async def test_the_python_api_checks_ids_before_publishing(nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    settings = Settings(nats_url=nats_server.url, data_dir=tmp_path / "data")
    async with WorkflowOrchestrator(settings, run_actors=False) as orch:
        for value in [*BAD, "_"]:
            with pytest.raises(events.InvalidId) as info:
                await orch.execute_workflow(value, [Task("t")], timeout=5)
            assert str(info.value) == workflow_id_message(value)
        task = Task("t")
        task.task_id = "t.1"  # changed after it was made
        with pytest.raises(events.InvalidId) as info:
            await orch.execute_workflow("wf", [task], timeout=5)
        assert str(info.value) == invalid("task id", "t.1")
    assert await _published(nats_server.url) == 0


@pytest.fixture
def cli(nats_server: bus.EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`ymera` in this process, on a real server; returns its URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NATS_URL", nats_server.url)
    monkeypatch.setenv("YMERA_DATA_DIR", str(tmp_path / "data"))
    return nats_server.url


@pytest.mark.parametrize("value", [*BAD, "_"])
def test_cancel_and_status_check_the_workflow_id_before_publishing(
        cli: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("cancel", "status"):
        assert runner.main([command, value]) == 1
        assert capsys.readouterr().err == f"ymera: {workflow_id_message(value)}\n", command
    assert asyncio.run(_published(cli)) == 0


@pytest.mark.parametrize("value", [*BAD, "_"])
def test_run_submit_and_plan_check_the_workflow_files_ids(
        cli: str, tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad_workflow = tmp_path / "bad_workflow.json"
    bad_workflow.write_text(json.dumps({"workflow_id": value, "tasks": [{"id": "t", "type": "noop"}]}))
    for command in ("run", "submit", "plan"):
        assert runner.main([command, str(bad_workflow)]) == 1
        assert capsys.readouterr().err == f"ymera: {bad_workflow}: {workflow_id_message(value)}\n", command
    if value != "_":
        bad_task = tmp_path / "bad_task.json"
        bad_task.write_text(json.dumps({"workflow_id": "wf", "tasks": [{"id": "ok", "type": "noop"},
                                                                       {"id": value, "type": "noop"}]}))
        for command in ("run", "submit", "plan"):
            assert runner.main([command, str(bad_task)]) == 1
            assert capsys.readouterr().err == f"ymera: {bad_task}: {invalid('task id', value)}\n", command
    assert asyncio.run(_published(cli)) == 0


def test_a_yaml_workflow_file_gets_the_same_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "dotted.yaml"
    path.write_text("workflow_id: a.b\ntasks:\n  - {id: t, type: noop}\n")
    assert runner.main(["plan", str(path)]) == 1
    assert capsys.readouterr().err == f"ymera: {path}: {invalid('workflow id', 'a.b')}\n"
