"""The events that record what an attempt did besides its result: its choices of model and its
model calls (`ModelChosen`, `LLMCalled`, the judge's among them), and its MCP tool calls
(`ToolCalled`). The executor publishes them before the result, so a reader of the result finds
what it cost in the stream before it."""

from __future__ import annotations

from typing import Any

import msgspec

from events import Event, LLMCalled, ModelChosen, ToolCalled, derive_id, now

from ._fence import Attempt, run_key

__all__ = ["called", "tool_called"]


def called(attempt: Attempt, actor: str, executor_id: str, key: bytes | None) -> list[Event]:
    """The attempt's choices of model and its calls' records, each choice before its call."""
    ready = attempt.ready
    assert ready.spec is not None
    common: dict[str, Any] = {"workflow_id": ready.workflow_id, "run_id": ready.run_id, "causation_id": ready.id,
                              "actor": actor, "task_id": ready.task_id, "attempt": ready.attempt,
                              "executor": executor_id}
    out: list[Event] = [
        ModelChosen(id=derive_id(run_key(ready), "ModelChosen", ready.task_id, ready.attempt, i, executor_id, key=key),
                    ts=attempt.calls[call - 1].ts if call <= len(attempt.calls) else now(), **common, call=call,
                    task_type=ready.spec.type, agent=ready.spec.agent, model=choice.target.ref,
                    candidates=list(choice.candidates), reason=choice.reason)
        for i, (call, choice) in enumerate(attempt.choices, 1)]
    out.extend(LLMCalled(id=derive_id(run_key(ready), "LLMCalled", ready.task_id, ready.attempt, n, executor_id,
                                      key=key),
                         **common, call=n, task_type=ready.spec.type, replay_of=ready.replay_of,
                         **msgspec.structs.asdict(call))
               for n, call in enumerate(attempt.calls, 1))
    return out


def tool_called(attempt: Attempt, actor: str, executor_id: str, key: bytes | None) -> list[ToolCalled]:
    """The attempt's MCP calls (`_mcp.py`), one event each, before its result."""
    ready = attempt.ready
    return [ToolCalled(id=derive_id(run_key(ready), "ToolCalled", ready.task_id, ready.attempt, n, executor_id,
                                    key=key),
                       ts=now(), workflow_id=ready.workflow_id, run_id=ready.run_id, causation_id=ready.id,
                       actor=actor, task_id=ready.task_id, attempt=ready.attempt, call=n, tool=call.tool,
                       name=call.name, arguments=call.arguments, is_error=call.is_error, result=call.result,
                       duration_ms=call.duration_ms)
            for n, call in enumerate(attempt.tool_calls, 1)]
