"""A person's rating of a task's result: `ymera feedback` and `WorkflowOrchestrator.record_feedback`.

The result is found in the event log: in the latest run of the task's workflow in which the
task ended (it succeeded, or it failed: a failure may be rated too, and its model is the one
the failed attempt asked for), or in the run named. What was rated (the model as
`<provider>/<name>`, from the attempt's last `LLMCalled`; the task type and agent, from the
submission) goes into the `FeedbackGiven`, so the performance tracker folds it without the
run's other events. Every rating is a new event with a new id: two ratings of one result are
two opinions, and both count.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import msgspec

import events
import llm
import store
from actors import Settings, client_access
from bus import open_bus
from events import (
    FeedbackGiven,
    LLMCalled,
    TaskFailed,
    TaskSucceeded,
    TaskTimedOut,
    WorkflowSubmitted,
    YmeraError,
    check_task_id,
    check_workflow_id,
    new_id,
    now,
    run_of,
)

from ._cli import _pick_run
from ._client import UNSHOWN

__all__ = ["RATING_RULE", "InvalidRating", "RatedResult", "add_feedback_command", "check_rating", "cmd_feedback",
           "feedback_given", "find_result"]

RATING_RULE = "a number from 0 (useless) to 1 (exactly right)"
_KEEP = UNSHOWN | {"LLMCalled.response"}  # what finding a result never reads
_ENDED = ("succeeded", "failed")


class InvalidRating(YmeraError, ValueError):
    """A rating that is not a number from 0 to 1 (a ValueError too, for Python callers)."""

    def __init__(self, value: object) -> None:
        super().__init__(f"rating {value} is not {RATING_RULE}")
        self.value = value


def check_rating(value: object) -> float:
    """`value` as a rating (a number, or its text), or `InvalidRating`."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRating(value) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InvalidRating(value)
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise InvalidRating(value)
    return number


class RatedResult(msgspec.Struct, frozen=True, kw_only=True):
    """One task's result in one run, and what produced it."""

    workflow_id: str
    run_id: str
    task_id: str
    attempt: int
    state: str  # succeeded or failed
    result_id: str | None  # the event that reported it: the feedback's cause
    task_type: str
    agent: str | None
    model: str | None  # "<provider>/<name>"; None for a task that called no model


async def find_result(log: store.SqliteEventLog, task_id: str, *, workflow_id: str | None = None,
                      run: str | None = None) -> RatedResult:
    """The result a rating of `task_id` is about: in `workflow_id` (else the one workflow whose
    runs have such a task), in the run `run` names (its id or a prefix of it; else the latest in
    which the task ended). A `YmeraError` saying what is missing or ambiguous."""
    check_task_id(task_id)
    where = f"the event log {log.path}"
    if workflow_id is None:
        workflow_id = await _workflow_of(log, task_id, run, where)
    else:
        check_workflow_id(workflow_id)
    found = await _fold_workflow(log, workflow_id, task_id)
    if not found.runs.of(workflow_id):
        raise YmeraError(f"no workflow {workflow_id} in {where}")
    if run is not None:
        chosen = _pick_run(found.runs, workflow_id, run)
        if task_id not in chosen.tasks:
            raise YmeraError(f"run {chosen.run_id} of workflow {workflow_id} has no task {task_id}")
    else:
        having = [r for r in found.runs.of(workflow_id) if task_id in r.tasks]
        if not having:
            raise YmeraError(f"workflow {workflow_id} has no task {task_id} in any run in {where}")
        chosen = next((r for r in reversed(having) if r.tasks[task_id].state in _ENDED), having[-1])
    task = chosen.tasks[task_id]
    if task.state not in _ENDED:
        raise YmeraError(f"task {task_id} of workflow {workflow_id} has no result to rate: in run {chosen.run_id} "
                         f"it is {task.state}")
    result = found.results.get((chosen.run_id, task.attempts))
    named = (result.model if isinstance(result, TaskSucceeded | TaskFailed) else None) or task.model
    task_type, agent = found.specs.get(chosen.run_id, ("", None))
    return RatedResult(workflow_id=workflow_id, run_id=chosen.run_id, task_id=task_id, attempt=task.attempts,
                       state=task.state, result_id=None if result is None else result.id, task_type=task_type,
                       agent=agent, model=llm.model_ref(named, found.calls.get((chosen.run_id, task.attempts))))


async def _workflow_of(log: store.SqliteEventLog, task_id: str, run: str | None, where: str) -> str:
    """The one workflow with a run that has task `task_id` (and whose id begins with `run`)."""
    runs: dict[str, list[str]] = {}  # workflow -> its runs that have the task, in the order submitted
    async for rows in log.scan("data", types=("WorkflowSubmitted",)):  # every submission: a full pass
        for (data,) in rows:
            submitted = await events.resolve(events.decode(data), log.get_blob)
            assert isinstance(submitted, WorkflowSubmitted)
            if any(t.id == task_id for t in submitted.tasks):
                runs.setdefault(submitted.workflow_id, []).append(submitted.id)
    if not runs:
        raise YmeraError(f"no task {task_id} in any run in {where}")
    named = sorted(runs)
    if run is not None and len(runs) > 1:
        named = sorted(w for w, ids in runs.items() if any(i.startswith(run) for i in ids))
        if not named:
            raise YmeraError(f"no run {run} has a task {task_id} (runs of workflows {', '.join(sorted(runs))} do)")
    if len(named) > 1:
        raise YmeraError(f"task {task_id} is in runs of {len(named)} workflows ({', '.join(named)}): "
                         "name the workflow")
    return named[0]


@dataclass
class _Found:
    runs: store.Runs
    specs: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # run -> the task's (type, agent)
    # (run, attempt) -> how it ended
    results: dict[tuple[str, int], TaskSucceeded | TaskFailed | TaskTimedOut] = field(default_factory=dict)
    calls: dict[tuple[str, int], str] = field(default_factory=dict)  # (run, attempt) -> its last call's model ref


async def _fold_workflow(log: store.SqliteEventLog, workflow_id: str, task_id: str) -> _Found:
    """The workflow's runs (`store.WorkflowRuns`, as `ymera status` folds them), and of the task
    its spec, each attempt's end and the model of each attempt's last call, run by run."""
    projection = store.WorkflowRuns()
    found = _Found(projection.initial())
    latest = ""  # the run an event that names none belongs to
    async for rows in log.scan("data", workflow_id=workflow_id):
        for (data,) in rows:
            event = await events.resolve(events.decode(data), log.get_blob, _KEEP)
            found.runs = projection.apply(found.runs, event)
            if isinstance(event, WorkflowSubmitted):
                latest = event.id
                spec = next((t for t in event.tasks if t.id == task_id), None)
                if spec is not None:
                    found.specs[event.id] = (spec.type, spec.agent)
                continue
            if getattr(event, "task_id", None) != task_id:
                continue
            run_id = run_of(event) or latest
            if isinstance(event, LLMCalled):
                found.calls[(run_id, event.attempt)] = f"{event.provider}/{event.model}"
            elif isinstance(event, TaskSucceeded | TaskFailed | TaskTimedOut):
                found.results[(run_id, event.attempt)] = event
    return found


def feedback_given(result: RatedResult, rating: float, comment: str, principal: str) -> FeedbackGiven:
    return FeedbackGiven(id=new_id(), ts=now(), workflow_id=result.workflow_id, run_id=result.run_id,
                         causation_id=result.result_id, task_id=result.task_id, rating=rating, comment=comment,
                         principal=principal, task_type=result.task_type, agent=result.agent, model=result.model)


# ---- the command -------------------------------------------------------------------------


def add_feedback_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    feedback = sub.add_parser("feedback", help="rate a task's result from 0 to 1: the latest run in which it "
                                               "ended, or the run named")
    feedback.add_argument("task_id", metavar="TASK")
    feedback.add_argument("--rating", required=True, metavar="R", help=RATING_RULE)
    feedback.add_argument("--comment", default="", metavar="TEXT")
    feedback.add_argument("--run", metavar="RUN", help="this run (its id, or a prefix of it) instead of the latest")
    feedback.add_argument("--workflow", metavar="WF", help="the task's workflow (needed when several have the task)")
    feedback.set_defaults(fn=cmd_feedback)


async def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    rating = check_rating(args.rating)
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        result = await find_result(log, args.task_id, workflow_id=args.workflow, run=args.run)
    async with open_bus(settings, "ymera-feedback", client_access(settings)) as connection:
        event = feedback_given(result, rating, args.comment, principal=connection.principal or "cli")
        await connection.publish(event)
    print(f"feedback {rating:g} on task {result.task_id} ({result.state}) of workflow {result.workflow_id} run "
          f"{result.run_id}, model {result.model or '-'}: event {event.id}")
    return 0
