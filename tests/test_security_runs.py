"""Security's fold of runs, fed events by hand: which run of a workflow id is active."""

from __future__ import annotations

from typing import Any

import events
from actors import Settings
from actors.security import Security


def _submission(workflow_id: str = "wf") -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id)


def _end(cls: type[events.Event], run: str, **fields: Any) -> events.Event:
    return cls(id=events.new_id(), ts=events.now(), workflow_id="wf", run_id=run, **fields)


async def test_an_id_is_refused_while_its_run_is_active_and_admitted_once_it_ended() -> None:
    security = Security(Settings())
    first, second, third = _submission(), _submission(), _submission()
    for submission in (first, second):
        security.apply(submission)
    [admitted] = await security.react(first)
    [refused] = await security.react(second)
    assert isinstance(admitted, events.WorkflowAdmitted)
    assert admitted.run_id == first.id
    assert isinstance(refused, events.WorkflowRefused)
    assert (refused.run_id, refused.reason) == (
        second.id, f"workflow wf already has an active run {first.id}; wait for it to end or cancel it")
    # The refused run's end is not the active run's.
    security.apply(_end(events.WorkflowInvalid, second.id))
    security.apply(_end(events.WorkflowFailed, first.id, reason="x"))
    security.apply(third)
    [again] = await security.react(third)
    assert isinstance(again, events.WorkflowAdmitted)


async def test_a_run_cancelled_before_its_admission_does_not_hold_its_id() -> None:
    security = Security(Settings())  # as rebuilt after being down: a submission, then its cancel
    early, later = _submission(), _submission()
    security.apply(early)
    security.apply(_end(events.WorkflowCancelled, early.id, reason="changed my mind"))
    [admitted] = await security.reconcile(events.now())
    assert isinstance(admitted, events.WorkflowAdmitted)
    security.apply(later)
    [decision] = await security.react(later)
    assert isinstance(decision, events.WorkflowAdmitted)
