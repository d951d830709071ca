"""`mcp` tasks: a call of a tool of an MCP server the deployment declares (YMERA_MCP_SERVERS),
granted to the task as `mcp:<server>` and checked like a built-in tool's grant.

    - id: log
      type: mcp
      tools: ["mcp:git"]
      parameters: {server: git, tool: git_log, arguments: {repo_path: /srv/repo, max_count: 5}}

Each executor keeps one client per server (`clients`, in its `Context`), started at the first
call and supervised by the client (tools/_mcp.py: a server that dies fails its calls in flight
with how it died and starts again at the next). Every call is recorded (`record`) and becomes a
`ToolCalled` event published with the attempt's result: the arguments as the tool got them,
redacted, and the answer, as a blob. An answer the tool marks as an error fails the attempt;
a refusal or a limit is a `ToolRefused` too, as a built-in tool's is.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import msgspec

import tools
from config import McpServerEntry, Settings
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import MCP_PREFIX, Context, Param, TaskKind, register
from . import _templates
from ._screen import screen
from ._tools_refusal import failure, shown_arguments

__all__ = ["MCP_KIND", "ToolCall", "clients", "record"]

MCP_KIND = TaskKind("mcp", "Calls a tool of an MCP server the deployment declares (YMERA_MCP_SERVERS).", (
    Param("server", "string", required=True),  # a name in YMERA_MCP_SERVERS; granted as mcp:<server>
    Param("tool", "string", required=True),
    Param("arguments", "object"),  # strings in it take {{ tasks.<id>.output }} references
    Param("timeout_seconds", "number", minimum=0.1, maximum=3600),
), untrusted=True, server_param="server")


class ToolCall(msgspec.Struct, frozen=True):
    """One call as the attempt made it, for its `ToolCalled` event."""

    tool: str  # mcp:<server>
    name: str
    arguments: dict[str, Any]  # redacted
    is_error: bool
    result: Any  # redacted
    duration_ms: float


_RECORDING: contextvars.ContextVar[list[ToolCall] | None] = contextvars.ContextVar("ymera_tool_calls", default=None)


@contextmanager
def record(calls: list[ToolCall]) -> Iterator[None]:
    """Append every MCP call made inside the block (by this task's handler) to `calls`."""
    token = _RECORDING.set(calls)
    try:
        yield
    finally:
        _RECORDING.reset(token)


def clients(settings: Settings) -> dict[str, tools.McpClient]:
    """A client for each server the deployment declares, started at its first call."""
    return {name: tools.McpClient(_server(name, entry)) for name, entry in settings.tools.mcp_servers.items()}


def _server(name: str, entry: McpServerEntry) -> tools.McpServer:
    if entry.command is not None:
        server = tools.McpServer(name=name, transport="stdio", command=(entry.command, *entry.args), env=entry.env,
                                 cwd=entry.cwd)
    else:
        server = tools.McpServer(name=name, transport="http", url=entry.url, headers=entry.headers)
    return server if entry.timeout is None else msgspec.structs.replace(server, call_timeout=entry.timeout)


async def _mcp(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    params = task.parameters
    if (problem := MCP_KIND.parameter_problem(params)) is not None:
        raise TaskError("bad_request", problem, retryable=False)
    server, name = params["server"], params["tool"]
    client = _client_of(ctx.mcp, server)
    arguments = _templates.render(params.get("arguments", {}), inputs, "parameters.arguments")
    grant = MCP_PREFIX + server
    t0 = time.perf_counter()
    try:
        result = await client.call(name, arguments, timeout=params.get("timeout_seconds"))
    except tools.ToolError as exc:
        raise await failure(exc, grant, arguments) from None
    answer = result.structured if result.structured is not None else result.text
    calls = _RECORDING.get()
    if calls is not None:
        shown, _ = await screen(answer)
        calls.append(ToolCall(grant, name, await shown_arguments(arguments), result.is_error, shown,
                              (time.perf_counter() - t0) * 1000))
    if result.is_error:
        raise TaskError("error", f"{grant}: tool {name!r} reported an error: {result.text[:500]}", retryable=False)
    return Outcome(output=answer)


def _client_of(declared: Mapping[str, tools.McpClient], server: str) -> tools.McpClient:
    client = declared.get(server)
    if client is None:
        known = ", ".join(sorted(declared)) if declared else "none"
        raise TaskError("bad_request", f"no MCP server named {server!r} is declared on this executor "
                        f"(YMERA_MCP_SERVERS; declared: {known})", retryable=False)
    return client


register(MCP_KIND, _mcp)
