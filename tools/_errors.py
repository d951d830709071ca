"""The one error a tool raises: what was refused or went wrong, in one line a user reads."""

from __future__ import annotations

from typing import Literal

from events import YmeraError

__all__ = ["ToolError", "ToolErrorKind"]

# Why a tool call did not give its answer. `refused`: the call asked for something its grant
# does not allow (a path outside the workspace, a host not allowed, a write in read-only
# mode, a program not on the allowlist); `limit`: it ran into one of its limits (time, memory,
# processes, output size, rows); `failed`: the tool ran and failed (a non-zero exit, an HTTP
# error, a SQL error); `bad_request`: the call itself is malformed.
ToolErrorKind = Literal["refused", "limit", "failed", "bad_request"]


class ToolError(YmeraError):
    """A tool call that did not give its answer: `kind` (above) and `reason`, one line."""

    def __init__(self, tool: str, kind: ToolErrorKind, reason: str) -> None:
        super().__init__(f"{tool}: {reason}")
        self.tool = tool
        self.kind = kind
        self.reason = reason
