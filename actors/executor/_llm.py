"""`llm` and agent tasks: one OpenAI-compatible chat completion over aiohttp.

This module is the boundary for aiohttp and the provider: every transport error and HTTP
status is translated here, once, into a `TaskError` whose kind tells the distributor
whether and when to retry. The client is aiohttp, not httpx: with 1,000 requests in flight
httpx's connection pool spends CPU quadratic in the requests queued (BENCHMARKS.md,
"1,000 LLM calls in flight").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import msgspec

from config import Settings
from events import TaskSpec

from .._keys import KeyPool
from .._outcome import Outcome, TaskError
from ..registry import NO_LLM, TASK_KINDS
from ._templates import render, render_text

__all__ = ["DEFAULT_SYSTEM", "http_client", "retry_after_seconds", "run_llm"]

DEFAULT_SYSTEM = "You are a helpful assistant. Answer precisely and completely."
# How long a key rests after a 429 that does not say how long.
DEFAULT_COOLDOWN_SECONDS = 10.0
MESSAGE_CHARS = 200
# Parameters that shape the request rather than describe the work; the rest reach an agent's prompt.
_REQUEST_PARAMS = frozenset({"prompt", "system", "model", "base_url", "temperature", "max_tokens",
                             "cost_per_1k_tokens"})


def http_client(connections: int = 100) -> aiohttp.ClientSession:
    """A client for provider requests, holding up to `connections` at once (an executor: one per
    attempt it may run, so none waits for a connection and its duration_ms is the call's). No
    client-wide timeout: each attempt is bounded by its own time limit in run_task."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
                                 timeout=aiohttp.ClientTimeout(total=None))


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    model: str | None = None
    usage: _Usage | None = None


async def run_llm(spec: TaskSpec, inputs: dict[str, Any], settings: Settings, http: aiohttp.ClientSession,
                  keys: KeyPool) -> Outcome:
    """One chat completion for `spec`; the key comes from `keys` (the configured endpoint's)."""
    params = spec.parameters
    base_url = str(params.get("base_url") or settings.llm.base_url or "").rstrip("/")
    agent = settings.agents.get(spec.agent) if spec.agent is not None else None
    model = str(params.get("model") or (agent.model if agent is not None else None) or settings.llm.model or "")
    if not (base_url and model):
        raise TaskError("bad_request", NO_LLM, retryable=False)
    body: dict[str, Any] = {"model": model, "messages": _messages(spec, inputs, settings)}
    for name in ("temperature", "max_tokens"):
        if name in params:
            body[name] = params[name]
    # The configured keys go only to the configured endpoint: a task's own base_url must not receive them.
    configured = (settings.llm.base_url or "").rstrip("/")
    pool = keys if base_url == configured else None
    key = pool.take() if pool is not None else None
    url = f"{base_url}/chat/completions"
    try:
        completion = await _complete(http, url, body, key, pool)
    except TaskError as exc:  # a failure names its model too: the tracker's failure rate per model
        exc.model = model
        raise
    usage = {}
    if completion.usage is not None:
        usage = {"prompt_tokens": completion.usage.prompt_tokens,
                 "completion_tokens": completion.usage.completion_tokens,
                 "total_tokens": completion.usage.total_tokens}
    rate = params.get("cost_per_1k_tokens")
    cost = None
    if isinstance(rate, int | float) and not isinstance(rate, bool) and usage:
        cost = round(usage["total_tokens"] * rate / 1000, 8)
    content = completion.choices[0].message.content
    return Outcome(output=content, model=completion.model or model, usage=usage, cost_usd=cost)


def _messages(spec: TaskSpec, inputs: dict[str, Any], settings: Settings) -> list[dict[str, str]]:
    params = spec.parameters
    if "prompt" in params:
        request = _text(render(params["prompt"], inputs, "parameters.prompt"))
    else:
        request = render_text(spec.description, inputs, "description")
    extra = _text(render(params["system"], inputs, "parameters.system")) if "system" in params else None
    kind = TASK_KINDS.get(spec.type)
    if kind is None or not kind.agent:
        return [{"role": "system", "content": extra or DEFAULT_SYSTEM}, {"role": "user", "content": request}]
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
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


async def _complete(http: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str | None,
                    pool: KeyPool | None) -> _Completion:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        async with http.post(url, data=msgspec.json.encode(body), headers=headers) as response:
            status, reason, content = response.status, response.reason, await response.read()
            retry_after_ms, retry_after = response.headers.get("retry-after-ms"), response.headers.get("retry-after")
    except TimeoutError as exc:  # the client's own timeout; the attempt's deadline arrives as a cancellation
        raise TaskError("timeout", f"{url} did not answer in time ({type(exc).__name__})", retryable=True) from exc
    except aiohttp.InvalidURL as exc:
        raise TaskError("bad_request", f"invalid LLM URL {url!r}", retryable=False) from exc
    except aiohttp.ClientConnectorError as exc:
        detail = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else _one_line(str(exc))
        raise TaskError("server_error", f"connection failed: {url}: {detail}", retryable=True) from exc
    except (aiohttp.ClientError, OSError) as exc:
        detail = _one_line(str(exc)) or type(exc).__name__
        raise TaskError("server_error", f"connection failed: {url}: {detail}", retryable=True) from exc
    if status == 429:
        wait = retry_after_seconds(retry_after_ms, milliseconds=True)
        if wait is None:
            wait = retry_after_seconds(retry_after)
        if pool is not None and key is not None:
            pool.cool_down(key, DEFAULT_COOLDOWN_SECONDS if wait is None else wait)
        after = "" if wait is None else f"; retry after {wait:g}s"
        raise TaskError("rate_limited", f"{url} rate limited the request (HTTP 429): "
                        f"{_provider_message(content, reason)}{after}", retryable=True, retry_after=wait)
    if status >= 500:
        raise TaskError("server_error", f"{url} failed with HTTP {status}: {_provider_message(content, reason)}",
                        retryable=True)
    if status == 408:
        raise TaskError("timeout", f"{url} timed out the request (HTTP 408)", retryable=True)
    if 400 <= status < 500:
        raise TaskError("bad_request", f"{url} refused the request with HTTP {status}: "
                        f"{_provider_message(content, reason)}", retryable=False)
    if status != 200:
        raise TaskError("server_error", f"{url} answered with unexpected HTTP {status}", retryable=True)
    try:
        completion = msgspec.json.decode(content, type=_Completion)
    except msgspec.DecodeError as exc:
        raise TaskError("server_error", f"{url} sent a malformed completion: {_one_line(str(exc))}",
                        retryable=True) from exc
    if not completion.choices or completion.choices[0].message.content is None:
        raise TaskError("server_error", f"{url} sent a malformed completion: no choices with message content",
                        retryable=True)
    if completion.choices[0].finish_reason == "length":
        # An answer cut off at the token limit is not the answer: a failed attempt of its own kind,
        # which a larger max_tokens or another model may get right (the task's retry policy decides).
        used = f" after {completion.usage.completion_tokens} tokens" if completion.usage is not None else ""
        limit = f" (max_tokens {body['max_tokens']})" if "max_tokens" in body else ""
        raise TaskError("cut_off", f"{url}: the model stopped at its token limit{used}{limit}: "
                        "the answer is incomplete", retryable=True)
    return completion


def retry_after_seconds(value: str | None, *, milliseconds: bool = False, now: datetime | None = None,
                        ) -> float | None:
    """A `Retry-After` header as seconds from now: delay-seconds or an HTTP-date. None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value) / (1000 if milliseconds else 1)
    except ValueError:
        if milliseconds:
            return None
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _provider_message(content: bytes, reason: str | None) -> str:
    """The provider's own explanation: OpenAI's `error.message`, or what else the body says."""
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        body = content.decode(errors="replace")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        body = error or body.get("message") or body.get("detail") or ""
    text = _one_line(body if isinstance(body, str) else msgspec.json.encode(body).decode())
    text = text or reason or "no explanation given"
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())
