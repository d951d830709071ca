"""`ymera plan` and `ymera run` agree on what runs, say plainly what YAML did to a number, and
`ymera run --timeout` gives up on time, saying what became of the workflow."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import events
import runner
import store

from .conftest import ymera, ymera_env

NOT_DIRECT = ("task c.description: {{ tasks.a.output }} refers to task 'a', which is not a direct dependency of "
              "this task: add 'a' to its dependencies (a task receives only its direct dependencies' outputs)")
TRANSITIVE = """workflow_id: transitive
tasks:
  - {id: a, type: echo, parameters: {text: alpha}}
  - {id: b, type: echo, parameters: {text: beta}, dependencies: [a]}
  - {id: c, type: echo, description: "{{ tasks.a.output }} and {{ tasks.b.output }}", dependencies: [b]}
"""


def test_plan_and_run_refuse_a_reference_to_a_transitive_dependency_alike(tmp_path: Path) -> None:
    path = tmp_path / "transitive.yaml"
    path.write_text(TRANSITIVE)
    env = ymera_env(tmp_path / "data")
    plan = ymera("plan", str(path), env=env)
    assert (plan.returncode, plan.stderr) == (1, f"ymera: {NOT_DIRECT}\n")
    run = ymera("run", str(path), env=env)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[1].startswith("  run ")  # the run's id
    assert lines[:1] + lines[2:] == ["workflow transitive: invalid", f"  {NOT_DIRECT}"]

    path.write_text(TRANSITIVE.replace("dependencies: [b]}", "dependencies: [b, a]}"))
    run = ymera("run", str(path), env=ymera_env(tmp_path / "data2"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "  c: succeeded (attempts 1) quality 1.00" in run.stdout.splitlines()


def _plan(path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path.write_text(text)
    assert runner.main(["plan", str(path)]) == 1
    return capsys.readouterr().err


@pytest.mark.parametrize(("fields", "message"), [
    ("timeout_seconds: 1e12", "task t.timeout_seconds: expected a number, got the string '1e12' (YAML 1.1 reads "
                              "1e12 as a string; write 1.0e+12)"),
    ("retry: {max_delay_seconds: 2.5e3}", "task t.retry.max_delay_seconds: expected a number, got the string "
                                          "'2.5e3' (YAML 1.1 reads 2.5e3 as a string; write 2.5e+3)"),
])
def test_a_number_yaml_reads_as_a_string_is_named_with_how_to_write_it(
        tmp_path: Path, fields: str, message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "numbers.yaml"
    err = _plan(path, f"workflow_id: w\ntasks:\n  - {{id: t, type: noop, {fields}}}\n", capsys)
    assert err == f"ymera: {path}: {message}\n"


def test_numbers_yaml_reads_as_strings_elsewhere_and_the_bounds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "numbers.yaml"
    err = _plan(path, "workflow_id: w\nmax_parallel_tasks: 1e3\ntasks:\n  - {id: t, type: noop}\n", capsys)
    assert err == (f"ymera: {path}: max_parallel_tasks: expected an integer, got the string '1e3' (YAML 1.1 reads "
                   "1e3 as a string; write 1000)\n")
    # Written as YAML 1.1 numbers, they reach the validator and its upper bounds.
    err = _plan(path, "workflow_id: w\ntasks:\n  - {id: t, type: sleep, timeout_seconds: 1.0e+12, "
                      "parameters: {seconds: 1e12}}\n", capsys)
    assert err.splitlines() == [
        "ymera: task t.parameters.seconds: parameter 'seconds' must be a number between 0 and 86400, got the string "
        "'1e12' (YAML 1.1 reads 1e12 as a string; write 1.0e+12)",
        "ymera: task t.timeout_seconds: timeout_seconds must be greater than 0 and at most 86400 (24 hours), "
        "got 1e+12",
    ]


SLOW = "workflow_id: slow\ntasks:\n  - {id: nap, type: sleep, parameters: {seconds: 600}}\n"


def test_run_gives_up_on_time_while_its_own_executor_runs_an_attempt_and_cancels_the_workflow(
        tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    # Heartbeats every 0.5 s: the attempt has outlived its first one (TaskStarted) when `run` gives up.
    env = {**ymera_env(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.5"}
    # Before, the in-process executor finished the 600 s attempt before `run` returned.
    run = ymera("run", str(path), "--timeout", "2", env=env, timeout=60)
    assert run.returncode == 1
    assert run.stderr == "ymera: gave up waiting for workflow slow after 2s; cancelled it (its actors ran in this " \
                         "process)\n"
    assert "  nap: released (attempt 1)\n  nap: started (attempt 1, " in run.stdout

    async def ends() -> list[events.Event]:
        async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
            stored = [events.decode(r.data) async for r in log.read()]
        return [e for e in stored
                if isinstance(e, (events.WorkflowCancelled, events.WorkflowCompleted, events.WorkflowFailed))]

    ended = asyncio.run(ends())
    assert [(type(e).__name__, e.workflow_id, getattr(e, "reason", None)) for e in ended] == [
        ("WorkflowCancelled", "slow", "gave up waiting after 2s")]


def test_run_without_its_own_actors_gives_up_and_says_the_workflow_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    run = ymera("run", str(path), "--timeout", "0.5", "--no-actors", env=ymera_env(tmp_path / "data"), timeout=60)
    assert (run.returncode, run.stderr) == (1, "ymera: gave up waiting for workflow slow after 0.5s; it goes on "
                                               "(ymera status slow to follow it, ymera cancel slow to stop it)\n")


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_run_refuses_a_timeout_that_is_not_positive(
        tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.main(["run", "missing.yaml", "--timeout", value]) == 1
    assert capsys.readouterr().err == f"ymera: --timeout must be a number of seconds greater than 0, got {value}\n"
