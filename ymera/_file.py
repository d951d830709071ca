"""A workflow file (YAML or JSON) read into a submission, with every mistake in it said plainly.

A bad id is reported by the id rule events use (`events.check_workflow_id`), a number YAML 1.1
read as a string (`1e12`) with how to write it, before anything connects or publishes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

import events
from actors import registry
from config import Settings

from ._client import describe_problem

__all__ = ["read_workflow", "rerun_threshold"]


class _WorkflowFile(msgspec.Struct, forbid_unknown_fields=True):
    workflow_id: str  # checked by events.check_workflow_id, which says what is wrong with it
    tasks: list[events.TaskSpec]
    name: str = ""
    principal: str = "anonymous"
    metadata: dict[str, str] = {}
    max_parallel_tasks: int | None = None
    budget_usd: float | None = None
    rerun_below_quality: bool | float | None = None  # true: QUALITY_THRESHOLD


# What `rerun_below_quality: true` means where no settings are given: QUALITY_THRESHOLD's default.
_QUALITY_THRESHOLD = Settings().quality_threshold


def read_workflow(path: Path, quality_threshold: float = _QUALITY_THRESHOLD) -> events.WorkflowSubmitted:
    """A workflow file, {workflow_id, tasks, name?, principal?, metadata?, max_parallel_tasks?, budget_usd?,
    rerun_below_quality?}, as a submission; `rerun_below_quality: true` becomes `quality_threshold`
    (QUALITY_THRESHOLD, `settings.quality_threshold`), false none."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise events.YmeraError(f"cannot read {path}: {exc.strerror}") from None
    return parse_workflow(raw, str(path), path.suffix in (".yaml", ".yml"), quality_threshold)


def parse_workflow(raw: bytes, source: str, yaml: bool,
                   quality_threshold: float = _QUALITY_THRESHOLD) -> events.WorkflowSubmitted:
    """`read_workflow` of a workflow's bytes (YAML, else JSON); `source` names it in each problem."""
    path = source
    decode = msgspec.yaml.decode if yaml else msgspec.json.decode
    try:
        doc = decode(raw, type=_WorkflowFile)
        events.check_workflow_id(doc.workflow_id)
    except msgspec.ValidationError as exc:
        try:
            doc_as_is = decode(raw)
        except msgspec.DecodeError as malformed:  # the typed decode stopped at a type before the syntax error
            raise events.YmeraError(f"{path}: {events.one_line(malformed)}") from None
        raise events.YmeraError(f"{path}: {_explain(exc, doc_as_is)}") from None
    except msgspec.DecodeError as exc:
        raise events.YmeraError(f"{path}: {events.one_line(exc)}") from None
    except events.InvalidId as exc:
        raise events.YmeraError(f"{path}: {exc}") from None
    return events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id=doc.workflow_id, name=doc.name, principal=doc.principal,
        tasks=doc.tasks, metadata=doc.metadata, max_parallel_tasks=doc.max_parallel_tasks, budget_usd=doc.budget_usd,
        rerun_below_quality=rerun_threshold(doc.rerun_below_quality, quality_threshold),
    )


def rerun_threshold(value: bool | float | None, quality_threshold: float) -> float | None:
    """`rerun_below_quality` as a submission carries it: true is the configured threshold, false none."""
    if value is True:
        return quality_threshold
    if value is False:
        return None
    return value


_AT = re.compile(r" - at `\$([^`]*)`$")
# What these task fields hold, said for a user whose file gives them something else.
_TASK_FIELDS = {"tools": "a list of tool names", "untrusted": "true or false"}
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _explain(error: msgspec.ValidationError, doc: Any) -> str:
    """A decoder's complaint about a well-formed file, said for its user: a bad id by the id rule,
    a number YAML 1.1 read as a string with how to write it; anything else as msgspec says it."""
    message = str(error)
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    try:
        if isinstance(doc, dict) and isinstance(doc.get("workflow_id"), str):
            events.check_workflow_id(doc["workflow_id"])
        for task in tasks if isinstance(tasks, list) else ():
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                events.check_task_id(task["id"])
    except events.InvalidId as exc:
        return str(exc)
    at = _AT.search(message)
    if at is None:
        return message
    value: Any = doc
    steps: list[str] = []
    for name, index in _STEP.findall(at.group(1)):
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        steps.append(name or index)
    if (steps[:1] == ["tasks"] and len(steps) > 2 and steps[2] in _TASK_FIELDS and isinstance(tasks, list)
            and steps[1].isdigit() and int(steps[1]) < len(tasks)):
        return _task_field(tasks[int(steps[1])], steps[2])
    integer = "`int" in message and "float" not in message
    shown = registry.number_in_string(value, integer)
    if shown is None:
        return message
    expected = "an integer" if integer else "a number"
    problem = f"expected {expected}, got {shown}"
    if steps[:1] == ["tasks"] and len(steps) > 2 and isinstance(tasks, list):
        task = tasks[int(steps[1])]
        task_id = task.get("id") if isinstance(task, dict) else None
        if isinstance(task_id, str):
            return describe_problem(task_id, ".".join(steps[2:]), problem)
    return describe_problem(None, at.group(1).lstrip("."), problem)


def _task_field(task: Any, name: str) -> str:
    """A task field of `_TASK_FIELDS` holding the wrong type: what it holds and what it takes."""
    task_id = task.get("id") if isinstance(task, dict) else None
    value = task.get(name) if isinstance(task, dict) else None
    try:
        shown = f"the string {value!r}" if isinstance(value, str) else msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    problem = f"expected {_TASK_FIELDS[name]}, got {shown}"
    if name == "tools":
        problem += f": write tools: [{value}]" if isinstance(value, str) else " (tools: [python])"
    return describe_problem(task_id if isinstance(task_id, str) else None, name, problem)
