"""Progress of one workflow as its events arrive: a live bar on a terminal, plain lines otherwise."""

from __future__ import annotations

from typing import Any

from events import (
    Event,
    TaskAssessed,
    TaskFailed,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowAdmitted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowSubmitted,
    WorkflowValidated,
)

from ._client import END_STATUS

__all__ = ["Progress"]


class Progress:
    def __init__(self, submission: WorkflowSubmitted | None, *, tty: bool, quiet: bool = False) -> None:
        self.tasks: dict[str, str] = {t.id: "waiting" for t in submission.tasks} if submission else {}
        self.attempts: dict[str, int] = {}
        self.workflow = "submitted"
        self.quiet = quiet
        self._bar: Any = None
        if tty and not quiet and submission is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=True)
            self._bar.start()
            self._bar_task = self._bar.add_task(submission.workflow_id, total=len(submission.tasks))

    def update(self, event: Event) -> None:
        line = self._fold(event)
        if self._bar is not None:
            done = sum(1 for s in self.tasks.values() if s in ("succeeded", "failed", "skipped"))
            self._bar.update(self._bar_task, completed=done, description=f"{event.workflow_id}: {self.workflow}")
        elif line is not None and not self.quiet:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _fold(self, e: Event) -> str | None:
        task = getattr(e, "task_id", "")
        if isinstance(e, WorkflowSubmitted):
            self.tasks = {t.id: "waiting" for t in e.tasks}
            return None
        if isinstance(e, WorkflowAdmitted):
            self.workflow = "admitted"
            return None
        if isinstance(e, WorkflowValidated):
            self.workflow = "running"
            return (f"validated: {len(self.tasks)} tasks in {len(e.levels)} parallel groups, "
                    f"estimated speedup {e.estimated_parallel_speedup:.2f}x")
        if isinstance(e, TaskReady):
            self.tasks[task], self.attempts[task] = "ready", e.attempt
            return None
        if isinstance(e, TaskStarted):
            self.tasks[task] = "running"
            return f"  {task}: started (attempt {e.attempt}, {e.executor})"
        if isinstance(e, TaskSucceeded):
            self.tasks[task] = "succeeded"
            return f"  {task}: succeeded in {e.duration_ms:.0f} ms" + (f" on {e.model}" if e.model else "")
        if isinstance(e, TaskFailed):
            self.tasks[task] = "attempt failed"
            return f"  {task}: attempt {e.attempt} failed ({e.kind}): {e.error}"
        if isinstance(e, TaskTimedOut):
            self.tasks[task] = "attempt failed"
            return f"  {task}: attempt {e.attempt} timed out: {e.reason}"
        if isinstance(e, TaskRetryScheduled):
            self.tasks[task] = "retry scheduled"
            return f"  {task}: attempt {e.attempt} scheduled for {e.not_before:%H:%M:%S}"
        if isinstance(e, TaskSkipped):
            self.tasks[task] = "skipped"
            return f"  {task}: skipped, {e.reason}"
        if isinstance(e, TaskAssessed):
            return f"  {task}: quality {e.overall:.2f}"
        if type(e) in END_STATUS:
            self.workflow = END_STATUS[type(e)]
            if isinstance(e, (WorkflowCompleted, WorkflowFailed)):
                for r in e.results:
                    self.tasks[r.task_id] = r.status
        return None

    def summary(self, workflow_id: str) -> str:
        lines = [f"workflow {workflow_id}: {self.workflow}"]
        lines += [f"  {task}: {status}" + (f" (attempt {self.attempts[task]})" if task in self.attempts else "")
                  for task, status in self.tasks.items()]
        return "\n".join(lines)
