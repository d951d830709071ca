"""The judge: a model grading each model task's answer, its verdict in the `TaskSucceeded`.

The engine runs in this process against a real nats-server and a local server speaking
OpenAI's wire format, which answers the task's call first and the judge's second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

import bus
import events
from actors import Settings, load_settings
from actors.executor._judge import RUBRIC, judge, verdict
from actors.executor._kinds import context
from actors.executor._measures import _measures_a_model
from ymera import WorkflowClient
from ymera._progress import judged_line

from .engine import all_events, in_process
from .llm_server import OpenAIServer

GOOD = '{"relevance": 0.9, "correctness": 1, "completeness": 0.8, "reasons": ["It names Paris.", "It is brief."]}'


@pytest.fixture
async def engine(nats_bus: bus.Bus, tmp_path: Path, llm: OpenAIServer) -> AsyncIterator[Settings]:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.2",
                              "YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "test-model",
                              "YMERA_JUDGE_MODEL": "test-model"}, dotenv=None)
    async with in_process(settings, nats_bus):
        yield settings


async def run(connection: bus.Bus, workflow_id: str, *tasks: events.TaskSpec) -> list[events.Event]:
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))
    client = WorkflowClient(connection)
    end, _ = await client.wait(workflow_id, await client.submit(sub), timeout=60)
    assert isinstance(end, events.WorkflowCompleted), end
    return await all_events(connection, f"ymera.*.{workflow_id}.>")


def ask(id: str = "ask") -> events.TaskSpec:
    return events.TaskSpec(id=id, type="llm", description="Name the capital of France.",
                           retry=events.RetryPolicy(max_attempts=1))


def one(seen: list[events.Event], kind: type[events.TaskSucceeded]) -> events.TaskSucceeded:
    [found] = [e for e in seen if isinstance(e, kind)]
    return found


# ---- reading a verdict ----------------------------------------------------------------------


def test_a_verdict_is_read_alone_fenced_or_amid_prose() -> None:
    for text in (GOOD, f"```json\n{GOOD}\n```", f"Here is my grading:\n{GOOD}\nThank you."):
        judged, why = verdict(text, "openai/gpt-4o-mini")
        assert why == ""
        assert judged == events.Verdict(model="openai/gpt-4o-mini", relevance=0.9, correctness=1.0,
                                        completeness=0.8, reasons=["It names Paris.", "It is brief."])


def test_an_answer_that_is_no_verdict_says_why() -> None:
    assert verdict("The answer looks fine to me.", "m") == (
        None, "the judge (m) answered without a JSON verdict: The answer looks fine to me.")
    judged, why = verdict('{"relevance": 1.5, "correctness": 1, "completeness": 1}', "m")
    assert judged is None
    assert why == "the judge (m) answered with no valid verdict: Expected `float` <= 1.0 - at `$.relevance`"
    judged, why = verdict('{"relevance": 1, "correctness": 1}', "m")
    assert judged is None
    assert why == "the judge (m) answered with no valid verdict: Object missing required field `completeness`"


def test_at_most_four_reasons_are_kept_each_cut_short() -> None:
    text = msgspec.json.encode({"relevance": 1, "correctness": 1, "completeness": 1,
                                "reasons": ["  ", "x" * 500, "b", "c", "d", "e"]}).decode()
    judged, _ = verdict(text, "m")
    assert judged is not None
    assert judged.reasons == ["x" * 200, "b", "c", "d"]


def test_the_judges_calls_and_replays_say_nothing_of_the_model_serving_the_task() -> None:
    common = {"id": "x", "ts": events.now(), "workflow_id": "wf", "actor": "executor", "task_id": "t", "attempt": 1,
              "provider": "openai", "model": "gpt-4o-mini"}
    assert _measures_a_model(events.encode(events.LLMCalled(**common)))
    assert not _measures_a_model(events.encode(events.LLMCalled(**common, purpose="judge")))
    assert not _measures_a_model(events.encode(events.LLMCalled(**common, replay_of="run-1")))
    no_model = events.TaskAssessed(id="y", ts=events.now(), workflow_id="wf", actor="assessor", task_id="t",
                                   attempt=1, accuracy=1, completeness=1, consistency=1, efficiency=1,
                                   maintainability=1, overall=1)
    assert not _measures_a_model(events.encode(no_model))
    assert _measures_a_model(b"not json")  # decoded in full, for the rejection to say why


# ---- through the engine ---------------------------------------------------------------------


async def test_a_model_tasks_answer_is_graded_and_the_judges_call_is_recorded(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    llm.reply("Paris is the capital of France.")
    llm.reply(GOOD)
    seen = await run(nats_bus, "wf-judged", ask(), events.TaskSpec(id="quiet", type="noop"))
    succeeded = [e for e in seen if isinstance(e, events.TaskSucceeded)]
    judged = {e.task_id: e.judged for e in succeeded}
    assert judged == {"ask": events.Verdict(model="local/test-model", relevance=0.9, correctness=1.0,
                                            completeness=0.8, reasons=["It names Paris.", "It is brief."]),
                      "quiet": None}
    calls = [e for e in seen if isinstance(e, events.LLMCalled)]
    assert [(c.call, c.purpose, c.outcome) for c in calls] == [(1, "task", "ok"), (2, "judge", "ok")]
    # The judge read the rubric, the task as its model was asked it, and the answer.
    asked = llm.requests[1].body["messages"]
    assert asked[0] == {"role": "system", "content": RUBRIC}
    assert "Name the capital of France." in asked[1]["content"]
    assert "The answer to grade:\n<<<\nParis is the capital of France.\n>>>" in asked[1]["content"]
    assert len(llm.requests) == 2  # the noop task called no one


async def test_a_judge_that_gives_no_verdict_leaves_the_answer_standing_and_says_why(
        nats_bus: bus.Bus, engine: Settings, llm: OpenAIServer) -> None:
    llm.reply("Paris.")
    llm.reply("I think it is quite good.")
    llm.reply("Paris.")
    llm.error(500)
    seen = await run(nats_bus, "wf-unjudged", ask("a"), events.TaskSpec(id="b", type="llm", dependencies=["a"],
                                                                         description="Say it again."))
    by_task = {e.task_id: e for e in seen if isinstance(e, events.TaskSucceeded)}
    assert by_task["a"].judged is None
    assert by_task["a"].unjudged == "the judge (local/test-model) answered without a JSON verdict: I think it is " \
                                    "quite good."
    assert by_task["b"].judged is None
    assert by_task["b"].unjudged.startswith("the judge (local/test-model) gave no verdict: ")
    assert "500" in by_task["b"].unjudged
    assert not [e for e in seen if isinstance(e, events.TaskFailed)]


async def test_a_judge_it_cannot_ask_in_time_or_at_all_says_why(tmp_path: Path, llm: OpenAIServer) -> None:
    def settings(model: str, **more: str) -> Settings:
        return load_settings({"YMERA_DATA_DIR": str(tmp_path), "YMERA_JUDGE_MODEL": model, **more}, dotenv=None)

    spec = ask()
    async with context(settings("test-model", YMERA_LLM_BASE_URL=llm.base_url)) as ctx:
        assert await judge(spec, {}, "Paris.", ctx.settings, ctx.llm, 0.4) == (
            None, "the judge (test-model) was not asked: 0.4s of the attempt's time limit was left")
        llm.hang(5)
        assert await judge(spec, {}, "Paris.", ctx.settings, ctx.llm, 1.5) == (
            None, "the judge (local/test-model) gave no verdict within 1.5s")
    async with context(settings("openai/gpt-4o-mini")) as ctx:  # no key for OpenAI here
        judged, why = await judge(spec, {}, "Paris.", ctx.settings, ctx.llm, 10.0)
    assert (judged, why) == (None, "the judge (openai/gpt-4o-mini) gave no verdict: model 'openai/gpt-4o-mini': "
                                   "provider openai is not configured: set OPENAI_API_KEY or OPENAI_API_KEY_1, "
                                   "OPENAI_API_KEY_2, ...")


async def test_the_judges_call_is_paid_from_the_workflows_budget_and_refused_when_it_cannot_cover_it(
        nats_bus: bus.Bus, tmp_path: Path, llm: OpenAIServer) -> None:
    # The task's call to gpt-4o-mini may cost $0.00003; the judge's to gpt-4o, with 1,000 answer
    # tokens at $10 a million, up to $0.01: over the run's $0.005.
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "OPENAI_API_KEY": "k",
                              "OPENAI_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "openai/gpt-4o-mini",
                              "YMERA_JUDGE_MODEL": "openai/gpt-4o", "YMERA_JUDGE_MAX_TOKENS": "1000"}, dotenv=None)
    llm.reply("Paris.")
    task = events.TaskSpec(id="ask", type="llm", parameters={"prompt": "Name the capital of France.",
                                                             "max_tokens": 50})
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-judge-budget",
                                   budget_usd=0.005, tasks=[task])
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=60)
    assert isinstance(end, events.WorkflowCompleted), end
    seen = await all_events(nats_bus, "ymera.*.wf-judge-budget.>")
    [succeeded] = [e for e in seen if isinstance(e, events.TaskSucceeded)]
    assert succeeded.judged is None
    assert succeeded.unjudged.startswith("the judge (openai/gpt-4o) gave no verdict: the workflow's budget of "
                                         "$0.005 cannot cover this call")
    assert len(llm.requests) == 1  # the judge was never called


def test_ymera_run_shows_the_verdict_or_why_there_is_none() -> None:
    judged = events.Verdict(model="openai/gpt-4o-mini", relevance=0.9, correctness=1.0, completeness=0.8,
                            reasons=["It names Paris.", "It is brief."])
    assert judged_line(judged, "") == ("judged by openai/gpt-4o-mini: relevance 0.90, correctness 1.00, "
                                       "completeness 0.80 (It names Paris.)")
    assert judged_line(None, "the judge (m) gave no verdict within 1.5s") == (
        "not judged: the judge (m) gave no verdict within 1.5s")
