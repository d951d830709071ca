"""The executor: one attempt of one task, by kind (noop, sleep, echo, python, llm, agent tasks)."""

from ._kinds import Outcome, TaskError, run_task
from ._llm import KeyPool

__all__ = ["KeyPool", "Outcome", "TaskError", "run_task"]
