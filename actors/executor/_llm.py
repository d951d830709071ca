"""`llm` and agent tasks: the prompt built from the task (and its agent), one call through the
AI layer (`llm/`), its answer as the attempt's output.

The AI layer's errors become a `TaskError` here, once, whose kind tells the distributor
whether and when to retry; the call's record (provider, model, key id, tokens, latency, cost,
the response) is published by the executor as an `LLMCalled`.
"""

from __future__ import annotations

from typing import Any

import llm
from config import Settings
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import TASK_KINDS
from ._templates import as_text, render, render_text

__all__ = ["DEFAULT_SYSTEM", "run_llm"]

DEFAULT_SYSTEM = "You are a helpful assistant. Answer precisely and completely."
# Parameters that shape the request rather than describe the work; the rest reach an agent's prompt.
_REQUEST_PARAMS = frozenset({"prompt", "system", "model", "base_url", "temperature", "max_tokens",
                             "cost_per_1k_tokens", "stream", "fallback_models"})


async def run_llm(spec: TaskSpec, inputs: dict[str, Any], settings: Settings, client: llm.LLMClient) -> Outcome:
    """One answer for `spec`, from the model the selector chooses (`llm.Selector`); a call a
    budget refuses goes to a cheaper candidate if there is one. In a replay, the recorded
    run's model and answer (`llm.Replay`)."""
    params = spec.parameters
    current = llm.current_recording()
    need = _need(spec, settings, current)
    messages = _messages(spec, inputs, settings)
    max_tokens = params.get("max_tokens")
    try:
        choice = _replayed(current.replay, need, client, 1) if current is not None and current.replay is not None \
            else client.selector.choose(need)
    except llm.LLMError as exc:
        raise TaskError(exc.kind, exc.message, retryable=False, model=need.model) from None
    passed: list[str] = []
    while True:
        if current is not None:
            current.chose(choice)
        target = choice.target
        try:
            reply, call = await client.complete(target, messages, max_tokens=max_tokens,
                                                temperature=params.get("temperature"),
                                                stream=bool(params.get("stream", False)))
            break
        except llm.LLMError as exc:  # a failure names its model too: the tracker's failure rate per model
            if exc.kind == "budget" and not exc.retryable and len(choice.candidates) > 1:
                cheaper = _cheaper(client, need, messages, max_tokens, target, passed, exc)
                if cheaper is not None:
                    choice = cheaper
                    continue
                exc.message += "; no cheaper candidate model fits"
            raise TaskError(exc.kind, exc.message, retryable=exc.retryable, retry_after=exc.retry_after,
                            model=target.ref) from None
    usage = {"prompt_tokens": call.tokens_in, "completion_tokens": call.tokens_out,
             "total_tokens": call.tokens_in + call.tokens_out}
    cost = call.cost_usd
    rate = params.get("cost_per_1k_tokens")  # the task's own price wins over the catalogue's
    replaying = current is not None and current.replay is not None
    if isinstance(rate, int | float) and not isinstance(rate, bool) and not replaying:
        cost = round(usage["total_tokens"] * rate / 1000, 8)
    return Outcome(output=reply.text, model=target.ref, usage=usage, cost_usd=cost)


def _need(spec: TaskSpec, settings: Settings, current: llm.Recording | None) -> llm.Need:
    """What the selector is told: the task type, its agent, the model named for it and by
    whom, its fallbacks, and the task's earlier attempts."""
    params = spec.parameters
    agent = settings.agents.get(spec.agent) if spec.agent is not None else None
    fallbacks = params.get("fallback_models", [])
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) and m for m in fallbacks):
        raise TaskError("bad_request", f"parameters.fallback_models must be a list of model names, got "
                        f"{fallbacks!r}", retryable=False)
    if params.get("model"):
        model, named_by = str(params["model"]), "the task"
    elif agent is not None and agent.model:
        model, named_by = agent.model, f"agent {agent.name}"
    else:
        model, named_by = settings.llm.model or "", "YMERA_LLM_MODEL"
    return llm.Need(task_type=spec.type, agent=spec.agent, model=model or None, named_by=named_by if model else "",
                    pinned=bool(params.get("model")), fallbacks=tuple(fallbacks),
                    base_url=str(params["base_url"]) if params.get("base_url") else None,
                    tried=current.tried if current is not None else (),
                    upgrade=current.upgrade if current is not None else None)


def _cheaper(client: llm.LLMClient, need: llm.Need, messages: tuple[llm.Message, ...], max_tokens: int | None,
             refused: llm.Target, passed: list[str], exc: llm.LLMError) -> llm.Choice | None:
    """The next choice for a call the budget refused on `refused`: a candidate that costs less."""
    passed.append(refused.ref)
    most = client.estimate(refused, messages, max_tokens)

    def fits(target: llm.Target) -> bool:
        try:
            cost = client.estimate(target, messages, max_tokens)
        except llm.LLMError:  # the prompt does not fit its context window
            return False
        return most is not None and cost is not None and cost < most

    try:
        return client.selector.choose(need, exclude=passed, fits=fits,
                                      because=f"downgraded from {refused.ref}: {exc.message}")
    except llm.LLMError:
        return None


def _replayed(replay: llm.Replay, need: llm.Need, client: llm.LLMClient, call: int) -> llm.Choice:
    """The recorded run's model for call `call`: the same request, so the same recorded answer."""
    ref = replay.model(call)
    if ref is None:
        raise llm.LLMError("bad_request", f"offline replay: the recorded run made no call {call} for this task "
                           "attempt", retryable=False)
    return llm.Choice(client.models.recorded(ref, need.base_url), (ref,),
                      f"replay: the recorded run's call {call} went to {ref}")


def _messages(spec: TaskSpec, inputs: dict[str, Any], settings: Settings) -> tuple[llm.Message, ...]:
    params = spec.parameters
    if "prompt" in params:
        request = as_text(render(params["prompt"], inputs, "parameters.prompt"))
    else:
        request = render_text(spec.description, inputs, "description")
    extra = as_text(render(params["system"], inputs, "parameters.system")) if "system" in params else None
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
        parts.append("Parameters:\n" + "\n".join(f"- {name}: {as_text(value)}" for name, value in details.items()))
    parts.extend(f"Output of task {task_id}:\n{as_text(output)}" for task_id, output in inputs.items())
    return (llm.Message("system", system), llm.Message("user", "\n\n".join(parts)))
