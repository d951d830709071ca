"""The executor: one attempt of one task, by kind (noop, sleep, echo, python, llm, agent tasks),
and whether its outcome meets the task's `expect`."""

from ._expect import check_outcome
from ._kinds import run_task
from ._llm import KeyPool
from ._outcome import Outcome, TaskError

__all__ = ["KeyPool", "Outcome", "TaskError", "check_outcome", "run_task"]
