"""`ymera run / plan / status / cancel / up` as a user types them."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import bus
import events

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
    # An echo is scored in its attempt: its quality follows its success line.
    succeeded = next(i for i, line in enumerate(lines) if line.startswith("  fetch: succeeded in "))
    assert lines[succeeded + 1] == "  fetch: quality 1.00"
    assert run.stderr == ""
    assert bus.running_server(tmp_path / "data") is None  # the embedded server stopped with the run

    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0
    # 4 per run (submitted, admitted, validated, completed) and 2 per task (ready, and succeeded
    # with its score: no model writes these kinds), and the actors' attestations of them
    # (docs/security.md, "Attested events")
    rows, attested = logged(tmp_path / "data" / "events.db")
    assert rows - attested == 12
    assert attested > 0
    assert audit.stdout.startswith(f"audit: ok, {rows} events and 0 blobs verified")

    status = ymera("status", "pipeline-1", env=env)
    assert status.stdout.splitlines()[0].startswith("workflow pipeline-1: completed, overall quality 1.00, ")
    # The summary `run` printed, task by task (with clean's outcome checks under it)
    assert status.stdout.splitlines()[2:] == lines[-5:]
    assert lines[-3] == "    checks: contains ✓, max_length ✓"
    missing = ymera("status", "nope", env=env)
    assert (missing.returncode, missing.stderr) == (1, "ymera: no workflow nope in the stream\n")


def test_the_readme_first_command_succeeds_twice_in_a_row_in_the_same_directory(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "pipeline.yaml").write_bytes((EXAMPLES / "pipeline.yaml").read_bytes())
    env = {k: v for k, v in ymera_env(tmp_path).items() if k != "YMERA_DATA_DIR"}  # the default: ./.ymera
    outputs = []
    for n in (1, 2):
        run = ymera("run", "examples/pipeline.yaml", env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "workflow pipeline-1: completed, overall quality 1.00, " in run.stdout
        audit = ymera("audit", "verify", env=env, cwd=tmp_path)
        assert audit.returncode == 0, audit.stderr
        # 12 a run; from the second run on, the store writer's checkpoint of the run before,
        # published as it stopped (the log's head, signed); and the attestations of them all.
        rows, attested = logged(tmp_path / ".ymera" / "events.db")
        assert rows - attested == 12 * n + n - 1
        assert audit.stdout.startswith(f"audit: ok, {rows} events and 0 blobs verified")
        if n == 2:
            # The stream holds both runs' checkpoints (the second run's is past the log's head).
            assert f"audit: 2 signed checkpoints verified, the latest at seq {rows}\n" in audit.stdout
        outputs.append(run.stdout)
    run_ids = [out.split("\n  run ")[1].split("\n")[0] for out in outputs]
    assert run_ids[0] != run_ids[1]

    runs = ymera("runs", "pipeline-1", env=env, cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    table = [line.split() for line in runs.stdout.splitlines()]
    assert table[0] == ["run", "started", "(UTC)", "state", "duration"]
    assert [(row[0], row[3]) for row in table[1:]] == [(run_ids[0], "completed"), (run_ids[1], "completed")]
    # status shows the latest run; --run (an id or a prefix of one) any other.
    latest = ymera("status", "pipeline-1", env=env, cwd=tmp_path)
    assert latest.stdout.splitlines()[1] == f"  run {run_ids[1]}"
    first = ymera("status", "pipeline-1", "--run", run_ids[0][:8], env=env, cwd=tmp_path)
    assert first.stdout.splitlines()[1] == f"  run {run_ids[0]}"
    unknown = ymera("status", "pipeline-1", "--run", "zzz", env=env, cwd=tmp_path)
    assert (unknown.returncode, unknown.stderr) == (
        1, "ymera: workflow pipeline-1 has no run zzz (`ymera runs pipeline-1` lists them)\n")
    # Replay knows runs: each run's status under its workflow.
    replay = ymera("replay", "--projection", "workflow_status", env=env, cwd=tmp_path)
    assert json.loads(replay.stdout)["state"] == {"pipeline-1": {run_ids[0]: "completed", run_ids[1]: "completed"}}


def test_a_failed_outcome_check_a_timeout_and_a_skip_each_show_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "fails.yaml"
    path.write_text("workflow_id: fails\ntasks:\n"
                    "  - {id: check, type: echo, parameters: {text: hello}, expect: {contains: [bye]},"
                    " retry: {max_attempts: 2, initial_delay_seconds: 0.01}}\n"
                    "  - {id: slow, type: sleep, parameters: {seconds: 5}, timeout_seconds: 0.3,"
                    " retry: {max_attempts: 2, initial_delay_seconds: 0.01}}\n"
                    "  - {id: after, type: noop, dependencies: [slow]}\n")
    env = ymera_env(tmp_path / "data")
    run = ymera("run", str(path), env=env)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    check = "outcome check failed: contains: expected the output to contain 'bye'; output: 'hello'"
    # A failed check is a failed attempt: the task's retry policy applies.
    assert f"  check: attempt 1 failed (outcome): {check}" in lines
    assert f"  check: attempt 2 failed (outcome): {check}, no attempts left" in lines
    assert not any(line.startswith("  check: succeeded") for line in lines)
    assert "  slow: attempt 2 failed (timeout): timed out after 0.3s, no attempts left" in lines
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("workflow fails: failed")) :]
    assert summary[2:] == [
        f"  task check failed: {check}",
        f"  check: failed (attempts 2), {check}",
        "    checks: contains ✗ (expected the output to contain 'bye')",
        "  slow: failed (attempts 2), timed out after 0.3s",
        "  after: skipped, dependency slow did not succeed",
    ]
    status = ymera("status", "fails", env=env)
    assert status.stdout.splitlines() == summary


def test_run_of_an_invalid_workflow_prints_every_problem_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("workflow_id: bad\ntasks:\n  - {id: a, type: echo, dependencies: [a]}\n"
                    "  - {id: b, type: sleep}\n")
    run = ymera("run", str(path), env=ymera_env(tmp_path / "data"))
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[1].startswith("  run ")
    assert lines[:1] + lines[2:] == [
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
        "ymera: task design.type: no LLM is configured: set a provider's key (e.g. GEMINI_API_KEY or "
        "GROQ_API_KEY_1; docs/llm.md lists the providers) or YMERA_LLM_BASE_URL (any OpenAI-compatible endpoint, "
        "e.g. http://localhost:11434/v1 for Ollama) with YMERA_LLM_MODEL; or give the task both base_url and "
        "model parameters")


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
        active = submitted.stdout.split(" as event ")[1].split(",")[0]
        # A second run while one is active is refused, naming the active run; status still shows that one.
        again = ymera("run", str(slow), env=env)
        assert again.returncode == 1
        refused = again.stdout.splitlines()
        assert refused[0] == "workflow slow: refused"
        assert refused[2] == f"  workflow slow already has an active run {active}; wait for it to end or cancel it"
        _wait_for_status(env, "slow", "  nap: running (attempts 1)")
        status = ymera("status", "slow", env=env).stdout.splitlines()
        assert status == ["workflow slow: running", f"  run {active}", "  nap: running (attempts 1)"]

        cancel = ymera("cancel", "slow", "--reason", "too slow", env=env)
        assert (cancel.returncode, cancel.stdout) == (0, f"cancellation of slow run {active} requested\n")
        status = _wait_for_status(env, "slow", "workflow slow: cancelled")
        assert status == ["workflow slow: cancelled", f"  run {active}", "  too slow",
                          "  nap: cancelled (attempts 1), the workflow was cancelled: too slow"]

        # Nothing left to cancel, or nothing at all: one line, exit 1.
        twice = ymera("cancel", "slow", env=env)
        assert (twice.returncode, twice.stdout, twice.stderr) == (
            1, "", f"ymera: workflow slow has no active run to cancel (its latest run {active} ended cancelled)\n")
        unknown = ymera("cancel", "nope", env=env)
        assert (unknown.returncode, unknown.stderr) == (1, "ymera: no workflow nope in the stream\n")
        runs = [line.split() for line in ymera("runs", "slow", env=env).stdout.splitlines()[1:]]
        assert [(row[0], row[3]) for row in runs] == [(active, "cancelled"), (refused[1].split()[1], "refused")]
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, (tmp_path / "up.log").read_text()
    assert bus.running_server(tmp_path / "data") is None


def _wait_for_status(env: dict[str, str], workflow_id: str, line: str, timeout: float = 30) -> list[str]:
    """`ymera status` lines once one of them is `line`."""
    deadline = time.monotonic() + timeout
    while line not in (lines := ymera("status", workflow_id, env=env).stdout.splitlines()):
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
    return lines


async def test_status_names_an_ambiguous_or_unknown_run_and_runs_lists_undecided_ones(
        tmp_path: Path, nats_server: bus.EmbeddedServer) -> None:
    connection = await bus.connect(nats_server.url)
    try:  # a client may choose its submissions' ids, so two runs can share a prefix
        for run_id in ("aa1", "aa2"):
            await connection.publish(events.WorkflowSubmitted(id=run_id, ts=events.now(), workflow_id="wf"))
    finally:
        await connection.close()
    env = ymera_env(tmp_path, nats_server.url)
    ambiguous = ymera("status", "wf", "--run", "aa", env=env)
    assert (ambiguous.returncode, ambiguous.stderr) == (
        1, "ymera: run aa is ambiguous: 2 runs of workflow wf begin with it\n")
    one = ymera("status", "wf", "--run", "aa1", env=env)
    assert one.stdout.splitlines() == ["workflow wf: submitted", "  run aa1"]
    runs = ymera("runs", "wf", env=env)
    assert [line.split()[::3] for line in runs.stdout.splitlines()[1:]] == [["aa1", "submitted"], ["aa2", "submitted"]]
    assert [line.split()[-1] for line in runs.stdout.splitlines()[1:]] == ["-", "-"]  # no duration while active


def logged(db: Path) -> tuple[int, int]:
    """The log's rows, and how many of them are attestations."""
    connection = sqlite3.connect(db)
    try:
        rows, attested = connection.execute("SELECT count(*), count(*) FILTER (WHERE type = 'Attested') "
                                            "FROM events").fetchone()
    finally:
        connection.close()
    return int(rows), int(attested)
