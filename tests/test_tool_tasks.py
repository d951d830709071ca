"""The built-in tools as task kinds, run through the whole engine on a real nats-server: each
escape attempt fails with the reason a user reads, leaves the machine as it was and is a
`ToolRefused` security event in the log (counted by the security report). The tools in use
(chains, grants, settings) are in test_tool_tasks_use.py; the deployment is real
(tests/tool_deployment.py).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bus
import events
import store
from actors.executor._tools_refusal import ToolRefusal, failure
from store import security_report
from tools import ToolError
from ymera._report import security_text

from .tool_deployment import (
    PLANNED,
    Deployment,
    deployed,
    of,
    run_all,
    spec,
    submission,
)

ROOT = os.geteuid() == 0
@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with deployed(tmp_path) as made:
        yield made


# case -> (type, parameters, TaskFailed.kind, the error a user reads, plan). With a plan, the
# attack comes from a file in the workspace (as from a page fetched, or a model's answer): a task
# reads it, and the tool task's parameters take it in as `{{ tasks.plan.output }}`. The security
# actor refuses such values at the door when a submission holds them itself
# (`test_the_security_actor_refuses_the_plain_attacks_at_the_door`). `{out}` is the directory
# outside the workspace, `{ws}` the workspace, `{port}` the local server's port, `{localhost}` the
# address localhost resolves to first.
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
