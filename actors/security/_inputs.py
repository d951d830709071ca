"""What the security actor reads in a submission before admitting it: every task's description
and string parameters, through the input sanitiser (`guard.scan_input`), each in the context
its text is bound for.

    description             "prompt" for a task a model runs (its text is the prompt), else "text"
    parameters.prompt/system/instructions   "prompt"
    parameters.url / urls / endpoint        "url"
    parameters.path / file / directory      "path"
    parameters.query / sql                  "sql"
    parameters.command / cmd / args         "shell"
    any other string                        "text"

A string in a list is read in its parameter's context. Every issue, whatever its severity, is
reported (`InputFlagged`); a high or critical one refuses the submission, naming the task, the
field and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from actors.registry import TASK_KINDS
from events import SecurityFinding, TaskSpec
from guard import BLOCKING, scan_input

__all__ = ["screen_tasks"]

_CONTEXTS = {
    "prompt": "prompt", "system": "prompt", "instructions": "prompt",
    "url": "url", "urls": "url", "endpoint": "url",
    "path": "path", "file": "path", "directory": "path",
    "query": "sql", "sql": "sql",
    "command": "shell", "cmd": "shell", "args": "shell",
}


def screen_tasks(tasks: list[TaskSpec]) -> tuple[list[SecurityFinding], str | None]:
    """Every issue found in the tasks' text, and why the submission is refused (None: it is not)."""
    findings: list[SecurityFinding] = []
    refusal: str | None = None
    for task in tasks:
        for field, text, context in _texts(task):
            for issue in scan_input(text, context).issues:
                findings.append(SecurityFinding(kind="injection", type=issue.type, severity=issue.severity,
                                                field=f"{task.id}.{field}", span=issue.span, reason=issue.reason,
                                                alert="injection_attempt"))
                if refusal is None and issue.severity in BLOCKING:
                    refusal = f"task {task.id}: {field}: {issue.reason}"
    blocking = sum(f.severity in BLOCKING for f in findings)
    if refusal is not None and blocking > 1:
        refusal += f" (and {blocking - 1} more)"
    return findings, refusal


def _texts(task: TaskSpec) -> Iterator[tuple[str, str, str]]:
    kind = TASK_KINDS.get(task.type)
    if task.description:
        yield "description", task.description, "prompt" if kind is not None and kind.llm else "text"
    for name, value in task.parameters.items():
        yield from _strings(f"parameters.{name}", value, _CONTEXTS.get(name, "text"))


def _strings(field: str, value: Any, context: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, str):
        if value:
            yield field, value, context
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(f"{field}[{i}]", item, context)
