"""Untrusted content on its way into a model's prompt, read before the call.

An llm or agent task's prompt holds outputs of its dependencies: all of them for an agent
task (its prompt lists them), those its `prompt`, `system` or description refers to for an
llm task. Each of those the distributor marked untrusted (`TaskReady.untrusted_inputs`: a
tool's output, a fetched page, user text, or content derived from one) is read here by the
input sanitiser (`guard.scan_input`) in the `prompt` context, as the prompt holds it (a string
as it is, anything else as compact JSON), and whole: a long one in overlapping windows.

A high or critical finding fails the attempt before any call, for good (the same input would
be found again); lower ones are reported and the call goes ahead. Nothing is altered: the model
gets the prompt the task asked for, or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from typing import Any

import msgspec

from events import SecurityFinding, TaskSpec
from guard import BLOCKING, scan_input

from .._outcome import TaskError
from ..registry import TaskKind, template_references
from ._templates import as_text

__all__ = ["MAX_EDGE_CHARS", "Edge", "blocking_reason", "prompt_sources", "scan_edges"]

WINDOW = 131_072  # characters per scan: under the sanitiser's limit (256 Ki), so it reads each whole
OVERLAP = 4_096  # an attack across two windows is whole in one of them
# More than a model's prompt could hold (about a million tokens); the scan of this many takes seconds.
MAX_EDGE_CHARS = 4 * 1024 * 1024
IN_THREAD_CHARS = 16 * 1024  # more than this is scanned off the executor's loop (~10 ms)


class Edge(msgspec.Struct, frozen=True):
    """What the scan found in the output of `from_task` bound for the prompt."""

    from_task: str
    findings: list[SecurityFinding]

    @property
    def blocking(self) -> list[SecurityFinding]:
        return [f for f in self.findings if f.severity in BLOCKING]


def prompt_sources(spec: TaskSpec, kind: TaskKind) -> list[str]:
    """The dependencies whose outputs the prompt of `spec` holds, as `_llm._messages` builds it."""
    if kind.agent:
        return list(dict.fromkeys(spec.dependencies))
    params = spec.parameters
    texts = [params.get("prompt", spec.description)]
    if "system" in params:
        texts.append(params["system"])
    return list(dict.fromkeys(ref for text in texts for s in _strings(text) for ref in template_references(s)))


async def scan_edges(spec: TaskSpec, kind: TaskKind, inputs: dict[str, Any], untrusted: Collection[str]
                     ) -> list[Edge]:
    """Each untrusted input the prompt of `spec` holds, scanned; a `TaskError` for one too long to scan."""
    texts: dict[str, str] = {}
    for source in prompt_sources(spec, kind):
        if source in untrusted and source in inputs:
            text = as_text(inputs[source])
            if len(text) > MAX_EDGE_CHARS:
                raise TaskError("untrusted_input", f"the output of task {source} is untrusted and {len(text)} "
                                f"characters long, more than the {MAX_EDGE_CHARS} read before a prompt: give this "
                                f"task less of it (a task that keeps what the prompt needs)", retryable=False)
            texts[source] = text
    if sum(map(len, texts.values())) > IN_THREAD_CHARS:
        return await asyncio.to_thread(_scan_all, texts)
    return _scan_all(texts)


def blocking_reason(edges: list[Edge]) -> str | None:
    """Why the attempt may not call its model: the first high or critical finding; None if none."""
    blocking = [(edge.from_task, f) for edge in edges for f in edge.blocking]
    if not blocking:
        return None
    source, first = blocking[0]
    more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
    return (f"the output of task {source} is untrusted and holds an attack bound for this task's prompt: "
            f"{first.reason}{more}; the model was not called")


def _scan_all(texts: dict[str, str]) -> list[Edge]:
    return [Edge(source, _scan(source, text)) for source, text in texts.items()]


def _scan(source: str, text: str) -> list[SecurityFinding]:
    seen: set[tuple[str, tuple[int, int]]] = set()
    findings: list[SecurityFinding] = []
    for start in _windows(len(text)):
        for issue in scan_input(text[start:start + WINDOW], "prompt").issues:
            span = (issue.span[0] + start, issue.span[1] + start)
            if (issue.type, span) in seen:
                continue  # found again in the overlap
            seen.add((issue.type, span))
            findings.append(SecurityFinding(kind="injection", type=issue.type, severity=issue.severity,
                                            field=f"tasks.{source}.output", span=span, reason=issue.reason,
                                            alert="injection_attempt"))
    return findings


def _windows(length: int) -> Iterator[int]:
    start = 0
    while True:
        yield start
        if start + WINDOW >= length:
            return
        start += WINDOW - OVERLAP


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
