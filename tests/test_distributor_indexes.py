"""The distributor decides from indexes over each workflow's tasks (by status, ready, unscored),
not from a scan of every task: what it decides through retries, timeouts, skips, late results
and a capped workflow, and that the indexes stay true (against a scan) after every step and
through a snapshot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import msgspec

import events
from actors.distributor import Distributor, DistributorState
from config import Settings

from .engine import assert_indexes_true

E = TypeVar("E", bound=events.EventBase)


class Run:
    """One run fed to a distributor by hand, its indexes checked after every step."""

    def __init__(self, *tasks: events.TaskSpec, **submitted: Any) -> None:
        self.distributor = Distributor(Settings())
        self.sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-i",
                                            tasks=list(tasks), **submitted)

    def common(self) -> dict[str, Any]:
        return {"id": events.new_id(), "ts": events.now(), "workflow_id": "wf-i", "run_id": self.sub.id}

    async def feed(self, *given: events.Event) -> list[events.Event]:
        decided = await self.distributor.handle(list(given))
        assert_indexes_true(self.distributor.state)
        return decided

    async def tick(self, after: float) -> list[events.Event]:
        decided = await self.distributor.reconcile(events.now() + timedelta(seconds=after))
        assert_indexes_true(self.distributor.state)
        return decided

    async def succeed(self, task: str, attempt: int, quality: float | None = 0.9) -> list[events.Event]:
        scored = None if quality is None else events.Quality(
            task_type="echo", agent="echo", accuracy=quality, completeness=quality, consistency=quality,
            efficiency=quality, maintainability=quality, overall=quality)
        return await self.feed(events.TaskSucceeded(**self.common(), task_id=task, attempt=attempt, output=task,
                                                    quality=scored))

    async def fail(self, task: str, attempt: int, retryable: bool = True) -> list[events.Event]:
        return await self.feed(events.TaskFailed(**self.common(), task_id=task, attempt=attempt, error="boom",
                                                 retryable=retryable))

    async def assess(self, task: str, attempt: int, overall: float) -> list[events.Event]:
        return await self.feed(events.TaskAssessed(
            **self.common(), task_id=task, attempt=attempt, accuracy=overall, completeness=overall,
            consistency=overall, efficiency=overall, maintainability=overall, overall=overall))


def only(decided: list[events.Event], kind: type[E]) -> list[E]:
    return [e for e in decided if isinstance(e, kind)]


def released(decided: list[events.Event]) -> list[tuple[str, int]]:
    return [(e.task_id, e.attempt) for e in only(decided, events.TaskReady)]


def task(id: str, *deps: str, **fields: Any) -> events.TaskSpec:
    return events.TaskSpec(id=id, type="echo", dependencies=list(deps), **fields)


async def test_a_capped_workflow_releases_in_order_retries_and_ends_once_every_task_settled() -> None:
    run = Run(task("a"), task("b", priority="HIGH"), task("c"), task("d", "a", "b", "c"), max_parallel_tasks=2)
    assert released(await run.feed(run.sub, events.WorkflowValidated(**run.common()))) == [("b", 1), ("a", 1)]
    assert released(await run.succeed("a", 1)) == [("c", 1)]  # a slot freed: the next ready task
    [retry] = only(await run.fail("b", 1), events.TaskRetryScheduled)
    assert (retry.task_id, retry.attempt) == ("b", 2)
    assert released(await run.tick(after=0)) == []  # not due yet
    assert released(await run.tick(after=61)) == [("b", 2)]  # past the longest backoff
    assert released(await run.succeed("c", 1)) == []  # d still waits for b
    decided = await run.succeed("b", 2)
    assert released(decided) == [("d", 1)]
    [end] = only(await run.succeed("d", 1), events.WorkflowCompleted)
    assert [(r.task_id, r.status, r.attempts) for r in end.results] == [
        ("a", "succeeded", 1), ("b", "succeeded", 2), ("c", "succeeded", 1), ("d", "succeeded", 1)]
    assert run.distributor.state.workflows == {}


async def test_a_timeout_is_decided_from_the_release_s_own_limit_and_a_late_result_is_not_taken() -> None:
    run = Run(task("slow", timeout_seconds=2), task("next", "slow"))
    [ready] = only(await run.feed(run.sub, events.WorkflowValidated(**run.common())), events.TaskReady)
    assert ready.timeout_seconds == 2
    assert await run.tick(after=6) == []  # within the limit and its 5 s of grace
    [timed_out] = only(await run.tick(after=8), events.TaskTimedOut)
    assert (timed_out.task_id, timed_out.attempt, timed_out.reason) == (
        "slow", 1, "no result within the 2s time limit")
    assert only(await run.tick(after=9), events.TaskTimedOut) == []  # decided once, until read back
    [retry] = only(await run.feed(timed_out), events.TaskRetryScheduled)
    assert retry.attempt == 2
    assert released(await run.succeed("slow", 1)) == []  # the timed-out attempt's late result
    wf = run.distributor.state.workflows[run.sub.id]
    assert wf.tasks["slow"].late == [1]
    assert released(await run.tick(after=70)) == [("slow", 2)]
    assert released(await run.succeed("slow", 2)) == [("next", 1)]


async def test_a_task_failed_for_good_skips_what_depends_on_it_and_the_run_fails() -> None:
    run = Run(task("a"), task("b", "a"), task("c", "b"), task("free"))
    assert released(await run.feed(run.sub, events.WorkflowValidated(**run.common()))) == [("a", 1), ("free", 1)]
    decided = await run.fail("a", 1, retryable=False)
    assert [(e.task_id, e.reason) for e in only(decided, events.TaskSkipped)] == [
        ("b", "dependency a did not succeed"), ("c", "dependency b did not succeed")]
    assert only(decided, events.WorkflowFailed) == []  # free is still running
    [end] = only(await run.succeed("free", 1), events.WorkflowFailed)
    assert end.reason == "task a failed: boom"


async def test_a_success_without_its_score_ends_the_run_only_once_scored_and_only_by_its_own_attempt() -> None:
    run = Run(task("a", timeout_seconds=1))
    await run.feed(run.sub, events.WorkflowValidated(**run.common()))
    [timed_out] = only(await run.tick(after=7), events.TaskTimedOut)
    await run.feed(timed_out)
    assert released(await run.tick(after=70)) == [("a", 2)]
    assert await run.succeed("a", 2, quality=None) == []  # waits for the assessor's score
    # The late first attempt's score is not the task's: the run still waits.
    assert await run.assess("a", 1, 0.1) == []
    [end] = only(await run.assess("a", 2, 0.8), events.WorkflowCompleted)
    assert end.overall_quality == 0.8


async def test_the_indexes_survive_a_snapshot_and_decide_the_same() -> None:
    run = Run(task("a"), task("b"), task("c", "a", "b"), max_parallel_tasks=1)
    await run.feed(run.sub, events.WorkflowValidated(**run.common()))
    await run.fail("a", 1)
    copy = msgspec.msgpack.decode(msgspec.msgpack.encode(run.distributor.state), type=DistributorState)
    assert copy == run.distributor.state
    assert_indexes_true(copy)
    again = Distributor(Settings())
    again.state = copy
    at = events.now() + timedelta(seconds=61)
    assert ([(type(e).__name__, e.id) for e in await again.reconcile(at)]
            == [(type(e).__name__, e.id) for e in await run.distributor.reconcile(at)])
