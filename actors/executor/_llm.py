"""`llm` and agent tasks: the prompt built from the task (and its agent), one call through the
AI layer (`llm/`), its answer as the attempt's output.

The AI layer's errors become a `TaskError` here, once, whose kind tells the distributor
whether and when to retry; the call's record (provider, model, key id, tokens, latency, cost,
the response) is published by the executor as an `LLMCalled`.
"""

from __future__ import annotations

from typing import Any

import msgspec

import llm
from config import Settings
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import TASK_KINDS
from ._templates import render, render_text

__all__ = ["DEFAULT_SYSTEM", "run_llm"]

DEFAULT_SYSTEM = "You are a helpful assistant. Answer precisely and completely."
# Parameters that shape the request rather than describe the work; the rest reach an agent's prompt.
_REQUEST_PARAMS = frozenset({"prompt", "system", "model", "base_url", "temperature", "max_tokens",
                             "cost_per_1k_tokens", "stream"})


async def run_llm(spec: TaskSpec, inputs: dict[str, Any], settings: Settings, client: llm.LLMClient) -> Outcome:
    """One call for `spec`: to the model it, its agent or the settings name (`llm.Models.resolve`)."""
    params = spec.parameters
    agent = settings.agents.get(spec.agent) if spec.agent is not None else None
    asked = params.get("model") or (agent.model if agent is not None else None)
    model = str(asked) if asked else None
    try:
        target = client.models.resolve(model, str(params["base_url"]) if params.get("base_url") else None)
    except llm.LLMError as exc:
        raise TaskError("bad_request", exc.message, retryable=False, model=model) from None
    messages = _messages(spec, inputs, settings)
    try:
        reply, call = await client.complete(target, messages, max_tokens=params.get("max_tokens"),
                                            temperature=params.get("temperature"),
                                            stream=bool(params.get("stream", False)))
    except llm.LLMError as exc:  # a failure names its model too: the tracker's failure rate per model
        raise TaskError(exc.kind, exc.message, retryable=exc.retryable, retry_after=exc.retry_after,
                        model=target.model) from None
    usage = {"prompt_tokens": call.tokens_in, "completion_tokens": call.tokens_out,
             "total_tokens": call.tokens_in + call.tokens_out}
    cost = call.cost_usd
    rate = params.get("cost_per_1k_tokens")  # the task's own price wins over the catalogue's
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        cost = round(usage["total_tokens"] * rate / 1000, 8)
    return Outcome(output=reply.text, model=reply.model or target.model, usage=usage, cost_usd=cost)


def _messages(spec: TaskSpec, inputs: dict[str, Any], settings: Settings) -> tuple[llm.Message, ...]:
    params = spec.parameters
    if "prompt" in params:
        request = _text(render(params["prompt"], inputs, "parameters.prompt"))
    else:
        request = render_text(spec.description, inputs, "description")
    extra = _text(render(params["system"], inputs, "parameters.system")) if "system" in params else None
    kind = TASK_KINDS.get(spec.type)
    if kind is None or not kind.agent:
        return (llm.Message("system", extra or DEFAULT_SYSTEM), llm.Message("user", request))
    agent = settings.agents.get(spec.agent or "")
    if agent is None:  # the validator's rule, should a submission slip past it
        raise TaskError("bad_request", f"{spec.type} task needs an agent; {settings.agents.known()}; "
                        f"got {spec.agent!r}", retryable=False)
    system = f"{agent.role}\n\nYour task is {spec.type}: {kind.description}"
    if extra:
        system = f"{system}\n\n{extra}"
    parts = [request] if request else []
    details = {name: render(value, inputs, f"parameters.{name}") for name, value in params.items()
               if name not in _REQUEST_PARAMS}
    if details:
        parts.append("Parameters:\n" + "\n".join(f"- {name}: {_text(value)}" for name, value in details.items()))
    parts.extend(f"Output of task {task_id}:\n{_text(output)}" for task_id, output in inputs.items())
    return (llm.Message("system", system), llm.Message("user", "\n\n".join(parts)))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
