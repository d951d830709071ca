"""The executor: one attempt of one task, by kind (noop, sleep, echo, python, llm, agent tasks),
and whether its outcome meets the task's `expect`."""

from .._checks import check_outcome
from .._outcome import Outcome, TaskError
from ._actor import Executor
from ._kinds import context, run_task

__all__ = ["Executor", "Outcome", "TaskError", "check_outcome", "context", "run_task"]
