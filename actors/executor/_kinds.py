"""One attempt of one task, by kind: noop, sleep, echo, python, llm and the agent task types.

`run_task` makes exactly one attempt (at most one HTTP request, one subprocess); retrying is
the distributor's decision, informed by `TaskError.kind`, `retryable` and `retry_after`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from events import TaskSpec

from .._settings import Settings
from ..registry import TASK_KINDS
from . import _llm, _python, _templates
from ._llm import KeyPool
from ._outcome import Outcome, TaskError

__all__ = ["run_task"]

_SLEEP_SECONDS = next(p for p in TASK_KINDS["sleep"].params if p.name == "seconds")

async def run_task(spec: TaskSpec, inputs: dict[str, Any], settings: Settings, *, timeout: float,
                   http: aiohttp.ClientSession | None = None, keys: KeyPool | None = None) -> Outcome:
    """Run one attempt of `spec` within `timeout` seconds; `inputs` are its dependencies' outputs.

    `http` and `keys` are the caller's to share across attempts; without them a client is made
    for the one request and the process's key pool for `settings.llm.api_keys` is used.
    """
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await _dispatch(spec, inputs, settings, http, keys)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise TaskError("timeout", f"timed out after {timeout:g}s", retryable=True) from None


async def _dispatch(spec: TaskSpec, inputs: dict[str, Any], settings: Settings,
                    http: aiohttp.ClientSession | None, keys: KeyPool | None) -> Outcome:
    if spec.type == "noop":
        return Outcome(output=None)
    if spec.type == "sleep":
        seconds = spec.parameters.get("seconds", 0)
        if not _SLEEP_SECONDS.accepts(seconds):  # the validator's rule, should a submission slip past it
            raise TaskError("bad_request", f"parameters.seconds must be {_SLEEP_SECONDS.expected()}, not {seconds!r}",
                            retryable=False)
        await asyncio.sleep(seconds)
        return Outcome(output={"slept": seconds})
    if spec.type == "echo":
        if "text" in spec.parameters:
            return Outcome(output=_templates.render(spec.parameters["text"], inputs, "parameters.text"))
        return Outcome(output=_templates.render_text(spec.description, inputs, "description"))
    if spec.type == "python":
        return await _python.run_python(spec, inputs, settings)
    kind = TASK_KINDS.get(spec.type)
    if kind is not None and kind.llm:
        if http is not None:
            return await _llm.run_llm(spec, inputs, settings, http, keys)
        async with _llm.http_client() as client:
            return await _llm.run_llm(spec, inputs, settings, client, keys)
    raise TaskError("bad_request", f"unknown task type {spec.type!r}", retryable=False)
