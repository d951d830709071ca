"""`ymera feedback`, `WorkflowOrchestrator.record_feedback` and `ymera models`, as a user runs them:
against a real nats-server and SQLite log, seeded with the events the engine writes, and a real
run of an LLM task against a local server speaking OpenAI's format."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import bus
import events
import llm
import runner
import store
from actors import load_settings
from events import derive_id
from tests.llm_server import OpenAIServer
from ymera import Task, WorkflowOrchestrator

from .conftest import ymera, ymera_env
from .engine import connected
from .support import running_writer, stored_events, wait_until

# ---- seeding a log -----------------------------------------------------------------------


def _env(data_dir: Path, nats_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of a `ymera` command: no provider but those given (the machine's own keys
    and endpoints would change what `ymera models` shows)."""
    env = {k: v for k, v in ymera_env(data_dir, nats_url).items()
           if not any(part in k for part in ("_API_KEY", "_BASE_URL", "YMERA_LLM_", "YMERA_MODELS_FILE"))}
    return {**env, **settings}


def _append(path: Path, evs: list[events.Event], seqs: list[int] | None = None) -> None:
    async def append() -> None:
        async with store.SqliteEventLog(path) as log:
            first = log.head_seq + 1
            await log.append([store.NewEvent(seq, e.id, type(e).__name__, events.subject_of(e), e.workflow_id,
                                             e.ts.timestamp(), events.encode(e))
                              for seq, e in zip(seqs or range(first, first + len(evs)), evs, strict=True)])
    asyncio.run(append())


async def _seed(url: str, path: Path, evs: list[events.Event]) -> None:
    """Into the stream and into the log at the stream's seqs, as the store writer would have put them."""
    connection = await bus.connect(url)
    try:
        acks = await connection.publish_many(evs)
    finally:
        await connection.close()
    await asyncio.to_thread(_append, path, evs, [int(a.seq) for a in acks])


class Run:
    """A run of a workflow, written as the engine writes it."""

    def __init__(self, workflow_id: str, run_id: str, tasks: list[events.TaskSpec], at: datetime) -> None:
        self.workflow_id, self.run_id, self.at = workflow_id, run_id, at
        self.events: list[events.Event] = [events.WorkflowSubmitted(id=run_id, ts=at, workflow_id=workflow_id,
                                                                    tasks=tasks)]

    def _envelope(self, kind: str, *parts: object) -> dict[str, Any]:
        return {"id": derive_id(self.run_id, kind, *parts), "ts": self.at, "workflow_id": self.workflow_id,
                "run_id": self.run_id}

    def ready(self, task: str) -> Run:
        self.events.append(events.TaskReady(**self._envelope("TaskReady", task, 1), task_id=task, attempt=1))
        return self

    def called(self, task: str, provider: str, model: str, *, outcome: str = "ok", latency_ms: float = 100.0,
               cost_usd: float | None = 0.001, key_id: str | None = None, retry_after: float | None = None,
               error: str | None = None, call: int = 1, ts: datetime | None = None, task_type: str = "") -> Run:
        envelope = self._envelope("LLMCalled", task, 1, call)
        if ts is not None:
            envelope["ts"] = ts
        self.events.append(events.LLMCalled(
            **envelope, task_id=task, attempt=1, call=call, provider=provider, model=model, key_id=key_id,
            outcome=outcome, latency_ms=latency_ms, cost_usd=cost_usd, retry_after_seconds=retry_after, error=error,
            task_type=task_type))
        return self

    def succeeded(self, task: str, model: str | None = None) -> Run:
        self.events.append(events.TaskSucceeded(**self._envelope("TaskSucceeded", task, 1), task_id=task, attempt=1,
                                                output="done", model=model))
        return self

    def failed(self, task: str, model: str | None = None) -> Run:
        self.events.append(events.TaskFailed(**self._envelope("TaskFailed", task, 1), task_id=task, attempt=1,
                                             error="the server had an error", kind="server_error", retryable=False,
                                             model=model))
        return self

    def assessed(self, task: str, overall: float, model: str | None = None, task_type: str = "") -> Run:
        self.events.append(events.TaskAssessed(
            **self._envelope("TaskAssessed", task), task_id=task, attempt=1, accuracy=overall,
            completeness=overall, consistency=overall, efficiency=overall, maintainability=overall, overall=overall,
            model=model, task_type=task_type))
        return self


WRITE = events.TaskSpec(id="write", type="code_generation", agent="coding_agent", description="write fib")
LINT = events.TaskSpec(id="lint", type="echo", parameters={"text": "ok"})
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _two_workflows() -> list[events.Event]:
    """wf-a ran twice: in a1-run `write` succeeded on openai's gpt-4o-mini (the answer named the
    model as the provider did, with no provider) and `lint` succeeded; in a2-run `write` failed on
    groq and `lint` was still waiting for its result. wf-b has a task `write` too, still running."""
    a1 = (Run("wf-a", "a1-run", [WRITE, LINT], T0).ready("write").called("write", "openai", "gpt-4o-mini")
          .succeeded("write", "gpt-4o-mini-2024-07-18").ready("lint").succeeded("lint"))
    a2 = (Run("wf-a", "a2-run", [WRITE, LINT], T0 + timedelta(hours=1)).ready("write")
          .called("write", "groq", "llama-3.1-8b-instant", outcome="server_error")
          .failed("write", "groq/llama-3.1-8b-instant").ready("lint"))
    b1 = Run("wf-b", "b1-run", [WRITE], T0 + timedelta(hours=2)).ready("write")
    return a1.events + a2.events + b1.events


# ---- ymera feedback ----------------------------------------------------------------------


async def test_feedback_rates_the_latest_result_of_a_task_and_lands_in_the_stream_and_the_log(
        tmp_path: Path, nats_server: bus.EmbeddedServer) -> None:
    log_path = tmp_path / "data" / "events.db"
    await _seed(nats_server.url, log_path, _two_workflows())
    env = _env(tmp_path / "data", nats_server.url)

    # The latest run in which `write` ended is a2-run, where it failed: a failure may be rated too.
    latest = await asyncio.to_thread(ymera, "feedback", "write", "--workflow", "wf-a", "--rating", "0.2",
                                     "--comment", "crashed", env=env)
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.startswith("feedback 0.2 on task write (failed) of workflow wf-a run a2-run, "
                                    "model groq/llama-3.1-8b-instant: event ")
    # A run prefix names the run, and here the workflow too (only wf-a has runs beginning a1). The
    # answer named a bare model; the attempt's call names its provider.
    named = await asyncio.to_thread(ymera, "feedback", "write", "--run", "a1", "--rating", "0.9", env=env)
    assert named.returncode == 0, named.stderr
    assert "on task write (succeeded) of workflow wf-a run a1-run, model openai/gpt-4o-mini" in named.stdout
    # `lint` has not ended in a2-run: its result in a1-run is the latest. It called no model.
    lint = await asyncio.to_thread(ymera, "feedback", "lint", "--workflow", "wf-a", "--rating", "1", env=env)
    assert lint.returncode == 0, lint.stderr
    assert "on task lint (succeeded) of workflow wf-a run a1-run, model -" in lint.stdout
    # The same rating again is a second opinion, with an id of its own.
    again = await asyncio.to_thread(ymera, "feedback", "lint", "--workflow", "wf-a", "--rating", "1", env=env)
    assert again.returncode == 0, again.stderr

    async with store.SqliteEventLog(log_path) as log, connected(nats_server.url) as connection:
        async with running_writer(connection, log):
            last = (await connection.stream_state()).last_seq
            await wait_until(lambda: log.head_seq >= last, 15, "the feedback to be stored")
        given = [e for e in await stored_events(log) if isinstance(e, events.FeedbackGiven)]
    a1, a2 = "a1-run", "a2-run"
    assert [(e.workflow_id, e.run_id, e.task_id, e.rating, e.comment, e.principal, e.task_type, e.agent, e.model)
            for e in given] == [
        ("wf-a", a2, "write", 0.2, "crashed", "cli", "code_generation", "coding_agent", "groq/llama-3.1-8b-instant"),
        ("wf-a", a1, "write", 0.9, "", "cli", "code_generation", "coding_agent", "openai/gpt-4o-mini"),
        ("wf-a", a1, "lint", 1.0, "", "cli", "echo", None, None),
        ("wf-a", a1, "lint", 1.0, "", "cli", "echo", None, None)]
    assert given[0].causation_id == derive_id(a2, "TaskFailed", "write", 1)  # the result rated
    assert given[1].causation_id == derive_id(a1, "TaskSucceeded", "write", 1)
    assert len({e.id for e in given}) == 4
    assert all(events.subject_of(e) == f"ymera.fb.wf-a.{e.task_id}.given" for e in given)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log (no stream: every error is found before anything is published) of `_two_workflows`."""
    data = tmp_path_factory.mktemp("feedback") / "data"
    _append(data / "events.db", _two_workflows())
    return data


RATING = "is not a number from 0 (useless) to 1 (exactly right)"


@pytest.mark.parametrize(("args", "error"), [
    (["write", "--rating", "1.5"], f"rating 1.5 {RATING}"),
    (["write", "--rating", "-0.1"], f"rating -0.1 {RATING}"),
    (["write", "--rating", "good"], f"rating good {RATING}"),
    (["write", "--rating", "nan"], f"rating nan {RATING}"),
    (["nope", "--rating", "1"], "no task nope in any run in the event log {log}"),
    (["write", "--rating", "1"], "task write is in runs of 2 workflows (wf-a, wf-b): name the workflow"),
    (["write", "--rating", "1", "--run", "zz"], "no run zz has a task write (runs of workflows wf-a, wf-b do)"),
    (["write", "--rating", "1", "--workflow", "wf-a", "--run", "zz"],
     "workflow wf-a has no run zz (`ymera runs wf-a` lists them)"),
    (["write", "--rating", "1", "--workflow", "wf-z"], "no workflow wf-z in the event log {log}"),
    (["lint", "--rating", "1", "--workflow", "wf-b"],
     "workflow wf-b has no task lint in any run in the event log {log}"),
    (["lint", "--rating", "1", "--workflow", "wf-a", "--run", "a2"],
     "task lint of workflow wf-a has no result to rate: in run a2-run it is ready"),
    (["write", "--rating", "1", "--workflow", "wf-b"],
     "task write of workflow wf-b has no result to rate: in run b1-run it is ready"),
    (["write", "--rating", "1", "--workflow", "wf a"],
     "workflow id 'wf a' is not valid: an id is 1 to 128 letters, digits, '_' or '-', starting with a letter or "
     "digit (ids become NATS subject tokens)"),
])
def test_feedback_says_what_is_wrong_in_one_line(seeded: Path, args: list[str], error: str) -> None:
    result = ymera("feedback", *args, env=_env(seeded))
    assert (result.returncode, result.stderr, result.stdout) == (
        1, f"ymera: {error.format(log=seeded / 'events.db')}\n", "")


def test_feedback_without_a_log_says_where_it_looked(tmp_path: Path) -> None:
    result = ymera("feedback", "write", "--rating", "1", env=_env(tmp_path / "data"))
    assert (result.returncode, result.stderr) == (1, f"ymera: no event log at {tmp_path / 'data' / 'events.db'}\n")


# ---- the Python API, and `ymera models` after a real run ---------------------------------


async def test_record_feedback_rates_a_real_llm_result_and_models_shows_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with OpenAIServer(model="gpt-test") as server:
        env = {"YMERA_LLM_BASE_URL": server.base_url, "YMERA_LLM_MODEL": "gpt-test", "YMERA_LLM_API_KEY_1": "k1",
               "YMERA_DATA_DIR": str(data)}
        settings = load_settings(env, dotenv=None)
        orch = WorkflowOrchestrator(settings)
        with pytest.raises(ValueError, match=r"^rating 2 is not a number from 0 \(useless\) to 1 \(exactly right\)$"):
            await orch.record_feedback("ask", 2)  # refused before anything starts
        async with orch:
            result = await orch.execute_workflow("wf-llm", [Task("ask", task_type="llm", parameters={
                "prompt": "Say hello"})], timeout=60)
            assert result["status"] == "completed", result
            given = await orch.record_feedback("ask", 0.75, "clear enough")
            with pytest.raises(events.YmeraError, match=r"^no task nope in any run in the event log "):
                await orch.record_feedback("nope", 0.5)
    # On the embedded server the principal is this host's client key's (`local`), not the API's default.
    assert (given.workflow_id, given.run_id, given.task_id, given.rating, given.comment, given.principal,
            given.task_type, given.model) == ("wf-llm", result["run_id"], "ask", 0.75, "clear enough", "local",
                                              "llm", "local/gpt-test")
    async with store.SqliteEventLog(data / "events.db", readonly=True) as log:
        stored = await stored_events(log)
    assert [e.id for e in stored if isinstance(e, events.FeedbackGiven)] == [given.id]
    quality = next(e.overall for e in stored if isinstance(e, events.TaskAssessed))

    shown = await asyncio.to_thread(ymera, "models", "--json", env=_env(data, **env))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    [local] = [m for m in report["models"] if m["model"] == "local/gpt-test"]
    assert (local["calls"], local["failures"], local["scored"], local["quality"], local["rated"], local["rating"]) == (
        1, 0, 1, quality, 1, 0.75)
    assert report["keys"] == {"local": [{"key": "local:1", "disabled": None, "cooling_for": 0.0, "in_flight": 0,
                                         "calls_last_minute": 1}]}
    assert report["ratings"] == [{"agent": None, "task_type": "llm", "model": "local/gpt-test", "rating": 0.75,
                                  "rated": 1}]


# ---- ymera models ------------------------------------------------------------------------


def _measured(now: datetime) -> list[events.Event]:
    """openai/gpt-4o-mini: 3 calls that reached the model (100, 300 ms and a 200 ms server error;
    a 429 is no call of the model's), 2 results scored 0.6 and 0.8 (named as the answers named the
    model, with no provider), rated 0.9 by a person. Key openai:1 got a 429 a moment ago (Retry-After
    30), openai:2 has a call in flight, openai:3 was refused; a reservation two days old counts for nothing."""
    day = now - timedelta(days=2)
    a = (Run("wf-m", "m1-run", [WRITE], now - timedelta(seconds=5))
         .called("write", "openai", "gpt-4o-mini", latency_ms=100, key_id="openai:2", task_type="code_generation")
         .assessed("write", 0.6, model="gpt-4o-mini", task_type="code_generation")
         .called("lint", "openai", "gpt-4o-mini", latency_ms=300, key_id="openai:2")
         .assessed("lint", 0.8))
    b = (Run("wf-m", "m2-run", [WRITE], now - timedelta(seconds=2))
         .called("write", "openai", "gpt-4o-mini", latency_ms=200, outcome="server_error", cost_usd=0.0,
                 key_id="openai:2", task_type="code_generation")
         .called("write", "openai", "gpt-4o-mini", outcome="rate_limited", key_id="openai:1", retry_after=30.0,
                 cost_usd=None, call=2, ts=now, task_type="code_generation")
         .called("write", "openai", "gpt-4o-mini", outcome="auth", key_id="openai:3", cost_usd=None, call=3,
                 error="Incorrect API key provided", task_type="code_generation"))
    feedback = events.FeedbackGiven(id=events.new_id(), ts=now, workflow_id="wf-m", run_id="m1-run", task_id="write",
                                    rating=0.9, task_type="code_generation", agent="coding_agent",
                                    model="openai/gpt-4o-mini")
    groq = events.FeedbackGiven(id=events.new_id(), ts=now, workflow_id="wf-m", run_id="m1-run", task_id="write",
                                rating=0.4, task_type="code_generation", agent="coding_agent",
                                model="groq/llama-3.1-8b-instant")
    in_flight = events.CallReserved(id=events.new_id(), ts=now, workflow_id="wf-m", run_id="m3-run", task_id="t",
                                    attempt=1, provider="openai", model="gpt-4o-mini", key_id="openai:2",
                                    holds_until=now + timedelta(minutes=5))
    old = events.CallReserved(id=events.new_id(), ts=day, workflow_id="wf-m", run_id="m0-run", task_id="t",
                              attempt=1, provider="openai", model="gpt-4o-mini", key_id="openai:1",
                              holds_until=now + timedelta(days=1))  # stuck: in flight, were it folded
    return [old, *a.events[1:], *b.events[1:], feedback, groq, in_flight]


KEYS = {"OPENAI_API_KEY_1": "sk-one", "OPENAI_API_KEY_2": "sk-two", "OPENAI_API_KEY_3": "sk-three"}


def test_models_shows_measures_key_states_and_ratings_folded_from_the_log(tmp_path: Path) -> None:
    _append(tmp_path / "data" / "events.db", _measured(events.now()))
    env = _env(tmp_path / "data", **KEYS)

    text = ymera("models", env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[:2] == ["models", "model                      calls  failed  median ms  $ per call   $ total  "
                                   "quality (n)  rating (n)"]
    assert lines[2].split() == ["openai/gpt-4o-mini", "3", "33.3%", "200", "0.000667", "0.002000", "0.70", "(2)",
                                "0.90", "(1)"]
    assert lines[3].split() == ["groq/llama-3.1-8b-instant", "0", "-", "-", "-", "-", "-", "0.40", "(1)"]
    # Then the catalogue's models of the configured provider that the log has not seen.
    assert [line.split()[0] for line in lines[4:8]] == ["openai/gpt-4o", "openai/gpt-4.1-mini", "openai/gpt-4.1",
                                                        "openai/o3-mini"]
    assert all(len(line) <= len(lines[1]) for line in lines[1:8])  # aligned under the header
    keys = lines[lines.index("keys (the last day's reservations and calls)") + 1:]
    assert keys[0] == "provider  key       in flight  calls last min  state"
    assert keys[1].startswith("openai    openai:1          0               0  cooling down for ")
    assert 25 <= int(keys[1].split()[-2]) <= 30
    assert keys[2] == "openai    openai:2          1               1  ready"  # reservations count calls
    assert keys[3] == "openai    openai:3          0               0  refused: Incorrect API key provided"
    assert "sk-" not in text.stdout  # a key's id, never the key
    ratings = lines[lines.index("people's ratings by agent and task type") + 1:]
    assert ratings == ["agent         task type        model                      rating (n)",
                       "coding_agent  code_generation  openai/gpt-4o-mini         0.90 (1)",
                       "coding_agent  code_generation  groq/llama-3.1-8b-instant  0.40 (1)"]

    machine = ymera("models", "--json", env=env)
    assert machine.returncode == 0, machine.stderr
    report = json.loads(machine.stdout)
    first = report["models"][0]
    assert first == {"model": "openai/gpt-4o-mini", "configured": True, "calls": 3, "failures": 1,
                     "failure_rate": 0.3333, "latency_ms": 200.0, "cost_usd": 0.002, "cost_per_call_usd": 0.0006666667,
                     "quality": pytest.approx(0.7), "scored": 2, "rating": 0.9, "rated": 1}
    assert report["models"][1]["configured"] is False  # groq is not configured here
    # Per task type: the calls and the score that named it (the other call and score named none).
    [typed] = [m for m in report["by_task_type"] if m["model"] == "openai/gpt-4o-mini"]
    assert (typed["model"], typed["task_type"], typed["calls"], typed["scored"], typed["quality"], typed["rated"]) == (
        "openai/gpt-4o-mini", "code_generation", 2, 1, 0.6, 1)
    openai = report["keys"]["openai"]
    assert [(k["key"], k["disabled"], k["in_flight"], k["calls_last_minute"]) for k in openai] == [
        ("openai:1", None, 0, 0), ("openai:2", None, 1, 1), ("openai:3", "Incorrect API key provided", 0, 0)]
    assert 25 <= openai[0]["cooling_for"] <= 30
    assert report["configured"] == ["openai"]


def test_a_refused_key_that_answered_since_is_not_shown_refused(tmp_path: Path) -> None:
    now = events.now()
    run = (Run("wf-k", "k1-run", [WRITE], now - timedelta(seconds=10))
           .called("write", "openai", "gpt-4o-mini", outcome="auth", key_id="openai:1", error="bad key")
           .called("write", "openai", "gpt-4o-mini", key_id="openai:1", call=2, ts=now))
    _append(tmp_path / "data" / "events.db", run.events[1:])
    report = json.loads(ymera("models", "--json", env=_env(tmp_path / "data", OPENAI_API_KEY_1="sk")).stdout)
    assert report["keys"]["openai"][0]["disabled"] is None


def test_models_with_nothing_configured_and_nothing_recorded_says_what_to_set(tmp_path: Path) -> None:
    result = ymera("models", env=_env(tmp_path / "data"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"ymera: no models to show: the event log {tmp_path / 'data' / 'events.db'} records "
                             f"no model calls, and {llm.NO_LLM}\n")


def test_models_with_a_log_but_no_provider_shows_the_log_and_what_to_set(tmp_path: Path) -> None:
    _append(tmp_path / "data" / "events.db", _measured(events.now()))
    result = ymera("models", env=_env(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split()[0] == "openai/gpt-4o-mini"
    assert f"keys: {llm.NO_LLM}" in result.stdout.splitlines()


def test_models_into_a_reader_gone_before_it_writes_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runner", "models"], env=_env(tmp_path, **KEYS),
                            cwd=Path(runner.__file__).parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc:
        proc.stdout.close()  # `ymera models | head` whose head has gone
        assert proc.wait(60) == runner.EXIT_BROKEN_PIPE
        assert proc.stderr.read() == b""
