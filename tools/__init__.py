"""Ymera's built-in tools, a library of their own (no NATS): running code in a sandbox, files in
a workspace, HTTP to allowed hosts, databases, allowed commands, git. Each call has explicit
limits and fails with a `ToolError` saying what was refused or went wrong. The executor runs
them as task kinds, each granted per task (`TaskSpec.tools`; issue 11). `McpClient` calls the tools
of an MCP server, supervised (a server that dies is started again; its calls fail, never hang)."""

from typing import TYPE_CHECKING

from ._commands import ArgumentRules, CommandRules, run_command
from ._database import DatabaseRules, QueryResult, query, read_only_refusal
from ._errors import ToolError, ToolErrorKind
from ._files import FileEntry, FileLimits, FileMatch, Workspace
from ._git import Git
from ._http import HttpResult, HttpRules, fetch
from ._mcp_config import McpServer
from ._mcp_result import McpContent, McpResult, McpTool
from ._sandbox import CodeResult, Limits, run_code

if TYPE_CHECKING:
    from ._mcp import McpClient

__all__ = [
    "ArgumentRules",
    "CodeResult",
    "CommandRules",
    "DatabaseRules",
    "FileEntry",
    "FileLimits",
    "FileMatch",
    "Git",
    "HttpResult",
    "HttpRules",
    "Limits",
    "McpClient",
    "McpContent",
    "McpResult",
    "McpServer",
    "McpTool",
    "QueryResult",
    "ToolError",
    "ToolErrorKind",
    "Workspace",
    "fetch",
    "query",
    "read_only_refusal",
    "run_code",
    "run_command",
]


def __getattr__(name: str) -> object:
    # The MCP SDK takes most of a second to import: only a process that calls a server pays for it.
    if name == "McpClient":
        from ._mcp import McpClient

        return McpClient
    raise AttributeError(f"module 'tools' has no attribute {name!r}")
