"""The selector in the engine: every choice of model is a `ModelChosen` with its reason; a retry
falls back to the next candidate; a call the budget refuses is downgraded to a cheaper model.
Two providers are local servers speaking OpenAI's format (`<PROVIDER>_BASE_URL`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import bus
import events
from actors import Settings, load_settings
from actors.executor import TaskError
from ymera import WorkflowClient

from .engine import all_events, in_process
from .llm_server import OpenAIServer
from .support import attempt


@pytest.fixture
def openai() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-4o-mini") as srv:
        yield srv


@pytest.fixture
def groq() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="llama-3.1-8b-instant") as srv:
        yield srv


def settings_for(tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer, **env: str) -> Settings:
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "OPENAI_API_KEY": "k", "GROQ_API_KEY": "k",
                          "OPENAI_BASE_URL": openai.base_url, "GROQ_BASE_URL": groq.base_url, **env}, dotenv=None)


async def run(connection: bus.Bus, settings: Settings, submission: events.WorkflowSubmitted) -> events.Event:
    async with in_process(settings, connection):
        client = WorkflowClient(connection)
        end, _ = await client.wait(submission.workflow_id, await client.submit(submission), timeout=60)
        return end


def task(**parameters: object) -> events.TaskSpec:
    fast = events.RetryPolicy(max_attempts=2, initial_delay_seconds=0.1)
    return events.TaskSpec(id="t", type="llm", parameters={"prompt": "say hi", "max_tokens": 50, **parameters},
                           retry=fast)


async def chosen(connection: bus.Bus, workflow_id: str) -> list[events.ModelChosen]:
    found = await all_events(connection, events.subject_filter(events.ModelChosen, workflow_id))
    return sorted((e for e in found if isinstance(e, events.ModelChosen)), key=lambda e: (e.attempt, e.ts))


async def test_a_retry_falls_back_to_the_next_candidate_and_every_choice_is_an_event(
        nats_bus: bus.Bus, tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer) -> None:
    # An answer that fails the task's check: the call itself went well (the tracker holds nothing
    # against the model), so only the fallback moves the retry to the other provider.
    openai.reply("no idea")
    groq.reply("hello")
    checked = msgspec.structs.replace(task(), expect=events.Expectations(contains=["hello"]))
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-fallback",
                                          tasks=[checked])
    end = await run(nats_bus, settings_for(tmp_path, openai, groq), submission)
    assert isinstance(end, events.WorkflowCompleted), end
    assert (len(openai.requests), len(groq.requests)) == (1, 1)
    first, second = await chosen(nats_bus, "wf-fallback")
    assert (first.attempt, first.model, first.task_type) == (1, "openai/gpt-4o-mini", "llm")
    assert first.reason == "openai/gpt-4o-mini: not measured yet for llm"
    assert first.candidates[:2] == ["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"]
    assert (second.attempt, second.model) == (2, "groq/llama-3.1-8b-instant")
    assert second.reason.startswith("falls back from openai/gpt-4o-mini (attempt 1 failed); groq/llama-3.1-8b-instant")
    [result] = end.results
    assert (result.model, result.attempts) == ("groq/llama-3.1-8b-instant", 2)
    # The failed attempt names its model: the tracker's failure rate is per model.
    failed = await all_events(nats_bus, events.subject_filter(events.TaskFailed, "wf-fallback"))
    assert [(e.attempt, e.model) for e in failed if isinstance(e, events.TaskFailed)] == [(1, "openai/gpt-4o-mini")]


async def test_a_call_the_budget_cannot_cover_is_downgraded_to_a_cheaper_model_with_the_reason(
        nats_bus: bus.Bus, tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer) -> None:
    # gpt-4o at $10 a million answer tokens: 1,000 of them may cost $0.01, over the run's $0.005.
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-downgrade",
                                          budget_usd=0.005, tasks=[task(max_tokens=1000)])
    settings = settings_for(tmp_path, openai, groq, YMERA_LLM_MODEL="openai/gpt-4o")
    end = await run(nats_bus, settings, submission)
    assert isinstance(end, events.WorkflowCompleted), end
    first, second = await chosen(nats_bus, "wf-downgrade")
    assert (first.call, first.model) == (1, "openai/gpt-4o")
    assert first.reason == "openai/gpt-4o, named by YMERA_LLM_MODEL: not measured yet for llm"
    assert second.call == 1  # the refused call was never made: the cheaper model takes call 1
    assert second.reason.startswith("downgraded from openai/gpt-4o: the workflow's budget of $0.005 cannot cover "
                                    "this call: $0 is spent, and the call may cost up to $0.01")
    assert second.model != "openai/gpt-4o"
    requests = openai.requests + groq.requests
    assert [r.body["model"] for r in requests] == [second.model.partition("/")[2]]


async def test_a_task_naming_its_model_and_no_fallbacks_is_refused_by_the_budget_with_the_reason(
        nats_bus: bus.Bus, tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer) -> None:
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-pinned",
                                          budget_usd=0.005, tasks=[task(max_tokens=1000, model="openai/gpt-4o")])
    end = await run(nats_bus, settings_for(tmp_path, openai, groq), submission)
    assert isinstance(end, events.WorkflowFailed), end
    failed = [e for e in await all_events(nats_bus, events.subject_filter(events.TaskFailed, "wf-pinned"))
              if isinstance(e, events.TaskFailed)]
    assert [(f.kind, f.model) for f in failed] == [("budget", "openai/gpt-4o")]
    assert failed[0].error.startswith("the workflow's budget of $0.005 cannot cover this call")
    assert openai.requests == groq.requests == []


async def test_fallback_models_that_are_not_a_list_of_names_are_refused_with_what_was_given(
        nats_bus: bus.Bus, tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer) -> None:
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-bad-fallbacks",
                                          tasks=[task(model="openai/gpt-4o", fallback_models="groq/x")])
    end = await run(nats_bus, settings_for(tmp_path, openai, groq), submission)
    assert isinstance(end, events.WorkflowInvalid), end
    assert [(p.task_id, p.field, p.message) for p in end.problems] == [
        ("t", "parameters.fallback_models", "fallback_models must be a list of model names, got 'groq/x'")]


async def test_an_attempt_whose_fallback_models_slipped_past_the_validator_fails_saying_why(
        tmp_path: Path, openai: OpenAIServer, groq: OpenAIServer) -> None:
    spec = task(model="openai/gpt-4o", fallback_models=[1])
    with pytest.raises(TaskError) as failed:
        await attempt(spec, {}, settings_for(tmp_path, openai, groq))
    assert (failed.value.kind, failed.value.retryable, str(failed.value)) == (
        "bad_request", False, "parameters.fallback_models must be a list of model names, got [1]")
