"""The built-in tools as task kinds, run through the whole engine on a real nats-server: each
escape attempt fails with the reason a user reads, leaves the machine as it was and is a
`ToolRefused` security event in the log (counted by the security report); a workflow chains
three tools; and a task not granted its tool is refused by the validator before anything runs.

The deployment (`Deployment`) is real: a workspace with a symlink out of it, a file outside it,
a SQLite database, a local HTTP server that must never be reached, an allowlist of programs.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import bus
import events
import store
from actors import Settings, load_settings
from actors.executor._tools_refusal import ToolRefusal, failure
from config import ToolSettingsError
from tools import ToolError
from ymera import WorkflowClient
from ymera._report import security_report, security_text

from .engine import in_process

ROOT = os.geteuid() == 0
NOBODY = 65534
SECRET = "the contents of a file outside the workspace\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal data")

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Deployment:
    root: Path
    workspace: Path
    outside: Path
    database: Path
    server: http.server.ThreadingHTTPServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def requests(self) -> list[str]:
        return self.server.requests  # type: ignore[attr-defined, no-any-return]

    def settings(self) -> Settings:
        return load_settings({
            "YMERA_DATA_DIR": str(self.root / "data"), "YMERA_WORKSPACE": str(self.workspace),
            # Allowed by name, yet each is a loopback or metadata address: the address rule refuses them.
            "YMERA_HTTP_ALLOW_HOSTS": "127.0.0.1, localhost, 169.254.169.254",
            "YMERA_COMMANDS": "ls -l, wc -l, echo",
            "YMERA_DATABASES": f"shop=sqlite:{self.database}",
        }, dotenv=None)

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute("SELECT name, price FROM items ORDER BY name").fetchall()

    def state(self) -> dict[str, Any]:
        """What an escape must leave unchanged: every file in and out of the workspace, the rows,
        the requests the server saw, the sandbox's work dirs and processes."""
        files = {str(p.relative_to(self.root)): (p.readlink() if p.is_symlink() else p.read_bytes() if p.is_file()
                                                 else "dir")
                 for base in (self.workspace, self.outside) for p in sorted(base.rglob("*"))}
        return {"files": files, "rows": self.rows(), "requests": list(self.requests),
                "work dirs": sorted(p.name for p in Path(tempfile.gettempdir()).glob("ymera-code-*")),
                "sandbox processes": sandbox_processes()}


def sandbox_processes() -> list[int]:
    """Live processes of the sandbox's uid (nobody); killed ones are reaped by init in its own time."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == NOBODY:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (workspace / "notes.txt").write_text("tea\ncoffee\n")
    (workspace / "passwd").symlink_to(outside / "secret.txt")  # made before the grant, or by another tool
    (workspace / "shared").symlink_to(outside, target_is_directory=True)
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("green", 4.5), ("black", 3.0), ("oolong", 6.25)])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Deployment(tmp_path, workspace, outside, database, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def spec(type: str, params: dict[str, Any], tools: list[str] | None = None, **fields: Any) -> events.TaskSpec:
    return events.TaskSpec(id="t", type=type, parameters=params, tools=[type] if tools is None else tools, **fields)


def submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def run_all(settings: Settings, connection: bus.Bus, subs: list[events.WorkflowSubmitted],
                  ) -> dict[str, tuple[events.Event, list[events.Event]]]:
    """Each submission run to its end on one engine, side by side: workflow id -> (end, events seen)."""
    async with in_process(settings, connection):
        client = WorkflowClient(connection)

        async def one(sub: events.WorkflowSubmitted) -> tuple[events.Event, list[events.Event]]:
            return await client.wait(sub.workflow_id, await client.submit(sub), timeout=60, run_id=sub.id)

        ends = await asyncio.gather(*(one(sub) for sub in subs))
    return {sub.workflow_id: end for sub, end in zip(subs, ends, strict=True)}


def of(kind: type[Any], seen: list[events.Event]) -> list[Any]:
    return [e for e in seen if isinstance(e, kind)]


# case -> (type, parameters, TaskFailed.kind, the error a user reads, plan). With a plan, the
# attack comes from a file in the workspace (as from a page fetched, or a model's answer): a task
# reads it, and the tool task's parameters take it in as `{{ tasks.plan.output }}`. The security
# actor refuses such values at the door when a submission holds them itself
# (`test_the_security_actor_refuses_the_plain_attacks_at_the_door`). `{out}` is the directory
# outside the workspace, `{ws}` the workspace, `{port}` the local server's port, `{localhost}` the
# address localhost resolves to first.
PLANNED = "{{ tasks.plan.output }}"
Case = tuple[str, dict[str, Any], str, str, str | None]
ESCAPES: dict[str, Case] = {
    "path traversal": ("files", {"op": "read", "path": PLANNED}, "tool_refused",
                       "files: path '../outside/secret.txt' goes up with '..'; it must stay inside the workspace",
                       "../outside/secret.txt"),
    "symlink to a file outside": ("files", {"op": "read", "path": "passwd"}, "tool_refused",
                                  "files: path 'passwd' is a symlink; symlinks are not followed", None),
    "write through a symlinked directory": (
        "files", {"op": "write", "path": "shared/pwned.txt", "content": "x"}, "tool_refused",
        "files: path 'shared/pwned.txt' goes through a symlink ('shared'); symlinks are not followed", None),
    "write to an absolute path": ("files", {"op": "write", "path": PLANNED, "content": "x"}, "tool_refused",
                                  "files: path '{out}/pwned.txt' is absolute; give a path relative to the workspace",
                                  "{out}/pwned.txt"),
    "write up and out": ("files", {"op": "write", "path": PLANNED, "content": "x"}, "tool_refused",
                         "files: path 'a/../../outside/pwned.txt' goes up with '..'; it must stay inside the "
                         "workspace", "a/../../outside/pwned.txt"),
    "ssrf to loopback": ("http", {"url": PLANNED}, "tool_refused", "http: host '127.0.0.1' is a loopback address",
                         "http://127.0.0.1:{port}/admin"),
    "ssrf by a name for loopback": ("http", {"url": PLANNED}, "tool_refused",
                                    "http: host 'localhost' resolves to {localhost}, a loopback address",
                                    "http://localhost:{port}/admin"),
    "ssrf to the metadata service": ("http", {"url": PLANNED}, "tool_refused",
                                     "http: host '169.254.169.254' is a cloud metadata address",
                                     "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    "ssrf to the metadata service, spelt in decimal": (
        "http", {"url": PLANNED}, "tool_refused",
        "http: host '2852039166' (that is 169.254.169.254) is a cloud metadata address",
        "http://2852039166/latest/meta-data/"),
    "a command not on the allowlist": ("command", {"argv": ["rm", "-rf", "notes.txt"]}, "tool_refused",
                                       "command: 'rm' is not an allowed program (allowed: echo, ls, wc)", None),
    "a flag not allowed": ("command", {"argv": ["ls", "-R", "/"]}, "tool_refused",
                           "command: ls: option '-R' is not allowed", None),
    "an operand out of the workspace": ("command", {"argv": ["wc", "-l", "../outside/secret.txt"]}, "tool_refused",
                                        "command: wc: path '../outside/secret.txt' leaves {ws}", None),
    "an sql write in read-only mode": ("sql", {"database": "shop", "sql": "DELETE FROM items"}, "tool_refused",
                                       "sql: DELETE is not allowed in read-only mode; only SELECT, WITH … SELECT "
                                       "and EXPLAIN", None),
    "a write hidden in a query": ("sql", {"database": "shop", "sql": "WITH gone AS (DELETE FROM items RETURNING *) "
                                                                     "SELECT * FROM gone"},
                                  "tool_refused", "sql: DELETE is not allowed in read-only mode, even inside a query",
                                  None),
    "a database the deployment does not grant": (
        "sql", {"database": "events", "sql": "SELECT * FROM events"}, "tool_refused",
        "sql: database 'events' is not one this deployment grants (YMERA_DATABASES: shop)", None),
}

BOMBS: dict[str, Case] = {
    "fork bomb": ("code", {"code": "import os\nwhile True: os.fork()", "processes": 8, "time_seconds": 5},
                  "tool_limit", "code: hit its limit of 8 processes", None),
    "memory bomb": ("code", {"code": "x = []\nwhile True: x.append(' ' * 10**6)", "memory_mb": 256},
                    "tool_limit", "code: ran out of its 256 MiB memory limit", None),
    "infinite output": ("code", {"code": "while True: print('x' * 1000)", "output_bytes": 65536},
                        "tool_limit", "code: wrote more than its 65536 bytes output cap; killed", None),
    "endless loop": ("code", {"code": "while True: pass", "time_seconds": 1},
                     "tool_limit", "code: ran past its 1s time limit; killed", None),
    "the network": ("code", {"code": "import socket\nsocket.create_connection(('127.0.0.1', {port}))"},
                    "tool_refused", "code: tried to reach the network, which it was not granted", None),
}


def _filled(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value if PLANNED in value or "{" not in value else value.format(**names)
    if isinstance(value, list | tuple):
        return type(value)(_filled(v, names) for v in value)
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    return value


def _rendered(params: dict[str, Any], plan: str | None) -> dict[str, Any]:
    return {k: plan if v == PLANNED else v for k, v in params.items()}


async def check_escapes(deployment: Deployment, connection: bus.Bus, cases: dict[str, Case]) -> None:
    """Run each case as a workflow of its own, all on one engine; each must fail with its reason,
    be a ToolRefused event, and leave the deployment as it was."""
    # The first address the name resolves to here (::1 or 127.0.0.1) is the one the tool refuses.
    localhost = socket.getaddrinfo("localhost", deployment.port, type=socket.SOCK_STREAM)[0][4][0]
    names = {"out": deployment.outside, "port": deployment.port, "ws": deployment.workspace.resolve(),
             "localhost": localhost}
    filled = {case: _filled(value, names) for case, value in cases.items()}
    subs = {}
    for n, (case, (task_type, params, _, _, plan)) in enumerate(filled.items()):
        tasks = [spec(task_type, params)]
        if plan is not None:
            (deployment.workspace / f"plan-{n}.txt").write_text(plan)
            tasks = [events.TaskSpec(id="plan", type="files", tools=["files"],
                                     parameters={"op": "read", "path": f"plan-{n}.txt"}),
                     spec(task_type, params, dependencies=["plan"])]
        subs[case] = submission(f"wf-{n}", *tasks)
    settings = deployment.settings()
    before = deployment.state()
    ends = await run_all(settings, connection, list(subs.values()))
    failures, refusals = {}, {}
    for case, sub in subs.items():
        end, seen = ends[sub.workflow_id]
        # One attempt each: a refusal is not retried.
        failures[case] = (type(end).__name__, getattr(end, "reason", None),
                          [(f.task_id, f.kind, f.retryable, f.error) for f in of(events.TaskFailed, seen)])
        refusals[case] = [(r.actor, r.task_id, r.attempt, r.tool, r.kind, f"{r.tool}: {r.reason}", r.arguments)
                          for r in of(events.ToolRefused, seen)]
    assert failures == {case: ("WorkflowFailed", f"task t failed: {error}", [("t", kind, False, error)])
                        for case, (_, _, kind, error, _) in filled.items()}
    assert refusals == {case: [("executor", "t", 1, tool, kind.removeprefix("tool_"), error, _rendered(params, plan))]
                        for case, (tool, params, kind, error, plan) in filled.items()}
    assert deployment.state() == before
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        report = await security_report(log, 1)
    kinds = [kind for _, _, kind, _, _ in filled.values()]
    by_tool: dict[str, int] = {}
    for tool, *_ in filled.values():
        by_tool[tool] = by_tool.get(tool, 0) + 1
    assert report["tools"] == {"refused": kinds.count("tool_refused"), "limit": kinds.count("tool_limit"),
                               "by_tool": dict(sorted(by_tool.items(), key=lambda kv: (-kv[1], kv[0])))}
    assert (f"tool calls         {kinds.count('tool_refused')} refused, {kinds.count('tool_limit')} stopped at a "
            "limit (") in security_text(report)


async def test_each_escape_attempt_fails_with_its_reason_leaves_the_machine_as_it_was_and_is_a_security_event(
        deployment: Deployment, nats_bus: bus.Bus) -> None:
    await check_escapes(deployment, nats_bus, ESCAPES)


@pytest.mark.skipif(not ROOT, reason="the sandbox's confinement beyond rlimits needs root (tools/_sandbox.py)")
async def test_each_bomb_in_a_code_task_is_stopped_by_its_limit_and_is_a_security_event(
        deployment: Deployment, nats_bus: bus.Bus) -> None:
    await check_escapes(deployment, nats_bus, BOMBS)


async def test_the_security_actor_refuses_the_plain_attacks_at_the_door(
        deployment: Deployment, nats_bus: bus.Bus) -> None:
    # What a submission holds itself is read before anything runs; the tools refuse what comes later.
    subs = [submission("wf-door-path", spec("files", {"op": "read", "path": "../outside/secret.txt"})),
            submission("wf-door-url", spec("http", {"url": "http://169.254.169.254/latest/meta-data/"}))]
    before = deployment.state()
    ends = await run_all(deployment.settings(), nats_bus, subs)
    assert {w: (type(end).__name__, getattr(end, "reason", None), len(of(events.InputFlagged, seen)),
                of(events.TaskReady, seen)) for w, (end, seen) in ends.items()} == {
        "wf-door-path": ("WorkflowRefused", "task t: parameters.path: path traversal: '..' climbs above the "
                                            "directory the path is joined to", 1, []),
        "wf-door-url": ("WorkflowRefused", "task t: parameters.url: SSRF: 169.254.169.254 is a cloud metadata "
                                           "service (instance credentials)", 1, [])}
    assert deployment.state() == before


async def test_a_refusals_event_never_holds_a_secret_of_the_call(deployment: Deployment, nats_bus: bus.Bus) -> None:
    (deployment.workspace / "plan.txt").write_text("http://169.254.169.254/latest/meta-data/")
    sub = submission("wf-secret", events.TaskSpec(id="plan", type="files", tools=["files"],
                                                  parameters={"op": "read", "path": "plan.txt"}),
                     spec("http", {"url": PLANNED, "body": "my key is AKIAIOSFODNN7EXAMPLE",
                                   "headers": {"Authorization": "Bearer hunter2-token", "X-Api-Key": "k-123",
                                               "Accept": "text/plain"}}, dependencies=["plan"]))
    [(end, seen)] = (await run_all(deployment.settings(), nats_bus, [sub])).values()
    assert isinstance(end, events.WorkflowFailed), end
    [refused] = of(events.ToolRefused, seen)
    assert refused.reason == "host '169.254.169.254' is a cloud metadata address"
    assert refused.arguments == {
        "url": "http://169.254.169.254/latest/meta-data/",
        "headers": {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]", "Accept": "text/plain"},
        "body": "my key is [REDACTED:aws_access_key_id]"}
    assert deployment.requests == []


async def test_a_password_in_a_url_a_refusal_names_is_hidden_too() -> None:
    # (A URL from an upstream output has had its password redacted by the output scan already.)
    exc = ToolError("http", "refused", "host '10.0.0.8' is a private address")
    refusal = await failure(exc, "http", {"url": "https://deploy:pa55word@10.0.0.8/hook", "method": "POST"})
    assert isinstance(refusal, ToolRefusal)
    assert (refusal.kind, refusal.retryable, refusal.message) == (
        "tool_refused", False, "http: host '10.0.0.8' is a private address")
    assert refusal.refusal.arguments == {"url": "https://deploy:[REDACTED]@10.0.0.8/hook", "method": "POST"}


async def test_a_workflow_chains_sql_files_and_a_command(deployment: Deployment, nats_bus: bus.Bus) -> None:
    sub = submission(
        "wf-chain",
        events.TaskSpec(id="cheap", type="sql", tools=["sql"], parameters={
            "database": "shop", "sql": "SELECT name FROM items WHERE price < ? ORDER BY name", "params": [5]}),
        events.TaskSpec(id="save", type="files", tools=["files"], dependencies=["cheap"], parameters={
            "op": "write", "path": "reports/cheap.json", "content": "{{ tasks.cheap.output }}"}),
        events.TaskSpec(id="back", type="files", tools=["files"], dependencies=["save"], parameters={
            "op": "read", "path": "reports/cheap.json"}),
        events.TaskSpec(id="count", type="command", tools=["command"], dependencies=["save"], parameters={
            "argv": ["wc", "-l", "notes.txt"]}),
        events.TaskSpec(id="find", type="files", tools=["files"], dependencies=["save"], parameters={
            "op": "search", "pattern": "black"}),
    )
    [(end, seen)] = (await run_all(deployment.settings(), nats_bus, [sub])).values()
    assert isinstance(end, events.WorkflowCompleted), end
    outputs = {e.task_id: e.output for e in of(events.TaskSucceeded, seen)}
    rows = '{"columns":["name"],"rows":[["black"],["green"]],"truncated":false}'
    assert outputs == {
        "cheap": {"columns": ["name"], "rows": [["black"], ["green"]], "truncated": False},
        "save": {"path": "reports/cheap.json", "bytes": len(rows)},
        "back": rows,
        "count": {"exit_code": 0, "stdout": "2 notes.txt\n", "stderr": ""},
        "find": {"matches": [{"path": "reports/cheap.json", "line": 1, "text": rows}], "truncated": False},
    }
    assert (deployment.workspace / "reports" / "cheap.json").read_text() == rows
    assert of(events.ToolRefused, seen) == []


@pytest.fixture
def repo(deployment: Deployment) -> Path:
    root = deployment.root / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "menu.txt").write_text("green\n")
    return root


async def test_git_tasks_commit_in_a_granted_repository_and_an_ungranted_one_is_refused(
        deployment: Deployment, repo: Path, nats_bus: bus.Bus) -> None:
    settings = msgspec.structs.replace(deployment.settings(), tools=msgspec.structs.replace(
        deployment.settings().tools, git_repositories={"menu": repo}))
    author = "Ada <ada@example.org>"
    subs = [
        submission("wf-git", events.TaskSpec(id="before", type="git", tools=["git"], parameters={"op": "status"}),
                   events.TaskSpec(id="commit", type="git", tools=["git"], dependencies=["before"], parameters={
                       "op": "commit", "repository": "menu", "paths": ["menu.txt"], "message": "Add the menu",
                       "author": author}),
                   events.TaskSpec(id="log", type="git", tools=["git"], dependencies=["commit"],
                                   parameters={"op": "log", "limit": 1})),
        submission("wf-git-other", spec("git", {"op": "status", "repository": "ymera"})),
    ]
    ends = await run_all(settings, nats_bus, subs)
    end, seen = ends["wf-git"]
    assert isinstance(end, events.WorkflowCompleted), end
    outputs = {e.task_id: e.output for e in of(events.TaskSucceeded, seen)}
    commit, who, _, subject = outputs["log"].rstrip("\n").split("\t")
    # The output scan redacts the author's email, as it does any personal data in an output.
    assert (outputs["before"], outputs["commit"], who, subject) == (
        "?? menu.txt\n", commit, "Ada <[REDACTED:email]>", "Add the menu")
    assert (repo / ".git" / "refs" / "heads" / "main").read_text().strip() == commit
    end, seen = ends["wf-git-other"]
    [refused] = of(events.ToolRefused, seen)
    assert (refused.tool, refused.kind, refused.reason) == (
        "git", "refused", "repository 'ymera' is not one this deployment grants (YMERA_GIT_REPOSITORIES: menu)")


async def test_a_task_not_granted_its_tool_is_refused_by_the_validator_before_anything_runs(
        deployment: Deployment, nats_bus: bus.Bus) -> None:
    write = {"op": "write", "path": "granted.txt", "content": "x"}
    subs = [
        submission("wf-ungranted", spec("files", write, tools=[])),
        submission("wf-read-only-grant", spec("sql", {"database": "shop", "sql": "DELETE FROM items", "write": True},
                                              tools=["sql"])),
        submission("wf-no-shell", spec("code", {"code": "echo hi", "language": "shell"}, tools=["code"])),
        submission("wf-bad-op", spec("files", {"op": "delete", "path": "notes.txt"})),
    ]
    before = deployment.state()
    ends = await run_all(deployment.settings(), nats_bus, subs)
    problems = {}
    for workflow_id, (end, seen) in ends.items():
        assert isinstance(end, events.WorkflowInvalid), end
        assert of(events.TaskReady, seen) == []
        problems[workflow_id] = [(p.task_id, p.field, p.message) for p in end.problems]
    assert problems == {
        "wf-ungranted": [("t", "tools", "task type 'files' uses tool 'files' (reads and writes files in the "
                                        "workspace), which this task is not granted: add tools: [files] to the task")],
        "wf-read-only-grant": [("t", "tools", "task type 'sql' uses tool 'sql_write' (lets sql tasks write to the "
                                              "deployment's databases), which this task is not granted: add "
                                              "'sql_write' to its tools")],
        "wf-no-shell": [("t", "tools", "task type 'code' uses tool 'shell' (lets code tasks run shell scripts in the "
                                       "sandbox), which this task is not granted: add 'shell' to its tools")],
        "wf-bad-op": [("t", "parameters.op", "parameter 'op' must be a string like read, write, list, search or "
                                             "patch, got \"delete\"")],
    }
    assert deployment.state() == before


async def test_a_granted_write_or_network_goes_through_and_a_malformed_call_is_a_bad_request_not_a_refusal(
        deployment: Deployment, nats_bus: bus.Bus) -> None:
    settings = deployment.settings()
    settings = msgspec.structs.replace(settings, tools=msgspec.structs.replace(
        settings.tools, http_grant_networks=("127.0.0.1/32",)))
    (deployment.workspace / "plan.txt").write_text(f"http://127.0.0.1:{deployment.port}/status")
    subs = [
        submission("wf-fetch", events.TaskSpec(id="plan", type="files", tools=["files"],
                                               parameters={"op": "read", "path": "plan.txt"}),
                   spec("http", {"url": PLANNED}, dependencies=["plan"])),
        submission("wf-write", spec("sql", {"database": "shop", "sql": "UPDATE items SET price = ? WHERE name = ?",
                                            "params": [5.0, "black"], "write": True}, tools=["sql", "sql_write"])),
        submission("wf-no-content", spec("files", {"op": "write", "path": "x.txt"})),
        submission("wf-no-file", spec("files", {"op": "read", "path": "missing.txt"})),
    ]
    ends = await run_all(settings, nats_bus, subs)
    end, seen = ends["wf-write"]
    assert isinstance(end, events.WorkflowCompleted), end
    assert ("black", 5.0) in deployment.rows()
    end, seen = ends["wf-fetch"]
    assert isinstance(end, events.WorkflowCompleted), end
    [fetched] = [e.output for e in of(events.TaskSucceeded, seen) if e.task_id == "t"]
    assert (fetched["status"], fetched["body"], deployment.requests) == (200, "internal data", ["/status"])
    results = {}
    for workflow_id in ("wf-no-content", "wf-no-file"):
        end, seen = ends[workflow_id]
        [failed] = of(events.TaskFailed, seen)
        results[workflow_id] = (failed.kind, failed.retryable, failed.error, of(events.ToolRefused, seen))
    assert results == {"wf-no-content": ("bad_request", False, "files: write needs parameters.content, a string", []),
                       "wf-no-file": ("error", False, "files: no such file: 'missing.txt'", [])}
    assert not (deployment.workspace / "x.txt").exists()


@pytest.mark.parametrize(("env", "message"), [
    ({"YMERA_DATABASES": "shop"}, "setting YMERA_DATABASES: 'shop' is not name=value (a name of letters, digits, "
                                  "_ . -)"),
    ({"YMERA_DATABASES": "shop=mysql://app:pw@db/shop"},
     "setting YMERA_DATABASES: 'shop=mysql://app:***@db/shop' is not name=sqlite:<path> or name=postgresql://…"),
    ({"YMERA_COMMANDS": "/bin/rm -rf"}, "setting YMERA_COMMANDS: '/bin/rm -rf' is not a program's name (no path) "
                                        "followed by its flags"),
    ({"YMERA_COMMANDS": "git --git-dir=x"}, "setting YMERA_COMMANDS: 'git --git-dir=x' is not a program and its "
                                            "flags: '--git-dir=x' is no flag (options with values are not supported)"),
    ({"YMERA_GIT_REPOSITORIES": "app=repo"}, "setting YMERA_GIT_REPOSITORIES: 'app=repo' is not "
                                             "name=<absolute path of a repository>"),
], ids=["no name", "not a database", "a path", "an option", "a relative repository"])
def test_a_bad_tool_setting_names_the_setting_and_the_entry(env: dict[str, str], message: str) -> None:
    with pytest.raises(ToolSettingsError) as caught:
        load_settings(env, dotenv=None)
    assert str(caught.value) == message


def test_the_tool_settings_default_to_nothing_and_never_show_a_password() -> None:
    settings = load_settings({"YMERA_DATABASES": "main=postgresql://app:pw-123@db/main"}, dotenv=None)
    assert "pw-123" not in repr(settings)
    assert (settings.tools.databases, load_settings({}, dotenv=None).tools.http_allow_hosts) == (
        {"main": "postgresql://app:pw-123@db/main"}, ())
