"""Quality re-runs, tried models and replays as the distributor and the assessor decide them.

A model task of a workflow with `rerun_below_quality` releases its dependents only once it is
scored; below the threshold its result is kept aside and it is re-run once on a stronger
model, and the better of the two is its result. The distributor is fed events directly (its
decisions are a fold and a pure function of it); one test runs the whole engine in this
process against a real nats-server and a local OpenAI-format server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

import bus
import events
import store
from actors import Settings, load_settings
from actors._snapshot import _restore, encode_snapshot
from actors.assessor import Assessor
from actors.distributor import Distributor, DistributorState
from ymera import WorkflowClient
from ymera._file import read_workflow

from .engine import all_events, assert_indexes_true, in_process
from .llm_server import OpenAIServer

E = TypeVar("E", bound=events.EventBase)
WEAK, STRONG = "openai/gpt-4o-mini", "openai/gpt-4o"
REASON = f"quality 0.42 of attempt 1 ({WEAK}) is below 0.7: re-run once on a stronger model"


def llm_task(id: str = "a", **fields: Any) -> events.TaskSpec:
    return events.TaskSpec(id=id, type="llm", parameters={"prompt": "say something"}, **fields)


def uses(dep: str, id: str = "b") -> events.TaskSpec:
    return events.TaskSpec(id=id, type="echo", dependencies=[dep])


class Run:
    """One run fed to a distributor by hand: each step folds events and returns what it decided."""

    def __init__(self, *tasks: events.TaskSpec, **submitted: Any) -> None:
        self.distributor = Distributor(Settings())
        self.sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-q",
                                            tasks=list(tasks), **submitted)
        self.stream: list[events.Event] = []  # every event, in stream order, the distributor's own included

    def common(self) -> dict[str, Any]:
        return {"id": events.new_id(), "ts": events.now(), "workflow_id": "wf-q", "run_id": self.sub.id}

    async def feed(self, *given: events.Event) -> list[events.Event]:
        self.stream.extend(given)
        decided = await self.distributor.handle(list(given))
        self.stream.extend(decided)
        assert_indexes_true(self.state)
        return decided

    async def start(self) -> list[events.Event]:
        return await self.feed(self.sub, events.WorkflowValidated(**self.common()))

    async def tick(self, after: float = 0.0) -> list[events.Event]:
        """A timer pass (retries due, timeouts) `after` seconds from now."""
        decided = await self.distributor.reconcile(events.now() + timedelta(seconds=after))
        self.stream.extend(decided)
        assert_indexes_true(self.state)
        return decided

    async def succeed(self, task: str, attempt: int, output: Any, model: str | None = None,
                      cost: float | None = None) -> list[events.Event]:
        return await self.feed(events.TaskSucceeded(**self.common(), task_id=task, attempt=attempt, output=output,
                                                    model=model, cost_usd=cost, duration_ms=10.0))

    async def fail(self, task: str, attempt: int, model: str | None = None,
                   retryable: bool = True) -> list[events.Event]:
        return await self.feed(events.TaskFailed(**self.common(), task_id=task, attempt=attempt, error="boom",
                                                 retryable=retryable, model=model))

    async def assess(self, task: str, attempt: int, overall: float) -> list[events.Event]:
        return await self.feed(events.TaskAssessed(
            **self.common(), task_id=task, attempt=attempt, accuracy=overall, completeness=overall,
            consistency=overall, efficiency=overall, maintainability=overall, overall=overall))

    @property
    def state(self) -> DistributorState:
        return self.distributor.state


def only(decided: list[events.Event], kind: type[E]) -> list[E]:
    return [e for e in decided if isinstance(e, kind)]


def end_of(decided: list[events.Event]) -> events.WorkflowCompleted:
    [end] = only(decided, events.WorkflowCompleted)
    return end


async def scored_low_once(run: Run) -> events.TaskReady:
    """Attempt 1 of `a` succeeds on the weak model and scores 0.42: its re-run is released."""
    [first] = only(await run.start(), events.TaskReady)
    assert (first.task_id, first.attempt, first.tried_models, first.upgrade) == ("a", 1, [], None)
    assert await run.succeed("a", 1, "weak answer", WEAK, cost=0.01) == []  # `b` waits for the score
    [scheduled] = only(await run.assess("a", 1, 0.42), events.TaskRetryScheduled)
    assert (scheduled.attempt, scheduled.reason) == (2, REASON)
    assert scheduled.not_before == run.stream[-2].ts  # due at once: from the score
    [rerun] = only(await run.tick(), events.TaskReady)
    assert (rerun.task_id, rerun.attempt, rerun.tried_models, rerun.upgrade) == ("a", 2, [WEAK], REASON)
    return rerun


async def test_a_model_task_scored_below_the_threshold_is_re_run_once_and_the_better_result_stands() -> None:
    run = Run(llm_task(), uses("a"), rerun_below_quality=0.7)
    await scored_low_once(run)
    assert await run.succeed("a", 2, "strong answer", STRONG, cost=0.05) == []
    [released] = only(await run.assess("a", 2, 0.9), events.TaskReady)
    assert (released.task_id, released.inputs, released.upgrade) == ("b", {"a": "strong answer"}, None)
    await run.succeed("b", 1, "strong answer")
    end = end_of(await run.assess("b", 1, 1.0))
    [a, _] = end.results
    assert (a.status, a.attempts, a.quality, a.model, a.cost_usd) == ("succeeded", 2, 0.9, STRONG, 0.05)
    assert len(only(run.stream, events.TaskRetryScheduled)) == 1


@pytest.mark.parametrize(("rerun_quality", "output", "quality", "model"), [
    (0.3, "weak answer", 0.42, WEAK),  # worse: the kept result stands
    (0.42, "strong answer", 0.42, STRONG),  # a tie: the re-run's
])
async def test_a_re_run_that_also_scores_low_is_not_re_run_again_and_the_better_result_stands(
        rerun_quality: float, output: str, quality: float, model: str) -> None:
    run = Run(llm_task(), uses("a"), rerun_below_quality=0.7)
    await scored_low_once(run)
    await run.succeed("a", 2, "strong answer", STRONG)
    [released] = only(await run.assess("a", 2, rerun_quality), events.TaskReady)
    assert released.inputs == {"a": output}
    assert await run.tick(after=60) == []  # nothing else is due
    await run.succeed("b", 1, output)
    [a, _] = end_of(await run.assess("b", 1, 1.0)).results
    assert (a.quality, a.model, a.attempts) == (quality, model, 2)
    assert len(only(run.stream, events.TaskRetryScheduled)) == 1


async def test_the_kept_result_stands_when_the_re_run_fails_and_has_no_attempt_left() -> None:
    # max_attempts 1 still gets its re-run, which has no retry of its own.
    run = Run(llm_task(retry=events.RetryPolicy(max_attempts=1)), uses("a"), rerun_below_quality=0.7)
    await scored_low_once(run)
    [released] = only(await run.fail("a", 2, STRONG), events.TaskReady)
    assert (released.task_id, released.inputs) == ("b", {"a": "weak answer"})
    await run.succeed("b", 1, "weak answer")
    [a, _] = end_of(await run.assess("b", 1, 1.0)).results
    assert (a.status, a.quality, a.model, a.cost_usd, a.error) == ("succeeded", 0.42, WEAK, 0.01, None)


async def test_a_failed_re_run_is_retried_under_the_policy_counted_from_it_then_the_kept_result_stands() -> None:
    run = Run(llm_task(retry=events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.01)), uses("a"),
              rerun_below_quality=0.7)
    await scored_low_once(run)
    [retry] = only(await run.fail("a", 2, STRONG), events.TaskRetryScheduled)
    assert (retry.attempt, retry.reason) == (3, "boom")
    [ready] = only(await run.tick(after=1), events.TaskReady)
    assert (ready.attempt, ready.tried_models, ready.upgrade) == (3, [WEAK, STRONG], REASON)
    # No result: it times out, and the policy (2 attempts from the re-run) is spent.
    decided = await run.tick(after=Settings().task_timeout_seconds + 60)
    [timed_out] = only(decided, events.TaskTimedOut)
    assert only(decided, events.TaskReady) == []  # a timeout takes effect when read back
    [released] = only(await run.feed(timed_out), events.TaskReady)
    assert (released.task_id, released.inputs) == ("b", {"a": "weak answer"})


async def test_the_run_does_not_end_before_a_last_task_s_re_run_is_settled() -> None:
    run = Run(llm_task(), rerun_below_quality=0.7)
    await scored_low_once(run)
    assert only(run.stream, events.WorkflowCompleted) == []
    assert await run.succeed("a", 2, "strong answer", STRONG) == []  # not scored yet
    [a] = end_of(await run.assess("a", 2, 0.8)).results
    assert (a.quality, a.model) == (0.8, STRONG)


async def test_a_workflow_without_the_field_never_re_runs_and_releases_on_the_success() -> None:
    run = Run(llm_task(), uses("a"))
    await run.start()
    [released] = only(await run.succeed("a", 1, "weak answer", WEAK), events.TaskReady)
    assert (released.task_id, released.inputs) == ("b", {"a": "weak answer"})
    assert await run.assess("a", 1, 0.1) == []
    await run.succeed("b", 1, "weak answer")
    [a, _] = end_of(await run.assess("b", 1, 1.0)).results
    assert (a.quality, a.attempts) == (0.1, 1)
    assert only(run.stream, events.TaskRetryScheduled) == []


async def test_a_task_that_calls_no_model_is_neither_held_nor_re_run() -> None:
    run = Run(events.TaskSpec(id="a", type="echo", parameters={"text": "x"}), uses("a"), rerun_below_quality=0.7)
    await run.start()
    [released] = only(await run.succeed("a", 1, "x"), events.TaskReady)
    assert released.task_id == "b"
    assert await run.assess("a", 1, 0.1) == []


async def test_every_release_carries_the_models_of_the_attempts_that_ended_before_it() -> None:
    run = Run(llm_task(retry=events.RetryPolicy(max_attempts=4, initial_delay_seconds=0.01)))
    await run.start()
    await run.fail("a", 1, "m1")
    [second] = only(await run.tick(after=1), events.TaskReady)
    await run.fail("a", 2)  # it failed before asking a model: none to name
    [third] = only(await run.tick(after=1), events.TaskReady)
    await run.feed(events.TaskTimedOut(**run.common(), task_id="a", attempt=3, reason="executor lost"))
    [fourth] = only(await run.tick(after=1), events.TaskReady)
    assert [(r.attempt, r.tried_models, r.upgrade) for r in (second, third, fourth)] == [
        (2, ["m1"], None), (3, ["m1"], None), (4, ["m1"], None)]


async def test_a_replay_answers_every_task_from_the_recorded_run_but_its_live_ones() -> None:
    run = Run(llm_task(), llm_task("b"), llm_task("c", dependencies=["a"]), replay_of="run-0", live_tasks=["b"])
    released = await run.start()
    released += await run.succeed("a", 1, "x", WEAK)
    assert {(r.task_id, r.replay_of) for r in only(released, events.TaskReady)} == {
        ("a", "run-0"), ("b", None), ("c", "run-0")}


async def test_a_restarted_distributor_folds_the_same_state_and_decides_the_same_ids() -> None:
    run = Run(llm_task(retry=events.RetryPolicy(max_attempts=1)), uses("a"), rerun_below_quality=0.7)
    await scored_low_once(run)
    restarted = Distributor(Settings())
    for event in run.stream:
        restarted.apply(event)
    assert restarted.state == run.state
    snapshot = Distributor(Settings())
    _restore(snapshot, encode_snapshot(run.distributor, len(run.stream), "created"), "created")
    assert snapshot.state == run.state
    # Both go on as the live one does; re-deciding the re-run's end gives the same ids.
    failed = events.TaskFailed(**run.common(), task_id="a", attempt=2, error="boom", retryable=False)
    decided = [await actor.handle([failed]) for actor in (run.distributor, restarted, snapshot)]
    assert [[(type(e).__name__, e.id) for e in d] for d in decided] == [
        [("TaskReady", events.derive_id(run.sub.id, "TaskReady", "b", 1))]] * 3


# ---- the assessor ---------------------------------------------------------------------------


async def test_the_assessor_scores_the_re_run_too_under_an_id_that_names_its_attempt() -> None:
    spec = events.TaskSpec(id="a", type="code_review", agent="reviewer", description="Review it.")
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-q", tasks=[spec])
    common: dict[str, Any] = {"ts": events.now(), "workflow_id": "wf-q", "run_id": sub.id}

    def success(attempt: int, model: str) -> events.TaskSucceeded:
        return events.TaskSucceeded(id=events.derive_id(sub.id, "TaskSucceeded", "a", attempt), **common,
                                    task_id="a", attempt=attempt, output="Looks fine.", model=model)

    assessor = Assessor(Settings())
    seen: list[events.Event] = [sub, success(1, WEAK)]
    for event in seen:
        assessor.apply(event)
    first = await assessor.react(seen[-1])
    seen += first
    assert await assessor.react(seen[1]) == []  # a copy of the same success is not scored again
    seen.append(success(2, STRONG))
    assessor.apply(seen[-1])
    second = await assessor.react(seen[-1])
    seen += second
    scored = only([*first, *second], events.TaskAssessed)
    assert [(e.id, e.attempt, e.task_type, e.agent, e.model) for e in scored] == [
        (events.derive_id(sub.id, "TaskAssessed", "a"), 1, "code_review", "reviewer", WEAK),
        (events.derive_id(sub.id, "TaskAssessed", "a", 2), 2, "code_review", "reviewer", STRONG)]
    # A rebuild from the stream has nothing left to score.
    rebuilt = Assessor(Settings())
    for event in seen:
        rebuilt.apply(event)
    assert await rebuilt.reconcile(events.now()) == []


async def test_the_assessor_does_not_score_a_success_of_an_attempt_that_had_ended() -> None:
    spec = events.TaskSpec(id="a", type="llm")
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-q", tasks=[spec])
    common: dict[str, Any] = {"ts": events.now(), "workflow_id": "wf-q", "run_id": sub.id}
    assessor = Assessor(Settings())
    stream: list[events.Event] = [
        sub, events.TaskTimedOut(id=events.new_id(), **common, task_id="a", attempt=1, reason="lost"),
        events.TaskSucceeded(id=events.new_id(), **common, task_id="a", attempt=1, output="late")]
    for event in stream:
        assessor.apply(event)
    assert await assessor.reconcile(events.now()) == []


# ---- the workflow file ----------------------------------------------------------------------


@pytest.mark.parametrize(("written", "carried"), [("true", 0.8), ("false", None), ("0.5", 0.5), (None, None)])
def test_a_workflow_file_s_rerun_below_quality_becomes_a_number_or_none(
        tmp_path: Path, written: str | None, carried: float | None) -> None:
    path = tmp_path / "wf.yaml"
    field = f"rerun_below_quality: {written}\n" if written is not None else ""
    path.write_text(f"workflow_id: wf-q\n{field}tasks:\n  - {{id: a, type: noop}}\n")
    assert read_workflow(path, quality_threshold=0.8).rerun_below_quality == carried


def test_a_workflow_file_s_true_is_quality_threshold_s_default_without_settings(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("workflow_id: wf-q\nrerun_below_quality: true\ntasks:\n  - {id: a, type: noop}\n")
    assert read_workflow(path).rerun_below_quality == 0.7


# ---- end to end -----------------------------------------------------------------------------


@pytest.fixture
async def engine(nats_bus: bus.Bus, tmp_path: Path, llm: OpenAIServer) -> AsyncIterator[Settings]:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.2",
                              "YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "test-model"}, dotenv=None)
    async with in_process(settings, nats_bus):
        yield settings


async def test_a_short_answer_is_re_run_and_its_dependent_gets_the_fuller_one(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    # "short" uses none of the task's words (docs/quality.md, "Scores"): off the task, capped
    # at 0.4; the full answer uses 7 of its 8 and scores 1.0.
    full = ("A token bucket rate limiter holds up to a fixed number of tokens. It refills them at a steady "
            "rate, and it rejects a request when no token is left.")
    llm.reply("short")
    llm.reply(full)
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-rerun", tasks=[
        events.TaskSpec(id="ask", type="llm", parameters={"prompt": "answer fully"},
                        description="Explain what a token bucket rate limiter does, how it refills, and when it "
                                    "rejects a request.", retry=events.RetryPolicy(max_attempts=1)),
        events.TaskSpec(id="use", type="echo", parameters={"text": "{{ tasks.ask.output }}"}, dependencies=["ask"])],
        rerun_below_quality=0.95)
    client = WorkflowClient(nats_bus)
    end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=60)
    seen = await all_events(nats_bus, f"ymera.*.{sub.workflow_id}.>")
    assert isinstance(end, events.WorkflowCompleted), end
    assessed = [e for e in only(seen, events.TaskAssessed) if e.task_id == "ask"]
    assert [(e.attempt, e.overall) for e in assessed] == [(1, 0.4), (2, 1.0)]
    assert assessed[0].reasons["overall"][-1] == "capped at 0.4: off the task (relevance 0.00)"
    model = assessed[0].model  # as the executor names it
    assert model is not None
    assert model.endswith("test-model")
    [retry] = only(seen, events.TaskRetryScheduled)
    reason = f"quality 0.4 of attempt 1 ({model}) is below 0.95: re-run once on a stronger model"
    assert (retry.task_id, retry.attempt, retry.reason) == ("ask", 2, reason)
    readies = only(seen, events.TaskReady)
    assert [(r.task_id, r.attempt, r.tried_models, r.upgrade) for r in readies] == [
        ("ask", 1, [], None), ("ask", 2, [model], reason), ("use", 1, [], None)]
    # The dependent was released only after the re-run was scored, with its output.
    order = [e.id for e in seen]
    assert order.index(assessed[1].id) < order.index(readies[2].id)
    [use] = [e for e in only(seen, events.TaskSucceeded) if e.task_id == "use"]
    assert use.output == full
    ask = {r.task_id: r for r in end.results}["ask"]
    assert (ask.status, ask.attempts, ask.quality) == ("succeeded", 2, 1.0)
    assert len(llm.requests) == 2


def test_status_shows_a_task_set_aside_for_a_quality_rerun_as_retrying_with_the_reason() -> None:
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf",
                                   tasks=[events.TaskSpec(id="a", type="llm")], rerun_below_quality=0.7)
    common = {"ts": events.now(), "workflow_id": "wf", "run_id": sub.id, "task_id": "a"}
    reason = "quality 0.42 of attempt 1 (local/m) is below 0.7: re-run once on a stronger model"
    projection = store.WorkflowRuns()
    runs = projection.initial()
    for event in (sub, events.TaskReady(id="r1", attempt=1, **common),
                  events.TaskSucceeded(id="s1", attempt=1, output="x", **common),
                  events.TaskAssessed(id="a1", attempt=1, accuracy=0.4, completeness=0.4, consistency=0.4,
                                      efficiency=0.4, maintainability=0.4, overall=0.42, **common),
                  events.TaskRetryScheduled(id="rs", attempt=2, not_before=events.now(), reason=reason, **common)):
        runs = projection.apply(runs, event)
    task = runs.runs[sub.id].tasks["a"]
    assert (task.state, task.reason) == ("retrying", reason)
    runs = projection.apply(runs, events.TaskReady(id="r2", attempt=2, **common))
    runs = projection.apply(runs, events.TaskSucceeded(id="s2", attempt=2, output="xy", **common))
    task = runs.runs[sub.id].tasks["a"]
    assert (task.state, task.reason, task.attempts) == ("succeeded", None, 2)
