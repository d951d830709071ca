"""`ymera run / plan / status / cancel / up` as a user types them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import bus

from .conftest import spawn_ymera, ymera, ymera_env

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_run_executes_the_example_on_the_embedded_defaults_and_stores_every_event(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    run = ymera("run", str(EXAMPLES / "pipeline.yaml"), env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "validated: 4 tasks in 3 parallel groups, estimated speedup 1.33x"
    assert "workflow pipeline-1: completed, overall quality 1.00, " in run.stdout
    assert "  report: succeeded (attempts 1) quality 1.00" in lines
    assert run.stderr == ""
    assert bus.running_server(tmp_path / "data") is None  # the embedded server stopped with the run

    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0
    assert audit.stdout.startswith("audit: ok, 24 events and 0 blobs verified")

    status = ymera("status", "pipeline-1", env=env)
    assert status.stdout.splitlines()[:2] == ["workflow pipeline-1: completed", "  fetch: succeeded (attempt 1)"]
    missing = ymera("status", "nope", env=env)
    assert (missing.returncode, missing.stderr) == (1, "ymera: no workflow nope in the stream\n")


def test_run_of_an_invalid_workflow_prints_every_problem_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("workflow_id: bad\ntasks:\n  - {id: a, type: echo, dependencies: [a]}\n"
                    "  - {id: b, type: sleep}\n")
    run = ymera("run", str(path), env=ymera_env(tmp_path / "data"))
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        "workflow bad: invalid",
        "  task a.dependencies: depends on itself",
        "  task b.parameters.seconds: missing required parameter 'seconds' (a number between 0 and 86400)",
    ]


def test_plan_shows_parallel_groups_without_running_anything(tmp_path: Path) -> None:
    plan = ymera("plan", str(EXAMPLES / "pipeline.yaml"), env=ymera_env(tmp_path, "nats://127.0.0.1:1"))
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "workflow pipeline-1: 4 tasks in 3 parallel groups, estimated parallel speedup 1.33x",
        "  group 1: fetch, wait",
        "  group 2: clean",
        "  group 3: report",
        "  critical path: fetch -> clean -> report",
    ]


def test_plan_of_an_agent_workflow_without_a_model_says_how_to_configure_one(tmp_path: Path) -> None:
    plan = ymera("plan", str(EXAMPLES / "design_review.yaml"), env=ymera_env(tmp_path))
    assert plan.returncode == 1
    lines = plan.stderr.splitlines()
    assert len(lines) == 4
    assert lines[0] == (
        "ymera: task design.type: no LLM is configured: set YMERA_LLM_BASE_URL (any OpenAI-compatible endpoint, "
        "e.g. http://localhost:11434/v1 for Ollama) and YMERA_LLM_MODEL, and YMERA_LLM_API_KEY if it needs one; "
        "or give the task both base_url and model parameters")


def test_up_serves_workflows_submitted_by_other_commands_and_cancel_stops_one(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    up = spawn_ymera("up", env=env, output=tmp_path / "up.log")
    try:
        deadline = time.monotonic() + 30
        while bus.running_server(tmp_path / "data") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        run = ymera("run", str(EXAMPLES / "pipeline.yaml"), env=env)
        assert run.returncode == 0, run.stderr
        slow = tmp_path / "slow.yaml"
        slow.write_text("workflow_id: slow\ntasks:\n  - {id: nap, type: sleep, parameters: {seconds: 60}}\n")
        submitted = ymera("submit", str(slow), env=env)
        assert submitted.returncode == 0
        cancel = ymera("cancel", "slow", "--reason", "too slow", env=env)
        assert (cancel.returncode, cancel.stdout) == (0, "cancellation of slow requested\n")
        deadline = time.monotonic() + 30
        while "workflow slow: cancelled" not in (status := ymera("status", "slow", env=env)).stdout:
            assert time.monotonic() < deadline, status.stdout
            time.sleep(0.2)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, (tmp_path / "up.log").read_text()
    assert bus.running_server(tmp_path / "data") is None
