"""The built-in tools (`tools/`) as task kinds: `files`, `http`, `sql`, `command`, `git` and `code`,
each using the tool of its name, which a task must be granted (`tools: [files]`); writing SQL
needs `sql_write` as well, and shell code `shell` (`language` and `write` take no `{{ … }}`
reference, so what a task is granted is read from the submission alone). What each may reach is the deployment's to
say (`_tools_reach.py`); the parameters are declared here, so the validator checks them before
anything runs.

A refusal or a limit fails the attempt with the tool's reason and is a `ToolRefused` security
event (`_tools_refusal.py`); the attempt is not retried. What a tool reads from outside (a file,
a page, rows, a program's output) is untrusted by default.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import tools
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import Context, Handler, Param, TaskKind, register, register_tool
from . import _templates
from . import _tools_reach as reach
from ._tools_refusal import failure

__all__ = ["TOOL_KINDS"]

_LIMITS = tools.Limits()
_MiB = 1024 * 1024

TOOL_KINDS = (
    TaskKind("files", "Reads, writes, lists, searches or patches files in the workspace (`op`).", (
        Param("op", "string", required=True, pattern="read|write|list|search|patch",
              example="read, write, list, search or patch"),
        Param("path", "string"),  # relative to the workspace; "." by default
        Param("content", "string"),  # write
        Param("pattern", "string"),  # search: a substring, or a regular expression with `regex`
        Param("regex", "boolean"),
        Param("old", "string"),  # patch: the text to replace, found exactly once
        Param("new", "string"),
    ), tool="files", untrusted=True),
    TaskKind("http", "One HTTP request to an allowed host; the answer's status, headers and body.", (
        Param("url", "string", required=True),  # http or https; the tool refuses any other scheme
        Param("method", "string", pattern="GET|HEAD|POST|PUT|PATCH|DELETE",
              example="GET, HEAD, POST, PUT, PATCH or DELETE"),
        Param("headers", "object"),
        Param("body", "string"),
    ), tool="http", untrusted=True),
    TaskKind("sql", "One SQL statement against a database the deployment names; read-only unless `write`.", (
        Param("database", "string", required=True),  # a name in YMERA_DATABASES
        Param("sql", "string", required=True),  # values go in `params`, never into the text
        Param("params", "any"),
        Param("write", "boolean"),  # needs the grant sql_write too
        Param("max_rows", "integer", minimum=1, maximum=tools.DatabaseRules().max_rows),
    ), tool="sql", untrusted=True, extra_tools=(("write", True, "sql_write"),)),
    TaskKind("command", "Runs an allowed program with arguments (`argv`, never a shell string) in the workspace.", (
        Param("argv", "any", required=True),  # a list of strings: the program's name, then its arguments
        Param("stdin", "string"),
        Param("check", "boolean"),  # false: a non-zero exit is part of the output, not a failure
    ), tool="command", untrusted=True),
    TaskKind("git", "status, diff, log or commit in a repository the deployment names.", (
        Param("op", "string", required=True, pattern="status|diff|log|commit", example="status, diff, log or commit"),
        Param("repository", "string"),  # a name in YMERA_GIT_REPOSITORIES; its only one by default
        Param("paths", "any"),  # a list of paths inside the repository
        Param("staged", "boolean"),  # diff
        Param("limit", "integer", minimum=1, maximum=1000),  # log
        Param("message", "string"),  # commit
        Param("author", "string"),  # "Name <email>"
    ), tool="git", untrusted=True),
    TaskKind("code", "Runs Python (or, granted shell, a shell script) in the sandbox: no network, limits.", (
        Param("code", "string", required=True),
        Param("language", "string", pattern="python|shell", example="python or shell"),
        Param("stdin", "string"),
        Param("check", "boolean"),  # false: a non-zero exit is part of the output, not a failure
        # Lower limits than the sandbox's defaults; never higher.
        Param("time_seconds", "number", minimum=0.1, maximum=_LIMITS.time),
        Param("memory_mb", "integer", minimum=16, maximum=_LIMITS.memory // _MiB),
        Param("processes", "integer", minimum=1, maximum=_LIMITS.processes),
        Param("output_bytes", "integer", minimum=1, maximum=_LIMITS.output),
    ), tool="code", untrusted=True, extra_tools=(("language", "shell", "shell"),)),
)

_GRANTS = {
    "files": "reads and writes files in the workspace",
    "http": "makes HTTP requests to the deployment's allowed hosts",
    "sql": "queries the deployment's databases, read-only",
    "sql_write": "lets sql tasks write to the deployment's databases",
    "command": "runs the deployment's allowed programs",
    "git": "reads and commits to the deployment's repositories",
    "code": "runs Python code in the sandbox",
    "shell": "lets code tasks run shell scripts in the sandbox",
}

Call = Callable[[dict[str, Any], Context], Awaitable[Any]]


def _text(params: dict[str, Any], name: str, op: str) -> str:
    """A string parameter `op` needs, though the declaration cannot require it (other ops go without)."""
    value = params.get(name)
    if not isinstance(value, str):
        raise tools.ToolError("", "bad_request", f"{op} needs parameters.{name}, a string")
    return value


def _strings(params: dict[str, Any], name: str, op: str, *, required: bool = False) -> list[str]:
    value = params.get(name, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        raise tools.ToolError("", "bad_request", f"{op} needs parameters.{name}, a list of strings")
    return value


async def _files(params: dict[str, Any], ctx: Context) -> Any:
    op, path = params["op"], params.get("path", ".")
    ws = await asyncio.to_thread(reach.workspace, ctx.settings)
    if op == "read":
        return await asyncio.to_thread(ws.read, path)
    if op == "write":
        content = _text(params, "content", "write")
        return {"path": path, "bytes": await asyncio.to_thread(ws.write, path, content)}
    if op == "list":
        return [asdict(entry) for entry in await asyncio.to_thread(ws.list, path)]
    if op == "search":
        found, more = await asyncio.to_thread(ws.search, _text(params, "pattern", "search"), path,
                                              regex=params.get("regex", False))
        return {"matches": [asdict(m) for m in found], "truncated": more}
    old, new = _text(params, "old", "patch"), _text(params, "new", "patch")
    return {"path": path, "replaced": await asyncio.to_thread(ws.patch, path, old, new)}


async def _http(params: dict[str, Any], ctx: Context) -> Any:
    headers = params.get("headers", {})
    if not all(isinstance(v, str) for v in headers.values()):
        raise tools.ToolError("", "bad_request", "parameters.headers must map names to strings")
    body = params.get("body")
    result = await tools.fetch(params["url"], method=params.get("method", "GET"), headers=headers,
                               body=body.encode() if body is not None else None, rules=reach.http_rules(ctx.settings))
    return {"status": result.status, "reason": result.reason, "headers": result.headers,
            "body": result.body.decode("utf-8", errors="replace"), "url": result.url,
            "redirects": list(result.redirects)}


async def _sql(params: dict[str, Any], ctx: Context) -> Any:
    values = params.get("params", [])
    if not isinstance(values, list):
        raise tools.ToolError("", "bad_request", "parameters.params must be a list of values")
    rules = tools.DatabaseRules(writable=params.get("write", False),
                                max_rows=params.get("max_rows", tools.DatabaseRules().max_rows))
    result = await tools.query(reach.database(ctx.settings, params["database"]), params["sql"], values, rules=rules)
    return {"columns": list(result.columns), "rows": [[_json(v) for v in row] for row in result.rows],
            "truncated": result.truncated}


def _json(value: Any) -> Any:
    """A column's value as JSON carries it: bytes as base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


async def _command(params: dict[str, Any], ctx: Context) -> Any:
    argv = _strings(params, "argv", "command", required=True)
    root = await asyncio.to_thread(reach.workspace_root, ctx.settings)
    result = await tools.run_command(argv, allow=reach.command_rules(ctx.settings), cwd=root,
                                     stdin=params.get("stdin", ""), check=params.get("check", True))
    return _ran(result)


async def _git(params: dict[str, Any], ctx: Context) -> Any:
    repo, op = reach.git(ctx.settings, params.get("repository")), params["op"]
    paths = _strings(params, "paths", op, required=op == "commit")
    if op == "status":
        return await repo.status()
    if op == "diff":
        return await repo.diff(paths, staged=params.get("staged", False))
    if op == "log":
        return await repo.log(limit=params.get("limit", 20), paths=paths)
    return await repo.commit(paths, message=_text(params, "message", "commit"),
                             author=params.get("author", "Ymera <ymera@localhost>"))


async def _code(params: dict[str, Any], ctx: Context) -> Any:
    limits = tools.Limits(time=params.get("time_seconds", _LIMITS.time),
                          memory=params.get("memory_mb", _LIMITS.memory // _MiB) * _MiB,
                          processes=params.get("processes", _LIMITS.processes),
                          output=params.get("output_bytes", _LIMITS.output))
    result = await tools.run_code(params["code"], language=params.get("language", "python"), limits=limits,
                                  stdin=params.get("stdin", ""), check=params.get("check", True))
    return _ran(result)


def _ran(result: tools.CodeResult) -> dict[str, Any]:
    return {"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}


def _handler(kind: TaskKind, call: Call) -> Handler:
    """The kind's handler: the parameters checked as the validator checks them (should a
    submission slip past it) and rendered, the call made, a tool's error mapped."""
    tool = kind.tool
    assert tool is not None

    async def run(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
        if (problem := kind.parameter_problem(task.parameters)) is not None:
            raise TaskError("bad_request", problem, retryable=False)
        # The SQL text is used as written: values go in `params`, rendered like any other.
        params = {name: value if name == "sql" and kind.name == "sql"
                  else _templates.render(value, inputs, f"parameters.{name}")
                  for name, value in task.parameters.items()}
        try:
            return Outcome(output=await call(params, ctx))
        except tools.ToolError as exc:
            raise await failure(exc, tool, params) from None

    return run


for _name, _description in _GRANTS.items():
    register_tool(_name, _description)
for _kind, _call in zip(TOOL_KINDS, (_files, _http, _sql, _command, _git, _code), strict=True):
    register(_kind, _handler(_kind, _call))
