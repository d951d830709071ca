"""What a person said about a task's result: a rating and a comment, which move the matcher's
preference for the model that produced it, for that agent and task type."""

from __future__ import annotations

from typing import ClassVar

from ._envelope import EventBase, Name
from ._task import Score

__all__ = ["FeedbackGiven"]


class FeedbackGiven(EventBase, frozen=True, kw_only=True):
    """`ymera feedback TASK --rating R [--run RUN]` or `orchestrator.record_feedback(...)`.

    Names what was rated (the attempt's model, task type and agent, as the run recorded them)
    so the performance tracker folds it without the run's other events.
    """

    domain: ClassVar[str] = "fb"
    verb: ClassVar[str] = "given"

    task_id: Name
    rating: Score  # 0 (useless) .. 1 (exactly right)
    comment: str = ""
    principal: str = "anonymous"
    task_type: str = ""
    agent: str | None = None
    model: str | None = None
