"""A built-in tool's error as the attempt's failure, at one boundary (`failure`); and a refusal
or a limit as a security event too (`ToolRefusal`, `refused_event`): an attempt to leave the
workspace, reach a private address or write in read-only mode is what a reviewer wants to see.

The event names the call's arguments as the tool got them, never a secret: keys that name
credentials are blanked, a URL's password is hidden, and every string goes through the output
scanner's redaction (`_screen.py`), cut to a bounded length first.
"""

from __future__ import annotations

import re
from typing import Any

from events import TaskReady, ToolRefused, derive_id, now
from tools import ToolError

from .._outcome import ErrorKind, TaskError
from ..registry import MCP_PREFIX
from ._fence import run_key
from ._screen import screen

__all__ = ["ToolRefusal", "failure", "refused_event", "shown_arguments"]

# The longest string an argument keeps in the event (code, a file's content): enough to see what
# was tried.
MAX_ARGUMENT_CHARS = 500
_SECRET_KEY = re.compile(r"(?i).*(authorization|cookie|passw(or)?d|secret|token|api[-_]?key|credential).*")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_RETRYABLE = frozenset({"http"})


class ToolRefusal(TaskError):
    """An attempt a built-in tool refused or stopped at a limit: a failed attempt, not retried,
    and a `ToolRefused` event."""

    def __init__(self, tool: str, kind: ErrorKind, refusal: ToolRefused) -> None:
        super().__init__(kind, f"{tool}: {refusal.reason}", retryable=False)
        self.refusal = refusal


async def failure(exc: ToolError, tool: str, arguments: dict[str, Any]) -> TaskError:
    """`exc`, raised by tool `tool` (the grant it ran under) for a call with `arguments`, as the
    attempt's failure: a refusal or a limit as a `ToolRefusal`, anything else as its kind says."""
    if exc.kind in ("refused", "limit"):
        shown = await shown_arguments(arguments)
        event = ToolRefused(id="", ts=now(), workflow_id="_", task_id="_", attempt=1, tool=tool, kind=exc.kind,
                            reason=exc.reason, arguments=shown)
        return ToolRefusal(tool, "tool_refused" if exc.kind == "refused" else "tool_limit", event)
    if exc.kind == "bad_request":
        return TaskError("bad_request", f"{tool}: {exc.reason}", retryable=False)
    # A failed request may answer the next time, and an MCP server that died is started again at
    # the next call; a failed query or program will fail again.
    return TaskError("error", f"{tool}: {exc.reason}", retryable=tool in _RETRYABLE or tool.startswith(MCP_PREFIX))


async def shown_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as an event shows them: credentials blanked, secrets redacted, long strings cut."""
    shown, _ = await screen(_cut(_blanked(arguments)))
    return dict(shown)


def refused_event(refusal: ToolRefusal, ready: TaskReady, actor: str, id_key: bytes | None) -> ToolRefused:
    """The refusal's event, in the attempt's envelope (its id derived from the attempt's)."""
    event = refusal.refusal
    return ToolRefused(id=derive_id(run_key(ready), "ToolRefused", ready.task_id, ready.attempt, key=id_key),
                       ts=event.ts, workflow_id=ready.workflow_id, run_id=ready.run_id, causation_id=ready.id,
                       actor=actor, task_id=ready.task_id, attempt=ready.attempt, tool=event.tool, kind=event.kind,
                       reason=event.reason, arguments=event.arguments)


def _blanked(value: Any, key: str = "") -> Any:
    """`value` with the values of credential-named keys blanked and URL passwords hidden."""
    if _SECRET_KEY.fullmatch(key):
        return "[REDACTED]"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1[REDACTED]@", value)
    if isinstance(value, list):
        return [_blanked(item) for item in value]
    if isinstance(value, dict):
        return {k: _blanked(v, str(k)) for k, v in value.items()}
    return value


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_ARGUMENT_CHARS:
        return value[:MAX_ARGUMENT_CHARS] + f"… ({len(value)} characters)"
    if isinstance(value, list):
        return [_cut(item) for item in value]
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    return value
