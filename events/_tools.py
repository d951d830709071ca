"""What a task's tools did: one event per call of an MCP server's tool, made by the executor.

The log says exactly what ran: which server and tool, with which arguments (as the tool got
them, `{{ … }}` references filled in, credentials blanked and secrets redacted), how long it
took, whether the tool reported an error, and what it answered, kept as a blob (by digest) so
a large answer costs the stream a reference.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._envelope import EventBase, Name
from ._task import Attempt

__all__ = ["ToolCalled"]


class ToolCalled(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "tool"
    verb: ClassVar[str] = "called"
    blob_fields: ClassVar[tuple[str, ...]] = ("result",)
    # The answer is a blob whenever it is a blob's worth (events/_blobs.py), however small the event.
    inline_limit: ClassVar[int] = 0

    task_id: Name
    attempt: Attempt
    call: int  # 1, 2, ... within the attempt
    tool: str  # the grant it ran under: mcp:<server>
    name: str  # the server's tool
    arguments: dict[str, Any] = {}
    is_error: bool = False  # the tool answered, reporting a failure
    result: Any = None
    duration_ms: float = 0.0
