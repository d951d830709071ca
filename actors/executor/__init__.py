"""The executor: one attempt of one task, by kind (noop, sleep, echo, python, llm, agent tasks)."""

from ._kinds import run_task
from ._llm import KeyPool
from ._outcome import Outcome, TaskError

__all__ = ["KeyPool", "Outcome", "TaskError", "run_task"]
