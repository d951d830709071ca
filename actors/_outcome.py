"""What one attempt ends with: an `Outcome`, or a `TaskError` saying how it failed and whether a retry may help."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from events import YmeraError

__all__ = ["ErrorKind", "Outcome", "TaskError"]

# The AI layer's kinds (`llm.ErrorKind`), and "outcome" (the output failed the task's expect),
# "not_granted" (the task uses a tool it was not granted), "untrusted_input" (an untrusted input
# bound for its prompt holds an attack), "tool_refused" and "tool_limit" (a built-in tool refused
# the call, or stopped it at a limit: actors/executor/_tools.py) and "error".
ErrorKind = Literal["timeout", "rate_limited", "server_error", "bad_request", "cut_off", "auth", "quota",
                    "context_too_long", "content_filtered", "budget", "outcome", "not_granted", "untrusted_input",
                    "tool_refused", "tool_limit", "error"]


class Outcome(msgspec.Struct, frozen=True):
    """What a successful attempt produced, and what it cost."""

    output: Any
    model: str | None = None
    usage: dict[str, int] = {}
    cost_usd: float | None = None


class TaskError(YmeraError):
    """An attempt that failed. The message is one line; `detail` may hold a traceback."""

    def __init__(self, kind: ErrorKind, message: str, *, retryable: bool, retry_after: float | None = None,
                 detail: str | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        self.model = model  # the model the attempt asked for, when it got as far as asking
