"""Which tools a task may be granted, and the one rule for grants: `tools_used` (what an
attempt of a task uses), `grant_problem` (one it is not granted: the validator before anything
runs, the executor before each attempt) and `tool_problems` (grants that are no tool's, twice,
or of nothing the task uses). Part of the registry (`actors.registry` re-exports it all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from events import TaskSpec

if TYPE_CHECKING:
    from .registry import TaskKind

__all__ = ["MCP_PREFIX", "TOOLS", "grant_problem", "register_mcp_servers", "register_tool", "tool_problems",
           "tools_used"]

# The tools a task may be granted (`TaskSpec.tools`): name -> what granting it allows. A task
# kind that uses one names it (`TaskKind.tool`); an MCP server is granted as `mcp:<server>`,
# registered as such from the deployment's settings (`register_mcp_servers`).
TOOLS: dict[str, str] = {"python": "runs Python code"}
MCP_PREFIX = "mcp:"
_TOOL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}|mcp:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def register_tool(name: str, description: str) -> None:
    """Add a tool tasks may be granted: `name` in lower case, or `mcp:<server>` for an MCP server;
    `description` says what granting it allows."""
    if _TOOL_NAME.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a tool name: lower case (python), or mcp:<server>")
    if TOOLS.get(name, description) != description:
        raise ValueError(f"tool {name!r} is registered already, differently")
    TOOLS[name] = description


def register_mcp_servers(names: Iterable[str]) -> None:
    """Make the deployment's MCP servers (YMERA_MCP_SERVERS) tools tasks may be granted, as mcp:<name>."""
    for name in names:
        register_tool(MCP_PREFIX + name, f"calls the tools of MCP server {name!r}")


def tools_used(task: TaskSpec, kind: TaskKind) -> tuple[str, ...]:
    """The tools an attempt of `task` uses, each of which it must be granted: its kind's, those its
    parameters call for (`TaskKind.extra_tools`), and the MCP server it names (`TaskKind.server_param`)."""
    if kind.tool is None and kind.server_param is None and not kind.extra_tools:
        return ()  # a kind that uses none (checked before every attempt)
    base = (kind.tool,) if kind.tool is not None else ()
    server = task.parameters.get(kind.server_param) if kind.server_param is not None else None
    mcp = (MCP_PREFIX + server,) if isinstance(server, str) else ()
    return base + mcp + tuple(tool for name, value, tool in kind.extra_tools if _is(task.parameters.get(name), value))


def _is(given: Any, value: Any) -> bool:
    """Equal and of the same type: `1` is not `true`."""
    return type(given) is type(value) and given == value


def grant_problem(task: TaskSpec, kind: TaskKind) -> str | None:
    """Why `task` may not run: a tool its kind uses that the task is not granted; None if none.
    The one rule, for the validator (before anything runs) and the executor (before each attempt)."""
    for tool in tools_used(task, kind):
        if tool not in task.tools:
            how = f"add {tool!r} to its tools" if task.tools else f"add tools: [{tool}] to the task"
            return (f"task type {task.type!r} uses tool {tool!r} ({TOOLS.get(tool, 'unregistered')}), which this "
                    f"task is not granted: {how}")
    return None


def tool_problems(task: TaskSpec, kind: TaskKind) -> list[str]:
    """What is wrong with the tools `task` is granted: names that are no tool's, a tool granted
    twice, a grant its kind never uses (a grant that grants nothing misleads whoever reads it)."""
    problems: list[str] = []
    used = tools_used(task, kind)
    for name in dict.fromkeys(task.tools):
        if _TOOL_NAME.fullmatch(name) is None:
            problems.append(f"{name!r} is not a tool name: a tool is named in lower case (python), an MCP server "
                            f"as mcp:<server>")
        elif name not in TOOLS:
            problems.append(_unknown_tool(name))
        elif name not in used:
            uses = "no tool" if not used else "only " + ", ".join(map(repr, used))
            problems.append(f"tool {name!r} is granted, but task type {kind.name!r} uses {uses}: remove it from "
                            f"the task's tools")
        if task.tools.count(name) > 1:
            problems.append(f"tool {name!r} is granted {task.tools.count(name)} times")
    return problems


def _unknown_tool(name: str) -> str:
    servers = sorted(t for t in TOOLS if t.startswith(MCP_PREFIX))
    if name.startswith(MCP_PREFIX):
        known = "; registered: " + ", ".join(servers) if servers else ": no MCP server is registered"
        return f"unknown MCP server {name.removeprefix(MCP_PREFIX)!r} ({name}){known}"
    return f"unknown tool {name!r}; known tools: " + ", ".join(sorted(t for t in TOOLS if t not in servers))
