"""`{{ tasks.<id>.output }}` references in a task's description and parameters, filled from its inputs.

Which references are allowed is `registry.reference_problem`'s to say, the rule the validator
applies too: a submission that passed validation never fails here.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .._outcome import TaskError
from ..registry import TEMPLATE_REFERENCE, reference_problem

__all__ = ["as_text", "render", "render_text"]


def render_text(text: str, inputs: dict[str, Any], where: str) -> str:
    """`text` with each reference replaced: a string output as-is, anything else as compact JSON."""

    def replace(match: re.Match[str]) -> str:
        task_id = match.group(1)
        problem = reference_problem(task_id, inputs)
        if problem is not None:
            raise TaskError("bad_request", f"{where}: {problem}", retryable=False)
        return as_text(inputs[task_id])

    return TEMPLATE_REFERENCE.sub(replace, text) if "{{" in text else text


def as_text(output: Any) -> str:
    """An output as a prompt holds it: a string as-is, anything else as compact JSON."""
    return output if isinstance(output, str) else msgspec.json.encode(output).decode()


def render(value: Any, inputs: dict[str, Any], where: str) -> Any:
    """`value` with every string inside it (lists and dicts included) rendered; `where` names it in errors."""
    if isinstance(value, str):
        return render_text(value, inputs, where)
    if isinstance(value, list):
        return [render(item, inputs, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: render(item, inputs, f"{where}.{key}") for key, item in value.items()}
    return value
