"""MCP servers as task kinds (actors/executor/_mcp.py), through the whole engine on a real
nats-server: a workflow uses three real MCP servers from PyPI (mcp-server-time, -git, -fetch)
and two built-in tools, and its log holds every MCP call (`ToolCalled`) with its arguments,
secrets redacted, and its answer as a blob; grants are checked by the validator before
anything runs, and again by the executor; a bad YMERA_MCP_SERVERS file stops the start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bus
import events
from actors import Settings, load_settings, registry
from actors._outcome import TaskError
from actors.executor._kinds import context, run_task
from events import YmeraError

from .mcp_servers import SERVER_SOURCE, console_script, git, new_repo
from .support import serving, wait_until
from .tool_deployment import of, run_all

PAGE = ("<html><body><h1>Hello from Ymera</h1>" + "<p>Event-sourced workflows, served locally.</p>" * 60
        + "</body></html>")


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """The servers these tests declare are registered tools (mcp:<name>) for their process; not
    for the tests after them."""
    saved = dict(registry.TOOLS)
    yield
    registry.TOOLS.clear()
    registry.TOOLS.update(saved)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "page.html").write_text(PAGE)
    with serving(root) as host:
        yield host


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_repo(tmp_path / "repo")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "First of all")
    return root


def deployment(tmp_path: Path, repo: Path) -> Settings:
    servers = {"mcpServers": {
        "time": {"command": console_script("mcp-server-time")},
        "git": {"command": console_script("mcp-server-git"), "args": ["--repository", str(repo)]},
        "fetch": {"command": console_script("mcp-server-fetch"), "args": ["--ignore-robots-txt",
                                                                          "--allow-private-ips"],
                  "env": {"FETCH_TOKEN": "s3cr3t-fetch-token"}, "timeout": 30},
    }}
    (tmp_path / "mcp.json").write_text(json.dumps(servers))
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        db.executemany("INSERT INTO orders (total) VALUES (?)", [(9.5,), (20.0,), (4.25,)])
    db.close()
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_WORKSPACE": str(tmp_path / "workspace"),
                          "YMERA_MCP_SERVERS": str(tmp_path / "mcp.json"),
                          "YMERA_DATABASES": f"shop=sqlite:{database}"}, dotenv=None)


def task(task_id: str, type: str, params: dict[str, Any], tools: list[str], *deps: str) -> events.TaskSpec:
    return events.TaskSpec(id=task_id, type=type, parameters=params, tools=tools, dependencies=list(deps))


def submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def test_a_workflow_of_three_mcp_servers_and_two_built_in_tools_runs_and_its_log_shows_every_call(
        nats_bus: bus.Bus, tmp_path: Path, repo: Path, site: str) -> None:
    settings = deployment(tmp_path, repo)
    page = f"http://reader:hunter2@{site}/page.html"  # a password in a URL: redacted in the log
    sub = submission(
        "mcp-mix",
        task("now", "mcp", {"server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}},
             ["mcp:time"]),
        task("page", "mcp", {"server": "fetch", "tool": "fetch", "arguments": {"url": page, "max_length": 20000}},
             ["mcp:fetch"]),
        task("log", "mcp", {"server": "git", "tool": "git_log", "arguments": {"repo_path": str(repo)}},
             ["mcp:git"]),
        task("orders", "sql", {"database": "shop", "sql": "SELECT count(*), sum(total) FROM orders"}, ["sql"]),
        task("save", "files", {"op": "write", "path": "report.md",
                               "content": "# Report\n{{ tasks.log.output }}\n{{ tasks.orders.output }}\n"
                                          "{{ tasks.now.output }}\n{{ tasks.page.output }}"},
             ["files"], "now", "page", "log", "orders"),
    )
    ends = await run_all(settings, nats_bus, [sub])
    end, seen = ends["mcp-mix"]
    assert isinstance(end, events.WorkflowCompleted), [e for e in seen if isinstance(e, events.TaskFailed)]
    report = (tmp_path / "workspace" / "report.md").read_text()
    assert "First of all" in report  # git_log's answer
    assert "Hello from Ymera" in report  # the page fetched
    assert "[3,33.75]" in report  # the query's rows

    raw = [events.decode(m.data) async for m in nats_bus.read_through(events.subject_filter(events.ToolCalled))]
    calls = {c.tool: c for c in raw if isinstance(c, events.ToolCalled)}
    assert set(calls) == {"mcp:time", "mcp:fetch", "mcp:git"}
    assert (calls["mcp:time"].name, calls["mcp:time"].arguments, calls["mcp:time"].is_error) == (
        "get_current_time", {"timezone": "UTC"}, False)
    assert calls["mcp:git"].arguments == {"repo_path": str(repo)}
    assert calls["mcp:fetch"].arguments["url"] == f"http://reader:[REDACTED]@{site}/page.html"
    # (The submission holds it, as its author wrote it; the call's record does not.)
    assert "hunter2" not in json.dumps([msgspec_of(c) for c in calls.values()])
    # Each answer a blob's worth is a blob: the event keeps its digest; read back, it is the answer.
    fetched = calls["mcp:fetch"]
    assert "result" in fetched.blobs
    assert fetched.result is None
    answer = await events.load_blob(fetched.blobs["result"], nats_bus.get_blob)
    assert "Hello from Ymera" in answer
    assert calls["mcp:time"].result["timezone"] == "UTC"  # small: inline
    assert all(c.duration_ms > 0 for c in calls.values())
    # The built-in tools made no ToolCalled: their parameters are the call, in the TaskReady.
    assert not of(events.ToolRefused, seen)


def msgspec_of(event: events.Event) -> str:
    return events.encode(event).decode()


async def test_a_tool_error_answer_fails_the_task_and_is_in_the_log(
        nats_bus: bus.Bus, tmp_path: Path, repo: Path) -> None:
    settings = deployment(tmp_path, repo)
    sub = submission("mcp-error", task("when", "mcp", {"server": "time", "tool": "get_current_time",
                                                      "arguments": {"timezone": "Mars/Olympus_Mons"}}, ["mcp:time"]))
    end, seen = (await run_all(settings, nats_bus, [sub]))["mcp-error"]
    assert isinstance(end, events.WorkflowFailed)
    [failed] = of(events.TaskFailed, seen)
    assert failed.error.startswith("mcp:time: tool 'get_current_time' reported an error: ")
    assert "Mars/Olympus_Mons" in failed.error
    assert failed.retryable is False
    [called] = [e async for e in _calls(nats_bus)]
    assert called.is_error


async def _calls(connection: bus.Bus) -> Any:
    async for msg in connection.read_through(events.subject_filter(events.ToolCalled)):
        yield events.decode(msg.data)


async def test_grants_are_checked_before_anything_runs(nats_bus: bus.Bus, tmp_path: Path, repo: Path) -> None:
    settings = deployment(tmp_path, repo)
    ungranted = submission("mcp-ungranted", task("log", "mcp", {"server": "git", "tool": "git_log",
                                                               "arguments": {"repo_path": str(repo)}}, []))
    unknown = submission("mcp-unknown", task("x", "mcp", {"server": "nope", "tool": "anything"}, ["mcp:nope"]))
    other = submission("mcp-other", task("log", "mcp", {"server": "git", "tool": "git_log"}, ["mcp:time"]))
    ends = await run_all(settings, nats_bus, [ungranted, unknown, other])
    reasons = {}
    for workflow_id, (end, seen) in ends.items():
        assert isinstance(end, events.WorkflowInvalid), end
        assert not of(events.TaskReady, seen)  # refused before anything ran
        reasons[workflow_id] = " | ".join(p.message for p in end.problems)
    assert ("task type 'mcp' uses tool 'mcp:git' (calls the tools of MCP server 'git'), which this task is not "
            "granted: add tools: [mcp:git] to the task") in reasons["mcp-ungranted"]
    assert "unknown MCP server 'nope' (mcp:nope); registered: " in reasons["mcp-unknown"]
    assert "mcp:git" in reasons["mcp-unknown"]
    assert "which this task is not granted: add 'mcp:git' to its tools" in reasons["mcp-other"]


async def test_the_executor_checks_the_grant_again_and_names_undeclared_servers(tmp_path: Path, repo: Path) -> None:
    settings = deployment(tmp_path, repo)
    async with context(settings) as ctx:
        with pytest.raises(TaskError, match=r"not run: task type 'mcp' uses tool 'mcp:git' .* not granted"):
            await run_task(task("log", "mcp", {"server": "git", "tool": "git_log"}, []), {}, ctx, timeout=30)
        bare = load_settings({"YMERA_DATA_DIR": str(tmp_path / "other")}, dotenv=None)
    async with context(bare) as ctx:  # an executor of a deployment that declares no such server
        with pytest.raises(TaskError, match=r"no MCP server named 'git' is declared on this executor "
                                            r"\(YMERA_MCP_SERVERS; declared: none\)"):
            await run_task(task("log", "mcp", {"server": "git", "tool": "git_log"}, ["mcp:git"]), {}, ctx,
                           timeout=30)


@pytest.mark.parametrize(("content", "error"), [
    (None, r"setting YMERA_MCP_SERVERS: .*mcp.json: cannot read it: No such file or directory"),
    ("{not json", r"setting YMERA_MCP_SERVERS: .*mcp.json: .* \(expected \{\"mcpServers\": "),
    ('{"servers": {}}', r"setting YMERA_MCP_SERVERS: .*mcp.json: Object missing required field `mcpServers`"),
    ('{"mcpServers": {"a b": {"command": "x"}}}', r"server name 'a b' is not a plain name"),
    ('{"mcpServers": {"git": {"command": "x", "url": "http://h"}}}',
     r"server 'git' needs a command \(stdio\) or a url \(streamable HTTP\), one of the two"),
    ('{"mcpServers": {"git": {}}}', r"server 'git' needs a command \(stdio\) or a url"),
    ('{"mcpServers": {"git": {"command": "x", "arg": []}}}', r"Object contains unknown field `arg`"),
    ('{"mcpServers": {"git": {"command": "x", "timeout": 0}}}', r"server 'git': timeout must be above 0 seconds"),
])
def test_a_bad_servers_file_stops_the_start_saying_why(tmp_path: Path, content: str | None, error: str) -> None:
    path = tmp_path / "mcp.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(YmeraError, match=error):
        load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_MCP_SERVERS": str(path)}, dotenv=None)


def test_a_servers_env_never_shows_in_the_settings(tmp_path: Path, repo: Path) -> None:
    settings = deployment(tmp_path, repo)
    assert "s3cr3t-fetch-token" not in repr(settings)
    assert "mcp_servers=['fetch', 'git', 'time']" in repr(settings.tools)


async def test_a_server_killed_mid_call_fails_the_attempt_saying_how_and_the_retry_runs_on_a_new_one(
        nats_bus: bus.Bus, tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SOURCE)
    marker = tmp_path / "pid"
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"custom": {"command": sys.executable,
                                                                             "args": [str(script)]}}}))
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"),
                              "YMERA_MCP_SERVERS": str(tmp_path / "mcp.json")}, dotenv=None)
    nap = events.TaskSpec(id="nap", type="mcp", tools=["mcp:custom"],
                          parameters={"server": "custom", "tool": "sleep",
                                      "arguments": {"seconds": 1.5, "marker": str(marker)}},
                          retry=events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.1))

    async def kill_the_first_server() -> int:
        # The file the server writes its pid to as it starts sleeping.
        await wait_until(lambda: marker.exists() and marker.read_text(), timeout=60,
                         what="the server to be in the call")
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        return pid

    killer = asyncio.create_task(kill_the_first_server())
    end, seen = (await run_all(settings, nats_bus, [submission("mcp-killed", nap)]))["mcp-killed"]
    killed = await killer
    assert isinstance(end, events.WorkflowCompleted), end
    [failed] = of(events.TaskFailed, seen)
    assert failed.retryable
    assert failed.error.startswith("mcp:custom: the call of 'sleep' failed: server 'custom' was killed by SIGKILL")
    [succeeded] = of(events.TaskSucceeded, seen)
    assert (succeeded.attempt, succeeded.output) == (2, {"result": "awake"})  # its structured answer
    assert int(marker.read_text()) != killed  # the second attempt ran on a server started again
