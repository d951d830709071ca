"""LLM and agent tasks through the executor's handler, against a real local server speaking OpenAI's
wire format (the local YMERA_LLM_* provider): the request shape, errors as the distributor sees
them, and the local provider's key pool."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

import llm as ai
from actors.executor import Outcome, TaskError, context, run_task
from actors.executor._llm import DEFAULT_SYSTEM
from actors.registry import TASK_KINDS, Context
from config import BUILTIN_AGENTS as AGENTS
from config import Settings, load_settings
from events import TaskSpec
from tests.llm_server import OpenAIServer
from tests.support import attempt


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def settings_for(base_url: str, *keys: str, model: str = "gpt-test") -> Settings:
    env = {"YMERA_LLM_BASE_URL": base_url, "YMERA_LLM_MODEL": model}
    env.update((f"YMERA_LLM_API_KEY_{n}", key) for n, key in enumerate(keys, 1))
    return load_settings(env, dotenv=None)


def llm(prompt: str = "Say hello", **parameters: Any) -> TaskSpec:
    return TaskSpec(id="t", type="llm", parameters={"prompt": prompt, **parameters})


async def failure(spec: TaskSpec, settings: Settings, *, timeout: float = 10.0,
                  ctx: Context | None = None) -> TaskError:
    with pytest.raises(TaskError) as caught:
        await attempt(spec, {}, settings, timeout=timeout, ctx=ctx)
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_completion_gives_the_content_the_model_and_the_token_usage(server: OpenAIServer) -> None:
    server.reply("Hello there, friend")
    outcome = await attempt(llm(), {}, settings_for(server.base_url, "k1"), timeout=10)
    assert outcome == Outcome(output="Hello there, friend", model="local/gpt-test", cost_usd=0.0,
                              usage={"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer k1"
    assert request.body == {"model": "gpt-test", "messages": [
        {"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": "Say hello"}]}


async def test_an_llm_task_uses_its_own_system_model_and_sampling_parameters(server: OpenAIServer) -> None:
    spec = TaskSpec(id="t", type="llm", description="Name {{ tasks.a.output }}",
                    parameters={"system": "Be terse.", "model": "other", "temperature": 0, "max_tokens": 5})
    outcome = await attempt(spec, {"a": "a colour"}, settings_for(server.base_url), timeout=10)
    assert (outcome.output, outcome.model) == ("ok: Name a colour", "local/other")
    assert server.requests[0].body == {
        "model": "other", "temperature": 0, "max_tokens": 5,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a colour"}]}
    assert "authorization" not in server.requests[0].headers


async def test_a_tasks_own_price_wins_and_the_local_server_costs_nothing(server: OpenAIServer) -> None:
    settings = settings_for(server.base_url)
    priced = await attempt(llm(cost_per_1k_tokens=2.0), {}, settings, timeout=10)
    unpriced = await attempt(llm(), {}, settings, timeout=10)
    assert priced.cost_usd == priced.usage["total_tokens"] * 2.0 / 1000
    assert unpriced.cost_usd == 0.0
    custom = await attempt(llm(base_url=server.base_url + "/", model="m"), {}, settings_for("http://other.example/v1"))
    assert custom.cost_usd is None  # a task's own endpoint: no catalogue price, not ours to say it is free


async def test_the_configured_keys_are_never_sent_to_a_tasks_own_base_url(server: OpenAIServer) -> None:
    settings = settings_for("https://configured.example/v1", "secret-key")
    await attempt(llm(base_url=server.base_url, model="m"), {}, settings, timeout=10)
    assert "authorization" not in server.requests[0].headers


async def test_429_is_rate_limited_and_retryable_after_the_servers_retry_after(server: OpenAIServer) -> None:
    server.rate_limit(retry_after="7")
    error = await failure(llm(), settings_for(server.base_url, "k1"))
    assert (error.kind, error.retryable, error.retry_after) == ("rate_limited", True, 7.0)
    assert str(error) == (f"{server.base_url}/chat/completions rate limited the request (HTTP 429): "
                          "Rate limit reached for requests; retry after 7s")


async def test_a_retry_after_given_as_an_http_date_is_read_as_seconds_from_now(server: OpenAIServer) -> None:
    server.rate_limit(retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True))
    error = await failure(llm(), settings_for(server.base_url))
    assert error.kind == "rate_limited"
    assert error.retry_after is not None
    assert 115 <= error.retry_after <= 120


async def test_a_429_without_retry_after_leaves_the_wait_to_the_distributor(server: OpenAIServer) -> None:
    server.rate_limit(retry_after=None, message="Slow down")
    settings = settings_for(server.base_url, "k1")
    async with context(settings, 8) as ctx:
        error = await failure(llm(), settings, ctx=ctx)
        assert (error.kind, error.retry_after) == ("rate_limited", None)
        assert str(error) == f"{server.base_url}/chat/completions rate limited the request (HTTP 429): Slow down"
        # The key rests the default while: the next attempt is refused before any request.
        again = await failure(llm(), settings, ctx=ctx)
    assert again.kind == "rate_limited"
    assert again.retry_after is not None
    assert 0 < again.retry_after <= ai.DEFAULT_COOLDOWN_SECONDS
    assert str(again).startswith("local: every key is cooling down or at its limit for gpt-test; the first is free in ")
    assert len(server.requests) == 1


async def test_keys_rotate_per_request_and_a_rate_limited_key_rests_until_its_retry_after(
        server: OpenAIServer) -> None:
    settings = settings_for(server.base_url, "k1", "k2")
    async with context(settings, 8) as ctx:
        for _ in range(3):
            await attempt(llm(), {}, settings, ctx=ctx)
        server.rate_limit(retry_after="30")
        error = await failure(llm(), settings, ctx=ctx)
        assert (error.kind, error.retry_after) == ("rate_limited", 30.0)
        await attempt(llm(), {}, settings, ctx=ctx)
        await attempt(llm(), {}, settings, ctx=ctx)
        [k1, k2] = ctx.llm.pools["local"].state()
    used = [request.headers["authorization"].removeprefix("Bearer ") for request in server.requests]
    assert used == ["k1", "k2", "k1", "k2", "k1", "k1"]
    assert (k1["key"], k1["cooling_for"], k2["key"]) == ("local:1", 0.0, "local:2")
    assert 29 < float(k2["cooling_for"]) <= 30  # type: ignore[arg-type]


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert ai.retry_after_seconds("1.5") == 1.5
    assert ai.retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert ai.retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert ai.retry_after_seconds("soon") is None
    assert ai.retry_after_seconds(None) is None
    assert ai.retry_after_seconds("1500", milliseconds=True) == 1.5


async def test_a_server_error_is_retryable(server: OpenAIServer) -> None:
    server.error(500)
    error = await failure(llm(), settings_for(server.base_url))
    assert (error.kind, error.retryable, error.retry_after) == ("server_error", True, None)
    assert str(error) == (f"{server.base_url}/chat/completions failed (HTTP 500): "
                          "The server had an error while processing your request.")


async def test_an_answer_cut_off_at_the_token_limit_is_a_retryable_failure_not_a_success(
        server: OpenAIServer) -> None:
    server.cut_off("def fib(n):\n    if n < 2:")
    error = await failure(llm(max_tokens=8), settings_for(server.base_url))
    assert (error.kind, error.retryable, error.retry_after, error.model) == ("cut_off", True, None, "local/gpt-test")
    assert str(error) == (f"{server.base_url}/chat/completions: the model stopped at its token limit after 6 "
                          "tokens (max_tokens 8): the answer is incomplete")


async def test_a_refused_request_is_not_retryable_and_quotes_the_provider(server: OpenAIServer) -> None:
    server.error(400, "'messages' must contain at least one message.")
    error = await failure(llm(), settings_for(server.base_url))
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert str(error) == (f"{server.base_url}/chat/completions refused the request (HTTP 400): "
                          "'messages' must contain at least one message.")


async def test_a_prompt_over_the_context_window_is_its_own_kind_and_not_retried(server: OpenAIServer) -> None:
    server.fail("context", "This model's maximum context length is 8192 tokens. However, your messages "
                           "resulted in 9000 tokens.")
    error = await failure(llm(), settings_for(server.base_url))
    assert (error.kind, error.retryable) == ("context_too_long", False)
    assert str(error).startswith(f"{server.base_url}/chat/completions says the prompt is too long for the model "
                                 "(HTTP 400): This model's maximum context length is 8192 tokens.")


async def test_a_refused_key_is_retried_only_while_another_key_is_left() -> None:
    with OpenAIServer(api_keys={"right"}) as srv:
        settings = settings_for(srv.base_url, "wrong", "right")
        async with context(settings, 8) as ctx:
            error = await failure(llm(), settings, ctx=ctx)
            assert (error.kind, error.retryable) == ("auth", True)
            assert str(error) == (f"{srv.base_url}/chat/completions refused the key (HTTP 401): "
                                  "Incorrect API key provided.")
            outcome = await attempt(llm(), {}, settings, ctx=ctx)  # the refused key is out of turn
            assert outcome.output == "ok: Say hello"
            await attempt(llm(), {}, settings, ctx=ctx)
        lone = await failure(llm(), settings_for(srv.base_url, "wrong"))
    assert [r.headers["authorization"] for r in srv.requests] == ["Bearer wrong", "Bearer right", "Bearer right",
                                                                  "Bearer wrong"]
    assert (lone.kind, lone.retryable) == ("auth", False)


async def test_a_long_provider_message_is_cut_to_200_characters_on_one_line(server: OpenAIServer) -> None:
    server.error(422, "bad\nvalue " * 100)
    error = await failure(llm(), settings_for(server.base_url))
    quoted = str(error).split("(HTTP 422): ", 1)[1]
    assert len(quoted) == 200
    assert quoted.startswith("bad value bad value")
    assert quoted.endswith("…")
    assert "\n" not in str(error)


async def test_a_server_that_does_not_answer_within_the_clients_timeout_is_a_retryable_timeout(
        server: OpenAIServer) -> None:
    server.hang()
    settings = settings_for(server.base_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.3)) as http:
        client = ai.LLMClient(http, ai.Models(settings, ai.Catalogue.load()))
        with pytest.raises(TaskError) as caught:
            await run_task(llm(), {}, Context(settings, http, client), timeout=10)
    error = caught.value
    assert (error.kind, error.retryable) == ("timeout", True)
    assert str(error) == f"{server.base_url}/chat/completions did not answer in time (SocketTimeoutError)"


async def test_a_server_that_does_not_answer_within_the_task_time_limit_is_a_timeout(server: OpenAIServer) -> None:
    server.hang()
    error = await failure(llm(), settings_for(server.base_url), timeout=0.3)
    assert (error.kind, error.retryable, str(error)) == ("timeout", True, "timed out after 0.3s")


async def test_a_refused_connection_is_a_retryable_server_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    error = await failure(llm(), settings_for(url))
    assert (error.kind, error.retryable) == ("server_error", True)
    assert str(error) == f"connection failed: {url}/chat/completions: connection refused"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id": "chatcmpl-broken", "choices": [', "Input data was truncated"),
        (b'{"id": "chatcmpl-1", "object": "chat.completion"}', "no choices with message content"),
        (b'{"choices": []}', "no choices with message content"),
        (b'{"choices": [{"message": {"role": "assistant", "content": null}}]}', "no choices with message content"),
    ],
)
async def test_a_malformed_completion_is_a_retryable_server_error(
        server: OpenAIServer, payload: bytes, reason: str) -> None:
    server.raw(payload)
    error = await failure(llm(), settings_for(server.base_url))
    assert (error.kind, error.retryable) == ("server_error", True)
    assert str(error) == f"{server.base_url}/chat/completions sent a malformed completion: {reason}"


async def test_an_agent_task_sends_its_role_task_parameters_and_dependency_outputs(server: OpenAIServer) -> None:
    server.reply("LGTM")
    spec = TaskSpec(id="review", type="code_review", agent="reviewer",
                    description="Review {{ tasks.write.output }} for bugs.",
                    parameters={"language": "python", "temperature": 0.2, "max_tokens": 500},
                    dependencies=["write", "plan"])
    inputs = {"write": "def add(a, b):\n    return a - b", "plan": {"functions": ["add"]}}
    settings = settings_for(server.base_url + "/", "k1", "k2")
    outcome = await attempt(spec, inputs, settings, timeout=10)

    assert (outcome.output, outcome.model) == ("LGTM", "local/gpt-test")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer k1"
    assert request.headers["content-type"] == "application/json"
    system = f"{AGENTS['reviewer'].role}\n\nYour task is code_review: {TASK_KINDS['code_review'].description}"
    assert request.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user",
             "content": "Review def add(a, b):\n    return a - b for bugs.\n\n"
                        "Parameters:\n- language: python\n\n"
                        "Output of task write:\ndef add(a, b):\n    return a - b\n\n"
                        'Output of task plan:\n{"functions":["add"]}'},
        ],
        "temperature": 0.2,
        "max_tokens": 500,
    }


async def test_an_agent_task_without_a_known_agent_is_a_bad_request() -> None:
    spec = TaskSpec(id="t", type="analysis", agent="wizard", description="Analyse")
    error = await failure(spec, settings_for("https://llm.example/v1"))
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert str(error) == ("analysis task needs an agent; built-in agents: analyst, architect, coding_agent, "
                          "developer, researcher, reviewer, tester, writer; got 'wizard'")


def test_an_endpoint_shows_its_key_ids_never_its_keys() -> None:
    settings = load_settings({"GROQ_API_KEY_1": "gsk-secret-one", "GROQ_API_KEY_2": "gsk-secret-two"}, dotenv=None)
    groq = ai.endpoints(settings)["groq"]
    assert repr(groq) == f"Endpoint('groq', {groq.base_url!r}, keys=['groq:1', 'groq:2'])"
    assert "secret" not in repr(ai.endpoints(settings))
