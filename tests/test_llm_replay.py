"""`ymera replay RUN --offline` and `ymera fork RUN --from TASK --model M`, as a user runs them on
the embedded defaults, against a local server speaking OpenAI's format."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import bus
import events
import llm
import store
from actors import load_settings
from actors.executor._measures import Measures
from actors.executor._replay import RecordedRun
from ymera import WorkflowClient

from .conftest import ymera, ymera_env
from .engine import all_events, in_process
from .llm_server import OpenAIServer
from .support import coding_workflow, stored_events

WORKFLOW = coding_workflow("coding")
CODE = "def add(a: int, b: int) -> int:\n    return a + b\n"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-test") as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: OpenAIServer) -> dict[str, str]:
    return {**ymera_env(tmp_path / "data"), "YMERA_LLM_BASE_URL": server.base_url, "YMERA_LLM_MODEL": "gpt-test"}


@pytest.fixture
def finished(tmp_path: Path, env: dict[str, str], server: OpenAIServer) -> str:
    """A finished run whose first call met a 429: its id."""
    path = tmp_path / "coding.yaml"
    path.write_text(WORKFLOW)
    server.rate_limit(retry_after="1")
    server.reply(CODE)
    server.reply("The function is correct. It could take floats too.")
    run = ymera("run", str(path), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(server.requests) == 3
    found = re.search(r"^  run (\S+)$", run.stdout, re.M)
    assert found is not None, run.stdout
    return found.group(1)


def after_progress(stdout: str, title: str) -> list[str]:
    """The comparison: the lines from its title on (progress lines come first)."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(title)]
    assert starts, stdout
    return lines[starts[0]:]


def stored(env: dict[str, str]) -> list[events.Event]:
    async def read() -> list[events.Event]:
        async with store.SqliteEventLog(load_settings(env, dotenv=None).log_path, readonly=True) as log:
            return await stored_events(log)
    return asyncio.run(read())


def test_an_offline_replay_calls_no_provider_and_reproduces_every_output_and_event(
        env: dict[str, str], server: OpenAIServer, finished: str) -> None:
    replay = ymera("replay", finished[:12], "--offline", env=env)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert len(server.requests) == 3  # no provider called
    lines = after_progress(replay.stdout, "offline replay of run ")
    assert lines[0].startswith(f"offline replay of run {finished} (workflow coding) as run ")
    assert lines[-1] == "2 of 2 outputs reproduced; 0 provider calls"
    assert re.match(r"generate +local/gpt-test +\d\.\d\d +\$0 +local/gpt-test \(replayed\) +\d\.\d\d +\$0 +same$",
                    lines[2]), lines[2]
    again = lines[0].rsplit(" ", 1)[1]
    logged = stored(env)
    # The same events: the recorded 429 fails the first attempt again, and the retry succeeds.
    failed = [(e.task_id, e.attempt, e.kind) for e in logged if isinstance(e, events.TaskFailed) and e.run_id == again]
    assert failed == [("generate", 1, "rate_limited")]
    calls = [e for e in logged if isinstance(e, events.LLMCalled) and e.run_id == again]
    assert [(c.task_id, c.attempt, c.outcome, c.replay_of, c.cost_usd) for c in calls] == [
        ("generate", 1, "rate_limited", finished, 0.0), ("generate", 2, "ok", finished, 0.0),
        ("review", 1, "ok", finished, 0.0)]
    original = {e.task_id: e.output for e in logged if isinstance(e, events.TaskSucceeded) and e.run_id == finished}
    replayed = {e.task_id: e.output for e in logged if isinstance(e, events.TaskSucceeded) and e.run_id == again}
    assert replayed == original == {"generate": CODE, "review": "The function is correct. It could take floats too."}
    # A replayed result's score is the original's again: marked, so the tracker does not count it twice.
    scored = {(e.run_id, e.task_id, e.replay_of) for e in logged if isinstance(e, events.TaskAssessed)}
    assert scored == {(finished, "generate", None), (finished, "review", None), (again, "generate", finished),
                      (again, "review", finished)}
    measures = Measures(llm.Tracker())
    for event in logged:
        measures.apply(event)
    assert measures.tracker.get("local/gpt-test", "code_generation").scored == 1  # type: ignore[union-attr]
    chosen = [e for e in logged if isinstance(e, events.ModelChosen) and e.run_id == again]
    assert {c.reason for c in chosen} == {"replay: the recorded run's call 1 went to local/gpt-test"}
    # Twice in a row: a replay of the replay is as good.
    twice = ymera("replay", again, "--offline", env=env)
    assert twice.returncode == 0, twice.stdout + twice.stderr
    assert twice.stdout.splitlines()[-1] == "2 of 2 outputs reproduced; 0 provider calls"


def test_a_fork_runs_its_task_and_what_follows_on_the_other_model_and_prints_both_runs(
        env: dict[str, str], server: OpenAIServer, finished: str) -> None:
    server.reply("Correct, but name the parameters better.")
    fork = ymera("fork", finished, "--from", "review", "--model", "other-model", env=env)
    assert fork.returncode == 0, fork.stdout + fork.stderr
    [request] = server.requests[3:]  # only the forked task called a model
    assert request.body["model"] == "other-model"
    lines = after_progress(fork.stdout, "fork of run ")
    assert lines[0].startswith(f"fork of run {finished} (workflow coding) from task review onto other-model as run ")
    assert lines[1].split() == ["task", "model", "quality", "cost", "new", "model", "quality", "cost", "output"]
    assert re.match(r"generate +local/gpt-test +\d\.\d\d +\$0 +local/gpt-test \(replayed\) +\d\.\d\d +\$0 +same$",
                    lines[2]), lines[2]
    assert re.match(r"review +local/gpt-test +\d\.\d\d +\$0 +local/other-model +\d\.\d\d +\$0 +differs$",
                    lines[3]), lines[3]
    assert re.match(r"total +\d\.\d\d +\$0 +\d\.\d\d +\$0 +1 of 2 same$", lines[4]), lines[4]


def test_replay_and_fork_say_what_is_wrong_with_what_they_were_given(
        env: dict[str, str], finished: str) -> None:
    def error(*args: str) -> str:
        done = ymera(*args, env=env)
        assert done.returncode != 0, done.stdout
        return done.stderr

    assert error("replay", "nosuch", "--offline") == (
        "ymera: no run nosuch in the stream (`ymera runs WORKFLOW` lists a workflow's runs)\n")
    assert error("fork", finished, "--from", "nosuch", "--model", "x") == (
        f"ymera: run {finished} has no task 'nosuch'; its tasks: generate, review\n")
    assert error("replay", "--offline") == "ymera: --offline replays a run: name it (`ymera replay RUN --offline`)\n"
    assert error("replay", finished, "--projection", "runs") == (
        "ymera: --projection and --from-seq re-fold the log's projections: they do not go with a RUN (which replays "
        "that run)\n")
    assert error("replay", "", "--offline") == (
        "ymera: name a run: its id or a prefix of it (`ymera runs WORKFLOW` lists them)\n")


def test_a_fork_onto_a_model_no_provider_here_serves_says_why_its_run_did_not_complete(
        env: dict[str, str], finished: str) -> None:
    fork = ymera("fork", finished, "--from", "review", "--model", "openai/gpt-4o", env=env)
    assert fork.returncode == 1
    lines = after_progress(fork.stdout, "workflow coding: invalid")
    assert lines[2] == ("  task review.parameters.model: model 'openai/gpt-4o': provider openai is not configured: "
                        "set OPENAI_API_KEY or OPENAI_API_KEY_1, OPENAI_API_KEY_2, ...")
    assert lines[3].startswith(f"fork of run {finished} (workflow coding) from task review onto openai/gpt-4o")


def test_a_request_the_recorded_run_never_made_is_refused_naming_the_task_and_call() -> None:
    recorded = events.LLMCalled(id="c1", ts=events.now(), workflow_id="wf", run_id="r1", task_id="t", attempt=1,
                                provider="local", model="m", request_digest="a" * 64, response="{}")
    replay = RecordedRun("r1", "t", 1, [recorded])
    assert replay.model(1) == "local/m"
    assert replay.answer(1, "a" * 64).response == "{}"
    with pytest.raises(llm.LLMError) as refused:
        replay.answer(1, "b" * 64)
    assert (refused.value.kind, refused.value.retryable) == ("bad_request", False)
    assert refused.value.message == (
        "offline replay of run r1: it recorded no call like this one (task t, attempt 1, call 1): the prompt or the "
        "model differs from the recorded run's, or its records are no longer in the stream")


async def test_a_replay_of_hundreds_of_calls_in_flight_at_once_reads_the_records_once(
        nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> None:
    # Read per attempt, 300 replayed attempts at once each opened a reader of the stream, and past
    # the server's limit on consumers their attempts failed ("maximum consumers limit reached").
    # The recorded run calls the test's server 20 at a time (a thread per request in this
    # process: 300 at once starve the engine on a busy machine); its replay runs 300 at once.
    env = {"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_LLM_BASE_URL": server.base_url,
           "YMERA_LLM_MODEL": "gpt-test"}
    tasks = [events.TaskSpec(id=f"t{n}", type="llm", parameters={"prompt": f"item {n}", "max_tokens": 8})
             for n in range(300)]
    first = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wide", tasks=tasks)
    again = msgspec.structs.replace(first, id=events.new_id(), ts=events.now(), replay_of=first.id)
    ends = []
    for submission, concurrency in ((first, "20"), (again, "300")):
        settings = load_settings({**env, "YMERA_EXECUTOR_CONCURRENCY": concurrency}, dotenv=None)
        async with in_process(settings, nats_bus):
            client = WorkflowClient(nats_bus)
            end, _ = await client.wait(submission.workflow_id, await client.submit(submission), timeout=120,
                                       run_id=submission.id)
            ends.append(end)
    assert all(isinstance(end, events.WorkflowCompleted) for end in ends), ends
    assert len(server.requests) == 300  # the replay called no one
    outputs: dict[str, dict[str, object]] = {first.id: {}, again.id: {}}
    for event in await all_events(nats_bus, events.subject_filter(events.TaskSucceeded, "wide")):
        if isinstance(event, events.TaskSucceeded):
            outputs[event.run_id][event.task_id] = event.output
    assert outputs[again.id] == outputs[first.id]
    assert len(outputs[first.id]) == 300
