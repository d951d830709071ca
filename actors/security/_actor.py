"""Security: the admission gate every submission passes before anything else looks at it.

Listens to: WorkflowSubmitted and the end of every run (WorkflowCompleted / Failed /
Cancelled / Invalid), and, when rebuilding, its own WorkflowAdmitted / WorkflowRefused.
Emits: WorkflowAdmitted, or WorkflowRefused with the reason a user reads; before it, an
InputFlagged with every attack shape the input sanitiser found in the tasks' text.
Decides: a workflow id has at most one active run: a submission under an id whose previous
run ended starts a new run, one under an id with an active run is refused, naming that run
(Temporal's default reuse policy); a workflow stays within the size limits; no task's text
holds a high or critical attack shape (SQL, shell or prompt injection, path traversal, XSS,
SSRF: `_inputs.py`); a principal stays within RATE_LIMIT_PER_HOUR. The rate window and the
active runs are folded from events, so a restart resets neither.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import (
    RUN_ENDS,
    Event,
    InputFlagged,
    WorkflowAdmitted,
    WorkflowRefused,
    WorkflowSubmitted,
    derive_id,
    now,
    run_of,
)
from store import Recent

from ._inputs import screen_tasks

__all__ = ["Security"]

WINDOW = timedelta(hours=1)
# What security reads of the events that end a run (so its workflow id may run again): all
# but a refusal, which is its own decision.
_ENDS_READ: tuple[type[Event], ...] = tuple(kind for kind in RUN_ENDS if kind is not WorkflowRefused)
MAX_DESCRIPTION_CHARS = 100_000
DECIDED_KEPT = 100_000  # as many as the once-gate's ids (store.Recent)


class Security(Actor):
    name: ClassVar[str] = "security"
    reads: ClassVar[tuple[type[Event], ...]] = (WorkflowSubmitted, *_ENDS_READ)
    own: ClassVar[tuple[type[Event], ...]] = (WorkflowAdmitted, WorkflowRefused)
    state_fields: ClassVar[dict[str, Any]] = {
        "pending": dict[str, WorkflowSubmitted], "active": dict[str, str], "ended_undecided": set[str],
        "admitted": dict[str, deque[datetime]], "decided": Recent}
    state_version: ClassVar[int] = 2  # 2: the decided submissions are the last DECIDED_KEPT

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pending: dict[str, WorkflowSubmitted] = {}  # submission id -> submission, until decided
        self.active: dict[str, str] = {}  # workflow id -> its admitted run that has not ended
        # Runs that ended before they were admitted (cancelled while security was down): their
        # admission, when it comes, must not make them active.
        self.ended_undecided: set[str] = set()
        self.admitted: dict[str, deque[datetime]] = {}  # principal -> admission times in the window
        # The last submission ids admitted or refused: bounded by a constant, not by history.
        self.decided = Recent(DECIDED_KEPT)

    def apply(self, event: Event) -> None:
        if isinstance(event, WorkflowSubmitted):
            if event.id not in self.decided:
                self.pending.setdefault(event.id, event)
        elif isinstance(event, _ENDS_READ):
            # An end without a run id predates runs: it ends the only run its workflow had.
            run = run_of(event)
            if event.workflow_id in self.active and run in ("", self.active[event.workflow_id]):
                del self.active[event.workflow_id]
            elif run in self.pending:
                self.ended_undecided.add(run)
        elif isinstance(event, (WorkflowAdmitted, WorkflowRefused)) and event.causation_id is not None:
            if event.causation_id in self.decided:
                return  # our own decision, folded when made, now back from the stream
            self.decided.add(event.causation_id)
            self.pending.pop(event.causation_id, None)
            if isinstance(event, WorkflowAdmitted):
                if event.causation_id in self.ended_undecided:
                    self.ended_undecided.discard(event.causation_id)
                else:
                    self.active[event.workflow_id] = event.causation_id
                times = self.admitted.setdefault(event.principal, deque())
                times.append(event.ts)
                while times and times[0] < event.ts - WINDOW:
                    times.popleft()

    async def react(self, event: Event) -> list[Event]:
        if isinstance(event, WorkflowSubmitted) and event.id in self.pending:
            return self._decide(event, now())
        return []

    async def reconcile(self, at: datetime) -> list[Event]:
        return [e for s in list(self.pending.values()) for e in self._decide(s, at)]

    def _decide(self, submission: WorkflowSubmitted, at: datetime) -> list[Event]:
        reason = self.refusal(submission, at)
        findings, unsafe = (screen_tasks(submission.tasks) if self.settings.enable_security_validation
                            else ([], None))
        reason = reason or unsafe
        common: dict[str, Any] = {
            "id": derive_id(submission.id, "admission", key=self.settings.id_key), "ts": at,
            "workflow_id": submission.workflow_id, "run_id": submission.id, "causation_id": submission.id,
            "actor": self.name, "principal": submission.principal}
        decision: Event = WorkflowRefused(**common, reason=reason) if reason else WorkflowAdmitted(**common)
        self.apply(decision)  # fold at once: the next submission sees this admission in the window
        if not findings:
            return [decision]
        flagged = InputFlagged(**{**common, "id": derive_id(submission.id, "input-flagged", key=self.settings.id_key)},
                               submission_id=submission.id, findings=findings, refused=reason == unsafe)
        return [flagged, decision]

    def refusal(self, submission: WorkflowSubmitted, at: datetime) -> str | None:
        """Why this submission may not run (but for what its text holds: `screen_tasks`), or None."""
        active = self.active.get(submission.workflow_id)
        if active is not None and active != submission.id:
            return (f"workflow {submission.workflow_id} already has an active run {active}; "
                    "wait for it to end or cancel it")
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
