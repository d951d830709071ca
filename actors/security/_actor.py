"""Security: the admission gate every submission passes before anything else looks at it.

Listens to: WorkflowSubmitted (and, when rebuilding, its own WorkflowAdmitted / WorkflowRefused).
Emits: WorkflowAdmitted, or WorkflowRefused with the reason a user reads.
Decides: a workflow id is used once; a workflow stays within the size limits; a principal
stays within RATE_LIMIT_PER_HOUR. The rate window is folded from WorkflowAdmitted events,
so a restart does not reset it. (Issue "security" deepens this gate.)
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any, ClassVar

from actors._runtime import Actor
from actors._settings import Settings
from events import Event, WorkflowAdmitted, WorkflowRefused, WorkflowSubmitted, derive_id, now

__all__ = ["Security"]

WINDOW = timedelta(hours=1)
MAX_DESCRIPTION_CHARS = 100_000


class Security(Actor):
    name: ClassVar[str] = "security"
    subjects: ClassVar[tuple[str, ...]] = ("ymera.wf.*.submitted",)
    own_subjects: ClassVar[tuple[str, ...]] = ("ymera.wf.*.admitted", "ymera.wf.*.refused")
    state_fields: ClassVar[dict[str, Any]] = {
        "pending": dict[str, WorkflowSubmitted], "owner": dict[str, str],
        "admitted": dict[str, deque[datetime]], "decided": set[str]}

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pending: dict[str, WorkflowSubmitted] = {}  # submission id -> submission, until decided
        self.owner: dict[str, str] = {}  # workflow id -> the submission that holds it
        self.admitted: dict[str, deque[datetime]] = {}  # principal -> admission times in the window
        self.decided: set[str] = set()  # submission ids admitted or refused

    def apply(self, event: Event) -> None:
        if isinstance(event, WorkflowSubmitted):
            if event.id not in self.decided:
                self.pending.setdefault(event.id, event)
            self.owner.setdefault(event.workflow_id, event.id)
        elif isinstance(event, (WorkflowAdmitted, WorkflowRefused)) and event.causation_id is not None:
            if event.causation_id in self.decided:
                return  # our own decision, folded when made, now back from the stream
            self.decided.add(event.causation_id)
            self.pending.pop(event.causation_id, None)
            if isinstance(event, WorkflowAdmitted):
                times = self.admitted.setdefault(event.principal, deque())
                times.append(event.ts)
                while times and times[0] < event.ts - WINDOW:
                    times.popleft()

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, WorkflowSubmitted) and event.id in self.pending:
            return [self._decide(event, now())]
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return [self._decide(s, at) for s in list(self.pending.values())]

    def _decide(self, submission: WorkflowSubmitted, at: datetime) -> Event:
        reason = self.refusal(submission, at)
        common: dict[str, Any] = {
            "id": derive_id(submission.id, "admission"), "ts": at, "workflow_id": submission.workflow_id,
            "causation_id": submission.id, "actor": self.name, "principal": submission.principal}
        decision: Event = WorkflowRefused(**common, reason=reason) if reason else WorkflowAdmitted(**common)
        self.apply(decision)  # fold at once: the next submission sees this admission in the window
        return decision

    def refusal(self, submission: WorkflowSubmitted, at: datetime) -> str | None:
        """Why this submission may not run, or None."""
        holder = self.owner.get(submission.workflow_id)
        if holder is not None and holder != submission.id:
            return f"workflow id {submission.workflow_id} is already in use (submission {holder})"
        if not self.settings.enable_security_validation:
            return None
        limit = self.settings.max_tasks_per_workflow
        if len(submission.tasks) > limit:
            return f"workflow has {len(submission.tasks)} tasks, over the limit of {limit}"
        for task in submission.tasks:
            if len(task.description) > MAX_DESCRIPTION_CHARS:
                return (f"task {task.id}: description is {len(task.description)} characters, "
                        f"over the limit of {MAX_DESCRIPTION_CHARS}")
        recent = [t for t in self.admitted.get(submission.principal, ()) if t > at - WINDOW]
        if len(recent) >= self.settings.rate_limit_per_hour:
            return (f"principal {submission.principal} is over its rate limit of "
                    f"{self.settings.rate_limit_per_hour} workflows per hour")
        return None
