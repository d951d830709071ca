"""The built-in task kinds' handlers (noop, sleep, echo, python, llm and the agent task types),
registered with their declarations in `actors/registry.py`, and the built-in tools' kinds
(`_tools.py`: files, http, sql, command, git, code) and MCP servers' (`_mcp.py`); and `run_task`, one attempt of any
registered kind within its time limit.

An attempt is exactly one try (at most one HTTP request, one subprocess); retrying is the
distributor's decision, informed by `TaskError.kind`, `retryable` and `retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import llm
from config import Settings
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import HANDLERS, TASK_KINDS, Context, grant_problem, register
from . import _llm, _mcp, _python, _templates
from . import _tools as _tools  # registers the built-in tools' kinds

__all__ = ["context", "never_awaits", "run_task"]

_SLEEP_SECONDS = next(p for p in TASK_KINDS["sleep"].params if p.name == "seconds")
# Kinds whose handlers return without awaiting anything. A time limit takes effect only at an
# await, so it could never interrupt them: none is set (a timer for each of 5,000 no-ops costs more
# than the no-ops do).
_NEVER_AWAIT = frozenset({"noop", "echo"})


def never_awaits(task_type: str) -> bool:
    """Whether the handler of `task_type` returns without awaiting anything: no time limit can
    interrupt it, and it calls no model and no tool, so there is nothing of its calls to record."""
    return task_type in _NEVER_AWAIT


async def run_task(spec: TaskSpec, inputs: dict[str, Any], ctx: Context, *, timeout: float) -> Outcome:
    """Run one attempt of `spec` within `timeout` seconds; `inputs` are its dependencies' outputs.
    A task not granted a tool its kind uses is refused here too, whatever the validator said."""
    handler = HANDLERS.get(spec.type)
    if handler is None:
        raise TaskError("bad_request", f"unknown task type {spec.type!r}", retryable=False)
    ungranted = grant_problem(spec, TASK_KINDS[spec.type])
    if ungranted is not None:
        raise TaskError("not_granted", f"not run: {ungranted}", retryable=False)
    if never_awaits(spec.type):
        return await handler(spec, inputs, ctx)
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await handler(spec, inputs, ctx)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise TaskError("timeout", f"timed out after {timeout:g}s", retryable=True) from None


@contextlib.asynccontextmanager
async def context(settings: Settings, connections: int | None = None) -> AsyncIterator[Context]:
    """The handlers' resources for one executor (or one test): an HTTP client holding up to
    `connections` (default: the executor's concurrency, so no attempt waits for a connection
    and its duration_ms is the call's), and the AI layer's client over it (the providers with
    keys, a key pool each, the model catalogue with YMERA_MODELS_FILE's entries), and a client for
    each MCP server the deployment declares (`_mcp.py`)."""
    models = llm.Models(settings, llm.Catalogue.load(settings.models_file))
    servers = _mcp.clients(settings)
    try:
        async with llm.http_client(connections or settings.executor_concurrency) as http:
            yield Context(settings=settings, http=http, llm=llm.LLMClient(http, models), mcp=servers)
    finally:
        for client in servers.values():
            await client.aclose()  # each server it started stops with it


async def _noop(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    return Outcome(output=None)


async def _sleep(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    seconds = task.parameters.get("seconds", 0)
    if not _SLEEP_SECONDS.accepts(seconds):  # the validator's rule, should a submission slip past it
        raise TaskError("bad_request", f"parameters.seconds must be {_SLEEP_SECONDS.expected()}, not {seconds!r}",
                        retryable=False)
    await asyncio.sleep(seconds)
    return Outcome(output={"slept": seconds})


async def _echo(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    if "text" in task.parameters:
        return Outcome(output=_templates.render(task.parameters["text"], inputs, "parameters.text"))
    return Outcome(output=_templates.render_text(task.description, inputs, "description"))


async def _python_task(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    return await _python.run_python(task, inputs, ctx.settings)


async def _llm_task(task: TaskSpec, inputs: dict[str, Any], ctx: Context) -> Outcome:
    return await _llm.run_llm(task, inputs, ctx.settings, ctx.llm)


for _name, _handler in (("noop", _noop), ("sleep", _sleep), ("echo", _echo), ("python", _python_task)):
    register(TASK_KINDS[_name], _handler)
for _kind in [k for k in TASK_KINDS.values() if k.llm]:
    register(_kind, _llm_task)
