"""The built-in tools as task kinds in use, through the whole engine on a real nats-server: a
workflow chains three tools, git tasks commit in a granted repository, a task not granted its
tool is refused by the validator before anything runs, a granted write or network goes through,
and the tool settings say what is wrong with them. Escapes are in test_tool_tasks.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import bus
import events
from actors import load_settings
from config import ToolSettingsError

from .tool_deployment import PLANNED, Deployment, deployed, of, run_all, spec, submission


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with deployed(tmp_path) as made:
        yield made


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
