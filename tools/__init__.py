"""Ymera's built-in tools, a library of their own (no NATS): running code in a sandbox, files in
a workspace, HTTP to allowed hosts, databases, allowed commands, git. Each call has explicit
limits and fails with a `ToolError` saying what was refused or went wrong. The executor runs
them as task kinds, each granted per task (`TaskSpec.tools`; issue 11)."""

from ._commands import ArgumentRules, CommandRules, run_command
from ._database import DatabaseRules, QueryResult, query, read_only_refusal
from ._errors import ToolError, ToolErrorKind
from ._files import FileEntry, FileLimits, FileMatch, Workspace
from ._git import Git
from ._http import HttpResult, HttpRules, fetch
from ._sandbox import CodeResult, Limits, run_code

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
