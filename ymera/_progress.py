"""A run as a user reads it: its progress as events arrive (a live bar on a terminal, plain
lines otherwise), and its summary (the end of `ymera run`, and `ymera status`).

Both read the one projection of a run (`store.WorkflowRuns`), so what the progress shows,
what the summary says and what the Python API returns cannot disagree.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

from events import (
    CancelRefused,
    CancelRequested,
    CheckResult,
    Event,
    TaskAssessed,
    TaskFailed,
    TaskReady,
    TaskRetryScheduled,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    Verdict,
    WorkflowSubmitted,
    WorkflowValidated,
    run_of,
)
from store import Run, Runs, TaskRun, WorkflowRuns

from ._client import describe_problem

__all__ = ["Progress", "checks_line", "judged_line", "run_lines", "runs_table", "summary"]

_DONE = ("succeeded", "failed", "skipped", "cancelled")
_GIST_CHARS = 80  # of a check's reason, in its line


class Progress:
    """Folds one run's events (the first submission it is shown starts it) and reports each step."""

    def __init__(self, submission: WorkflowSubmitted | None, *, tty: bool, quiet: bool = False) -> None:
        self.projection = WorkflowRuns()
        self.runs: Runs = self.projection.initial()
        self.run_id = submission.id if submission is not None else None
        self.quiet = quiet
        # Whoever read the lines (`ymera run ... | head`) stopped reading: the run goes on to its
        # end unshown (its actors may be this process's), and the command then ends as SIGPIPE would.
        self.reader_gone = False
        self._bar: Any = None
        if tty and not quiet and submission is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=True)
            self._bar.start()
            self._bar_task = self._bar.add_task(submission.workflow_id, total=len(submission.tasks))

    @property
    def run(self) -> Run | None:
        return self.runs.runs.get(self.run_id) if self.run_id is not None else None

    def update(self, event: Event) -> None:
        if self.run_id is None and isinstance(event, WorkflowSubmitted):
            self.run_id = event.id
        if run_of(event) != self.run_id:
            return
        self.runs = self.projection.apply(self.runs, event)
        run = self.run
        if run is None:
            return
        line = _line(run, event)
        if self._bar is not None:
            done = sum(1 for t in run.tasks.values() if t.state in _DONE)
            self._bar.update(self._bar_task, completed=done, description=f"{run.workflow_id}: {run.state}")
        elif line is not None and not self.quiet:
            try:
                print(line, flush=True)
            except BrokenPipeError:
                self.reader_gone = self.quiet = True
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _line(run: Run, e: Event) -> str | None:
    """The line one event adds to the progress, read off the run it has just been folded into."""
    task_id = getattr(e, "task_id", "")
    task = run.tasks.get(task_id)
    if isinstance(e, WorkflowValidated):
        return (f"validated: {len(run.tasks)} tasks in {len(e.levels)} parallel groups, "
                f"estimated speedup {e.estimated_parallel_speedup:.2f}x")
    if isinstance(e, CancelRequested):
        return f"cancel requested: {run.cancel_requested}"
    if isinstance(e, CancelRefused):  # not the asker's run to cancel: it goes on
        return f"cancel refused: {e.reason}"
    if task is None or run.ended:
        return None
    if isinstance(e, TaskReady):
        return f"  {task_id}: released (attempt {e.attempt})"
    if isinstance(e, TaskStarted):  # it outlived its first heartbeat
        return f"  {task_id}: started (attempt {e.attempt}, {e.executor})"
    if isinstance(e, TaskSucceeded):
        if task.state != "succeeded" or e.attempt != task.attempts:
            return None  # a late result: not the task's
        return (f"  {task_id}: succeeded in {task.duration_ms or 0:.0f} ms" + (f" on {task.model}" if task.model
                                                                                else "")
                + (f"\n    {checks_line(e.checks)}" if e.checks else "")
                + (f"\n    {judged_line(e.judged, e.unjudged)}" if e.judged is not None or e.unjudged else "")
                # What no model wrote was scored in its attempt: no TaskAssessed follows.
                + (f"\n  {task_id}: quality {e.quality.overall:.2f}" if e.quality is not None else ""))
    if isinstance(e, TaskFailed | TaskTimedOut):
        what = f"failed ({e.kind}): {e.error}" if isinstance(e, TaskFailed) else f"timed out: {e.reason}"
        final = ", no attempts left" if task.state == "failed" else ""
        checks = f"\n    {checks_line(e.checks)}" if isinstance(e, TaskFailed) and e.checks else ""
        return f"  {task_id}: attempt {e.attempt} {what}{final}{checks}"
    if isinstance(e, TaskRetryScheduled):
        return f"  {task_id}: attempt {e.attempt} scheduled for {e.not_before:%H:%M:%S}"
    if isinstance(e, TaskSkipped):
        return f"  {task_id}: skipped, {e.reason}"
    if isinstance(e, TaskAssessed) and task.state == "succeeded":
        return f"  {task_id}: quality {e.overall:.2f}"
    return None


def summary(run: Run) -> str:
    """The run, task by task, with the reason of every failure, skip, refusal and cancel."""
    line = f"workflow {run.workflow_id}: {run.state}"
    if run.overall_quality is not None:
        line += f", overall quality {run.overall_quality:.2f}"
    if run.duration_ms is not None:
        line += f", {run.duration_ms / 1000:.2f}s"
    lines = [line, f"  run {run.run_id}"]
    if run.state == "invalid":
        return "\n".join(lines + [f"  {describe_problem(p.task_id, p.field, p.message)}" for p in run.problems])
    if run.reason is not None:
        lines.append(f"  {run.reason}")
    elif run.cancel_requested is not None:
        lines.append(f"  cancel requested: {run.cancel_requested}")
    if run.state != "refused":
        for task_id, task in run.tasks.items():
            lines += _task_lines(task_id, task)
    return "\n".join(lines)


def _task_lines(task_id: str, task: TaskRun) -> list[str]:
    line = f"  {task_id}: {task.state}"
    if task.attempts:
        line += f" (attempts {task.attempts})"
    details = [task.reason] if task.reason else []
    if task.quality is not None and task.state in ("succeeded", "failed"):
        details.append(f"quality {task.quality:.2f}")
    if details:
        # A reason reads after a comma: "failed (attempts 3), timed out after 0.3s".
        line += (", " if task.reason else " ") + "; ".join(details)
    checks = [f"    {checks_line(task.checks)}"] if task.checks else []
    # Earlier attempts' failures, where the task's own reason does not already say them.
    return [line, *checks] + [f"    attempt {f.attempt} failed: {f.reason}" for f in task.failures
                              if f.reason != task.reason]


def checks_line(checks: list[CheckResult]) -> str:
    """An attempt's outcome checks on one line, each passed (✓) or failed (✗) with the summary of
    its reason (the part before the first "; "): `checks: parses:python ✓, lint:ruff ✗ (2 findings: F401, F841)`."""
    return "checks: " + ", ".join(
        f"{c.check} {'✓' if c.passed else '✗'}" + (f" ({_gist(c.reason)})" if c.reason else "") for c in checks)


def judged_line(judged: Verdict | None, unjudged: str) -> str:
    """The judge's verdict on one line (docs/quality.md, "LLM judge"), or why there is none:
    `judged by openai/gpt-4o-mini: relevance 0.90, correctness 1.00, completeness 0.80 (It names Paris.)`."""
    if judged is None:
        return f"not judged: {_gist(unjudged)}"
    reason = f" ({_gist(judged.reasons[0])})" if judged.reasons else ""
    return (f"judged by {judged.model}: relevance {judged.relevance:.2f}, correctness {judged.correctness:.2f}, "
            f"completeness {judged.completeness:.2f}{reason}")


def _gist(reason: str) -> str:
    first = reason.split("; ", 1)[0]
    return first if len(first) <= _GIST_CHARS else first[: _GIST_CHARS - 1] + "…"


def run_lines(run: Run) -> str:
    """One line of `ymera runs`: run id, when it started, its state and how long it took."""
    return (f"{run.run_id:<36}  {_clock(run.submitted_at)}  {run.state:<9}  "
            f"{_duration(run.submitted_at, run.ended_at)}").rstrip()


def runs_table(runs: list[Run]) -> str:
    header = f"{'run':<36}  {'started (UTC)':<19}  {'state':<9}  duration"
    return "\n".join([header] + [run_lines(r) for r in runs])


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.2f}s" if end is not None else "-"
