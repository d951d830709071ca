"""The projection of a workflow's runs, folded from hand-built events: each run's state, each
task's state and attempts, and the reason of every failure, skip, refusal and cancel."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import events
import store
from ymera._client import END_STATUS, result_of
from ymera._progress import Progress, summary

WF = "wf"


class Script:
    """Builds the events of runs of one workflow, as the actors would emit them."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []

    def add(self, cls: type[events.Event], run: str, **fields: Any) -> events.Event:
        event = cls(id=events.new_id(), ts=events.now(), workflow_id=WF, run_id=run, **fields)
        self.events.append(event)
        return event

    def submit(self, *task_ids: str, deps: dict[str, list[str]] | None = None, max_attempts: int = 3) -> str:
        tasks = [events.TaskSpec(id=t, type="noop", dependencies=(deps or {}).get(t, []),
                                 retry=events.RetryPolicy(max_attempts=max_attempts)) for t in task_ids]
        submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=WF, tasks=tasks)
        self.events.append(submission)
        return submission.id

    def start(self, run: str, *task_ids: str) -> None:
        self.add(events.WorkflowAdmitted, run, principal="p", causation_id=run)
        self.add(events.WorkflowValidated, run, levels=[list(task_ids)])
        for t in task_ids:
            self.add(events.TaskReady, run, task_id=t, attempt=1)
            self.add(events.TaskStarted, run, task_id=t, attempt=1, executor="ex")

    def succeed(self, run: str, task: str, attempt: int = 1) -> None:
        self.add(events.TaskSucceeded, run, task_id=task, attempt=attempt, output="out", duration_ms=12.0)
        self.add(events.TaskAssessed, run, task_id=task, attempt=attempt, accuracy=0.8, completeness=0.8,
                 consistency=0.8, efficiency=0.8, maintainability=0.8, overall=0.76)

    def fold(self) -> store.Runs:
        projection = store.WorkflowRuns()
        state = projection.initial()
        for event in self.events:
            state = projection.apply(state, event)
        return state


def test_a_stray_malformed_message_on_a_workflow_subject_changes_nothing() -> None:
    script = Script()
    run = script.submit("a")
    script.start(run, "a")
    before = msgspec.json.encode(script.fold())
    script.events.append(events.MessageRejected(
        id=events.new_id(), ts=events.now(), workflow_id=WF, subject=f"ymera.wf.{WF}.submitted",
        reason="not valid JSON", excerpt="{", size=1))
    assert msgspec.json.encode(script.fold()) == before
    assert events.MessageRejected not in END_STATUS


def test_a_refused_second_submission_leaves_the_active_run_as_it_is() -> None:
    script = Script()
    first = script.submit("a")
    script.start(first, "a")
    second = script.submit("a")
    reason = f"workflow {WF} already has an active run {first}; wait for it to end or cancel it"
    script.add(events.WorkflowRefused, second, principal="p", reason=reason, causation_id=second)
    runs = script.fold()
    assert [(r.run_id, r.state) for r in runs.of(WF)] == [(first, "running"), (second, "refused")]
    assert runs.runs[second].reason == reason
    latest, active = runs.latest(WF), runs.active(WF)
    assert latest is not None
    assert active is not None
    assert (latest.run_id, active.run_id) == (first, first)
    assert latest.tasks["a"].state == "running"


def test_a_cancelled_run_shows_released_tasks_cancelled_and_the_rest_skipped() -> None:
    script = Script()
    run = script.submit("a", "b", deps={"b": ["a"]})
    script.start(run, "a")
    script.add(events.CancelRequested, run, reason="too slow")
    script.add(events.WorkflowCancelled, run, reason="too slow")
    # The executor reports the attempt it cancelled after the run ended: it changes nothing.
    script.add(events.TaskFailed, run, task_id="a", attempt=1, error="the workflow was cancelled", kind="cancelled")
    result = script.fold().runs[run]
    assert (result.state, result.reason) == ("cancelled", "too slow")
    a, b = result.tasks["a"], result.tasks["b"]
    assert (a.state, a.attempts, a.reason, a.failures) == ("cancelled", 1, "the workflow was cancelled: too slow", [])
    assert (b.state, b.attempts, b.reason) == ("skipped", 0, "not run: the workflow was cancelled: too slow")


def test_a_failed_outcome_check_fails_the_task_with_its_reason_in_progress_summary_and_result(
        capsys: pytest.CaptureFixture[str]) -> None:
    script = Script()
    run = script.submit("a", max_attempts=1)
    script.start(run, "a")
    # The executor checks the output: one that fails the task's `expect` is a failed attempt.
    reason = "outcome check failed: contains: expected the output to contain 'bye'"
    script.add(events.TaskFailed, run, task_id="a", attempt=1, error=reason, kind="outcome", duration_ms=12.0)
    end = script.add(events.WorkflowFailed, run, reason=f"task a failed: {reason}",
                     results=[events.TaskResult(task_id="a", status="failed", attempts=1, error=reason)])
    progress = Progress(None, tty=False)
    for event in script.events:
        progress.update(event)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["validated: 1 tasks in 1 parallel groups, estimated speedup 1.00x",
                     "  a: released (attempt 1)", "  a: started (attempt 1, ex)",
                     f"  a: attempt 1 failed (outcome): {reason}, no attempts left"]
    assert progress.run is not None
    assert summary(progress.run).splitlines()[2:] == [f"  task a failed: {reason}",
                                                      f"  a: failed (attempts 1), {reason}"]
    result = result_of(end, script.events)
    assert (result["status"], result["run_id"], result["error"]) == ("failed", run, f"task a failed: {reason}")
    assert result["results"]["a"] == {"task_id": "a", "status": "failed", "attempts": 1, "quality": None,
                                      "error": reason, "duration_ms": None, "model": None, "cost_usd": None}


def test_every_failed_attempt_keeps_its_reason_and_the_last_one_is_final() -> None:
    script = Script()
    run = script.submit("a", max_attempts=2)
    script.start(run, "a")
    script.add(events.TaskFailed, run, task_id="a", attempt=1, error="server error 500", kind="server_error")
    runs = script.fold()
    assert (runs.runs[run].tasks["a"].state, runs.runs[run].tasks["a"].reason) == ("retrying", None)
    script.add(events.TaskRetryScheduled, run, task_id="a", attempt=2, not_before=events.now(), reason="x")
    script.add(events.TaskReady, run, task_id="a", attempt=2)
    script.add(events.TaskTimedOut, run, task_id="a", attempt=1, reason="late report of attempt 1")
    script.add(events.TaskTimedOut, run, task_id="a", attempt=2, reason="executor lost: no heartbeat for 15s")
    task = script.fold().runs[run].tasks["a"]
    assert (task.state, task.attempts, task.reason) == ("failed", 2, "executor lost: no heartbeat for 15s")
    assert [(f.attempt, f.reason) for f in task.failures] == [(1, "server error 500"),
                                                              (2, "executor lost: no heartbeat for 15s")]


def test_an_event_that_names_no_run_belongs_to_the_latest_run_of_its_workflow() -> None:
    script = Script()
    old = script.submit("a")
    script.add(events.WorkflowCompleted, old)
    latest = script.submit("a")
    script.add(events.CancelRequested, "", reason="stop")  # a client that names only the workflow
    runs = script.fold()
    assert runs.runs[latest].cancel_requested == "stop"
    assert runs.runs[old].cancel_requested is None
    statuses = store.WorkflowStatus()
    folded = statuses.initial()
    for event in script.events:
        folded = statuses.apply(folded, event)
    assert folded == {WF: {old: "completed", latest: "submitted"}}


def test_a_success_scored_in_its_attempt_gives_its_task_its_quality_and_a_late_one_does_not(
        capsys: pytest.CaptureFixture[str]) -> None:
    script = Script()
    run = script.submit("a", max_attempts=2)
    script.start(run, "a")

    def carried(overall: float) -> events.Quality:
        return events.Quality(task_type="noop", accuracy=1.0, completeness=1.0, consistency=1.0, efficiency=overall,
                              maintainability=1.0, overall=overall)

    script.add(events.TaskTimedOut, run, task_id="a", attempt=1, reason="past its 1 s")
    script.add(events.TaskReady, run, task_id="a", attempt=2)
    script.add(events.TaskSucceeded, run, task_id="a", attempt=2, duration_ms=3.0, quality=carried(0.95))
    script.add(events.TaskSucceeded, run, task_id="a", attempt=1, duration_ms=900.0, quality=carried(0.2))  # late
    task = script.fold().runs[run].tasks["a"]
    assert (task.state, task.attempts, task.quality) == ("succeeded", 2, 0.95)
    progress = Progress(None, tty=False)
    for event in script.events:
        progress.update(event)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["  a: succeeded in 3 ms", "  a: quality 0.95"]
