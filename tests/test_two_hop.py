"""A step is two durable hops: TaskReady, then the attempt's result, which releases the dependents.

The executor checks each output against its task's `expect` before reporting (a result that
fails is a failed attempt, and the retry policy applies); an attempt that ends before its
first heartbeat sends no TaskStarted (its result names the executor and when it began); the
assessor scores a model's answer off the critical path, the executor scores in the attempt what
no model wrote, and a workflow still ends only once every success is scored. Real nats-server,
every actor in this process, a local OpenAI-format server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bus
import events
from actors import Settings, load_settings
from actors._quality import score
from actors.distributor import DistributorState
from actors.distributor._decide import decide
from actors.executor._actor import CONSUMER
from ymera import WorkflowClient

from .engine import all_events, in_process
from .llm_server import OpenAIServer


def settings_for(tmp_path: Path, llm: OpenAIServer) -> Settings:
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.2",
                          "YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "test-model"}, dotenv=None)


@pytest.fixture
async def engine(nats_bus: bus.Bus, tmp_path: Path, llm: OpenAIServer) -> AsyncIterator[Settings]:
    settings = settings_for(tmp_path, llm)
    async with in_process(settings, nats_bus):
        yield settings


def submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def run(connection: bus.Bus, sub: events.WorkflowSubmitted) -> tuple[events.Event, list[events.Event]]:
    client = WorkflowClient(connection)
    seq = await client.submit(sub)
    end, _ = await client.wait(sub.workflow_id, seq, timeout=60)
    return end, await all_events(connection, f"ymera.*.{sub.workflow_id}.>")


async def test_an_output_that_fails_its_check_is_a_failed_attempt_and_its_retry_can_succeed(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    llm.reply("hello")
    llm.reply("hello and bye")
    end, seen = await run(nats_bus, submission("wf-check", events.TaskSpec(
        id="ask", type="llm", parameters={"prompt": "say bye"}, expect=events.Expectations(contains=["bye"]),
        retry=events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.01))))
    assert isinstance(end, events.WorkflowCompleted), end
    kinds = [type(e).__name__ for e in seen if not isinstance(e, events.TaskHeartbeat)]
    # Each attempt's choice of model and its call are recorded before its result.
    assert kinds == ["WorkflowSubmitted", "WorkflowAdmitted", "WorkflowValidated", "TaskReady", "ModelChosen",
                     "LLMCalled", "TaskFailed", "TaskRetryScheduled", "TaskReady", "ModelChosen", "LLMCalled",
                     "TaskSucceeded", "TaskAssessed", "WorkflowCompleted"]
    calls = [e for e in seen if isinstance(e, events.LLMCalled)]
    assert [(c.attempt, c.provider, c.model, c.outcome, c.cost_usd) for c in calls] == [
        (1, "local", "test-model", "ok", 0.0), (2, "local", "test-model", "ok", 0.0)]
    assert calls[0].response is not None
    assert '"hello"' in calls[0].response
    failed = next(e for e in seen if isinstance(e, events.TaskFailed))
    assert (failed.attempt, failed.kind, failed.retryable) == (1, "outcome", True)
    assert failed.error == ("outcome check failed: contains: expected the output to contain 'bye'; "
                            "output: 'hello'")
    assessed = next(e for e in seen if isinstance(e, events.TaskAssessed))
    assert assessed.attempt == 2
    [result] = end.results
    assert (result.status, result.attempts, result.quality) == ("succeeded", 2, assessed.overall)
    assert len(llm.requests) == 2


async def test_a_short_attempt_sends_no_task_started_a_long_one_does_and_both_are_acked(
        nats_bus: bus.Bus, engine: Settings) -> None:
    end, seen = await run(nats_bus, submission(
        "wf-hops", events.TaskSpec(id="quick", type="noop"),
        events.TaskSpec(id="long", type="sleep", parameters={"seconds": 1.0})))
    assert isinstance(end, events.WorkflowCompleted), end
    started = [e.task_id for e in seen if isinstance(e, events.TaskStarted)]
    assert started == ["long"]  # it outlived its first heartbeat (0.2 s); quick ended before it
    order = [(type(e).__name__, e.task_id) for e in seen if isinstance(e, events.TaskStarted | events.TaskSucceeded)
             and e.task_id == "long"]
    assert order == [("TaskStarted", "long"), ("TaskSucceeded", "long")]
    results = {e.task_id: e for e in seen if isinstance(e, events.TaskSucceeded)}
    releases = {e.task_id: e for e in seen if isinstance(e, events.TaskReady)}
    for task_id, result in results.items():
        assert result.executor != ""
        assert result.started_at is not None
        assert releases[task_id].ts <= result.started_at <= result.ts
    info = await nats_bus.js.consumer_info(nats_bus.stream.name, CONSUMER)
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)


def test_a_success_releases_its_dependents_before_it_is_scored() -> None:
    sub = submission("wf-chain", events.TaskSpec(id="a", type="noop"),
                     events.TaskSpec(id="b", type="noop", dependencies=["a"]))
    run_id = sub.id
    common = {"ts": events.now(), "workflow_id": sub.workflow_id, "run_id": run_id}
    state = DistributorState()
    for event in [
        sub,
        events.WorkflowValidated(id=events.new_id(), **common, levels=[["a"], ["b"]]),
        events.TaskReady(id=events.new_id(), **common, task_id="a", attempt=1),
        events.TaskSucceeded(id=events.new_id(), **common, task_id="a", attempt=1, output=None),
    ]:
        state.apply(event)
    released = [e for e in decide(state, state.workflows[run_id], Settings(), None, None)
                if isinstance(e, events.TaskReady)]
    assert [(e.task_id, e.attempt) for e in released] == [("b", 1)]
    # ... and the workflow ends only once that success is scored.
    assert not any(isinstance(e, events.WorkflowCompleted)
                   for e in decide(state, state.workflows[run_id], Settings(), None, None))


def test_a_success_scored_in_its_attempt_settles_at_once() -> None:
    sub = submission("wf-scored", events.TaskSpec(id="a", type="noop"))
    run_id = sub.id
    common = {"ts": events.now(), "workflow_id": sub.workflow_id, "run_id": run_id}
    quality = events.Quality(task_type="noop", accuracy=1.0, completeness=1.0, consistency=1.0, efficiency=0.5,
                             maintainability=1.0, overall=0.95)
    state = DistributorState()
    for event in [
        sub,
        events.WorkflowValidated(id=events.new_id(), **common, levels=[["a"]]),
        events.TaskReady(id=events.new_id(), **common, task_id="a", attempt=1),
        events.TaskSucceeded(id=events.new_id(), **common, task_id="a", attempt=1, quality=quality),
    ]:
        state.apply(event)
    [end] = [e for e in decide(state, state.workflows[run_id], Settings(), None, None)
             if isinstance(e, events.WorkflowCompleted)]
    assert end.overall_quality == 0.95
    assert [(r.task_id, r.quality) for r in end.results] == [("a", 0.95)]


async def test_what_no_model_wrote_is_scored_in_its_attempt_and_the_assessor_scores_the_rest(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    llm.reply("The greeting says hello to the world, a friendly first program.")
    end, seen = await run(nats_bus, submission(
        "wf-scorers", events.TaskSpec(id="quick", type="noop"),
        events.TaskSpec(id="say", type="echo", parameters={"text": "hello world"}),
        events.TaskSpec(id="ask", type="llm", parameters={"prompt": "explain the greeting: {{ tasks.say.output }}"},
                        dependencies=["say"])))
    assert isinstance(end, events.WorkflowCompleted), end
    successes = {e.task_id: e for e in seen if isinstance(e, events.TaskSucceeded)}
    assessed = [e for e in seen if isinstance(e, events.TaskAssessed)]
    # The model's answer is the assessor's to score; the others carry their scores.
    assert [(e.task_id, e.actor) for e in assessed] == [("ask", "assessor")]
    assert successes["ask"].quality is None
    specs = {t.id: t for t in next(e for e in seen if isinstance(e, events.WorkflowSubmitted)).tasks}
    for task_id in ("quick", "say"):
        carried = successes[task_id].quality
        assert carried is not None
        assert carried.task_type == specs[task_id].type
        # A pure function of the spec and the success, so an audit can score it again.
        again = score(specs[task_id], successes[task_id].output, duration_ms=successes[task_id].duration_ms,
                      timeout_seconds=engine.task_timeout_seconds, checks=successes[task_id].checks)
        assert (carried.overall, carried.reasons) == (again.overall, again.reasons)
        assert events.assessment_of(successes[task_id]).overall == carried.overall  # type: ignore[union-attr]
    qualities = {r.task_id: r.quality for r in end.results}
    assert qualities == {"quick": successes["quick"].quality.overall,  # type: ignore[union-attr]
                         "say": successes["say"].quality.overall,  # type: ignore[union-attr]
                         "ask": assessed[0].overall}
    assert end.overall_quality == round(sum(qualities.values()) / 3, 4)  # type: ignore[arg-type]


async def test_a_success_the_attempt_could_not_score_is_scored_by_the_assessor(
        nats_bus: bus.Bus, engine: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the scorer")

    monkeypatch.setattr("actors._quality.score", broken)  # the executor's entry only: the assessor holds its own
    end, seen = await run(nats_bus, submission("wf-unscored", events.TaskSpec(id="quick", type="noop")))
    assert isinstance(end, events.WorkflowCompleted), end
    [success] = [e for e in seen if isinstance(e, events.TaskSucceeded)]
    [assessed] = [e for e in seen if isinstance(e, events.TaskAssessed)]
    assert success.quality is None
    assert (assessed.task_id, assessed.actor, end.overall_quality) == ("quick", "assessor", assessed.overall)
