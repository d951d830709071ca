"""How a task's output is scored (docs/quality.md, "Scores"): five scores from evidence, their
weighted mean and their reasons. The assessor scores what a model wrote; the executor scores,
in the attempt, what no model wrote (`score_in_attempt`), by the same rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events import CheckResult, Quality, TaskSpec

from ._lint import lint_answer, lint_answer_blocking, lint_blocking
from ._scoring import CODE_TASK_TYPES, EMPTY_OUTPUT_TYPES, WEIGHTS, Scores, score, written_by_model

__all__ = ["CODE_TASK_TYPES", "EMPTY_OUTPUT_TYPES", "WEIGHTS", "Scores", "lint_answer", "lint_answer_blocking",
           "lint_blocking", "score", "score_in_attempt", "written_by_model"]


async def score_in_attempt(spec: TaskSpec, output: Any, *, duration_ms: float, timeout_seconds: float,
                           checks: Sequence[CheckResult] = ()) -> Quality | None:
    """The score of a success no model wrote, from what its attempt holds (the spec, the output,
    its duration and checks, ruff's lint of any Python in it); None for a model's answer, which
    the assessor scores with its inputs and the judge's verdict."""
    if written_by_model(spec.type):
        return None
    s = score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds, checks=checks,
              lint=await lint_answer(output))
    return Quality(task_type=spec.type, agent=spec.agent, accuracy=s.accuracy, completeness=s.completeness,
                   consistency=s.consistency, efficiency=s.efficiency, maintainability=s.maintainability,
                   overall=s.overall, reasons=s.reasons)
