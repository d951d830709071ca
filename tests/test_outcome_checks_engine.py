"""Outcome checks through the real engine: each check's result in TaskFailed / TaskSucceeded,
a failed check retried like any failed attempt, and the checks in `ymera run` and `ymera status`.
Real nats-server, real SQLite, a local OpenAI-format server for the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

import bus
import events
from actors import Settings, load_settings
from ymera import WorkflowClient

from .conftest import ymera, ymera_env
from .engine import all_events, in_process
from .llm_server import OpenAIServer

TESTS = "def test_add():\n    assert add(2, 3) == 5\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
LINTED = "```python\nimport os\n\n\ndef add(a, b):\n    return a + b\n```\n"
CLEAN = "Here it is:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"


@pytest.fixture
async def engine(nats_bus: bus.Bus, tmp_path: Path, llm: OpenAIServer) -> AsyncIterator[Settings]:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.2",
                              "YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "test-model"}, dotenv=None)
    async with in_process(settings, nats_bus):
        yield settings


async def test_a_lint_failure_is_a_failed_attempt_with_every_check_and_the_retry_passes_them_all(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    llm.reply(LINTED)
    llm.reply(CLEAN)
    task = events.TaskSpec(id="gen", type="llm", parameters={"prompt": "write add(a, b) in Python"},
                           expect=events.Expectations(language="python", lint=True, tests=TESTS),
                           retry=events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.01))
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-checks", tasks=[task])
    client = WorkflowClient(nats_bus)
    end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=60)
    assert isinstance(end, events.WorkflowCompleted), end
    seen = await all_events(nats_bus, "ymera.*.wf-checks.>")
    [failed] = [e for e in seen if isinstance(e, events.TaskFailed)]
    assert (failed.attempt, failed.kind, failed.retryable) == (1, "outcome", True)
    assert failed.checks == [
        events.CheckResult("parses:python", True),
        events.CheckResult("lint:ruff", False, "1 finding: F401; code line 1: F401 `os` imported but unused"),
        events.CheckResult("tests", True, "2 of 2 passed"),
    ]
    assert failed.error == ("outcome check failed: lint:ruff: 1 finding: F401; code line 1: F401 `os` imported but "
                            "unused")
    [succeeded] = [e for e in seen if isinstance(e, events.TaskSucceeded)]
    assert succeeded.attempt == 2
    assert succeeded.checks == [events.CheckResult("parses:python", True), events.CheckResult("lint:ruff", True),
                                events.CheckResult("tests", True, "2 of 2 passed")]


def test_run_and_status_show_each_check(tmp_path: Path) -> None:
    workflow = {"workflow_id": "checked", "tasks": [
        {"id": "gen", "type": "echo", "parameters": {"text": CLEAN},
         "expect": {"language": "python", "lint": True, "tests": TESTS}},
        {"id": "record", "type": "echo", "parameters": {"text": '{"name": 7}'},
         "expect": {"json_schema": {"type": "object", "required": ["name", "age"],
                                    "properties": {"name": {"type": "string"}}}},
         "retry": {"max_attempts": 1}},
        {"id": "report", "type": "echo", "parameters": {"text": "# Overview\n\nAll good.\n\n## Risks\n"},
         "expect": {"sections": ["Overview", "Risks"], "min_length": 10}, "retry": {"max_attempts": 1}},
    ]}
    path = tmp_path / "checked.yaml"
    path.write_text(yaml.safe_dump(workflow))
    env = ymera_env(tmp_path / "data")
    run = ymera("run", str(path), env=env)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    gen = "    checks: parses:python ✓, lint:ruff ✓, tests ✓ (2 of 2 passed)"
    record = ("    checks: json_schema ✗ (2 errors: at $: 'age' is a required property)")
    report = "    checks: min_length ✓, sections ✗ (empty: 'Risks')"
    # Under each attempt's line as it ends.
    assert lines[lines.index(gen) - 1].startswith("  gen: succeeded in ")
    assert lines[lines.index(record) - 1] == (
        "  record: attempt 1 failed (outcome): outcome check failed: json_schema: 2 errors: at $: 'age' is a "
        "required property; at $.name: 7 is not of type 'string', no attempts left")
    assert lines[lines.index(report) - 1] == (
        "  report: attempt 1 failed (outcome): outcome check failed: sections: empty: 'Risks'; headings found: "
        "'Overview', 'Risks', no attempts left")
    # And under each task in the summary, which `ymera status` prints again.
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("workflow checked: failed")):]
    assert summary[summary.index(gen) - 1] == "  gen: succeeded (attempts 1) quality 1.00"
    assert summary[summary.index(record) - 1].startswith("  record: failed (attempts 1), outcome check failed: ")
    assert summary[summary.index(report) - 1].startswith("  report: failed (attempts 1), outcome check failed: ")
    status = ymera("status", "checked", env=env)
    assert status.stdout.splitlines() == summary
