"""Contract tests of each wire format: `llm.LLMClient` against a local server that speaks the
format exactly (tests/llm_server.py): the request it sends, the answer it reads (streamed or
not), and every failure normalised to one kind with the provider's own words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import msgspec
import pytest

import llm
from config import Settings, load_settings
from tests.llm_server import LLMServer

# One provider per format, with a model the shipped catalogue prices.
CASES = {
    "openai": ("groq", "GROQ", "llama-3.1-8b-instant"),
    "anthropic": ("anthropic", "ANTHROPIC", "claude-3-5-haiku-20241022"),
    "gemini": ("gemini", "GEMINI", "gemini-2.0-flash"),
    "cohere": ("cohere", "COHERE", "command-r-08-2024"),
}
STREAMING = ("openai", "anthropic", "gemini")
MESSAGES = (llm.Message("system", "Be terse."), llm.Message("user", "Name a colour"))


@pytest.fixture(params=list(CASES))
def server(request: pytest.FixtureRequest) -> Iterator[LLMServer]:
    with LLMServer(request.param, api_keys={"k1", "k2"}) as srv:
        yield srv


def settings_for(server: LLMServer, *keys: str) -> Settings:
    _, env, _ = CASES[server.wire]
    values = {f"{env}_BASE_URL": server.base_url}
    values.update((f"{env}_API_KEY_{n}", key) for n, key in enumerate(keys or ("k1",), 1))
    return load_settings(values, dotenv=None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with llm.http_client(8) as session:
        yield session


def client_for(server: LLMServer, http: aiohttp.ClientSession, *keys: str) -> tuple[llm.LLMClient, llm.Target]:
    provider, _, model = CASES[server.wire]
    client = llm.LLMClient(http, llm.Models(settings_for(server, *keys), llm.Catalogue.load()))
    return client, client.models.resolve(f"{provider}/{model}")


async def complete(server: LLMServer, http: aiohttp.ClientSession, *, stream: bool = False,
                   **kwargs: Any) -> tuple[llm.Reply, llm.Call]:
    client, target = client_for(server, http)
    return await client.complete(target, MESSAGES, stream=stream, **kwargs)


async def failure(server: LLMServer, http: aiohttp.ClientSession, *, stream: bool = False) -> tuple[llm.LLMError,
                                                                                                     llm.Call]:
    client, target = client_for(server, http)
    with llm.recording() as record, pytest.raises(llm.LLMError) as caught:
        await client.complete(target, MESSAGES, stream=stream)
    [call] = record.calls
    return caught.value, call


async def test_a_reply_is_read_with_its_usage_cost_and_a_record_of_the_call(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.reply("Blue is calm")
    with llm.recording() as record:
        reply, call = await complete(server, http, temperature=0.5)
    provider, _, model = CASES[server.wire]
    assert (reply.text, reply.finish, reply.tokens_in, reply.tokens_out) == ("Blue is calm", "stop", 5, 3)
    assert record.calls == [call]
    info = llm.Catalogue.load().get(provider, model)
    assert info is not None
    assert (call.provider, call.model, call.key_id, call.outcome, call.status) == (provider, model,
                                                                                   f"{provider}:1", "ok", 200)
    assert (call.tokens_in, call.tokens_out, call.finish_reason) == (5, 3, "stop")
    assert call.cost_usd == info.cost(5, 3)
    assert call.cost_usd is not None
    assert call.cost_usd > 0
    assert call.latency_ms > 0
    assert call.response is not None
    assert "Blue is calm" in call.response  # the body as it came: a replay reads it again
    assert llm.WIRES[llm.PROVIDERS[provider].wire].reply(call.response.encode(), "recorded", False) == reply


def test_each_format_shapes_its_request_as_the_provider_documents() -> None:
    request = llm.Request(model="m-1", messages=MESSAGES, max_tokens=100, temperature=0.5)
    shapes = {name: wire.request("https://api.example/v9", "KEY", request) for name, wire in llm.WIRES.items()}
    body = {name: msgspec.json.decode(r.body) for name, r in shapes.items()}

    assert shapes["openai"].url == "https://api.example/v9/chat/completions"
    assert shapes["openai"].headers["Authorization"] == "Bearer KEY"
    assert body["openai"] == {"model": "m-1", "max_tokens": 100, "temperature": 0.5, "messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a colour"}]}

    assert shapes["anthropic"].url == "https://api.example/v9/messages"
    assert (shapes["anthropic"].headers["x-api-key"], shapes["anthropic"].headers["anthropic-version"]) == (
        "KEY", "2023-06-01")
    assert body["anthropic"] == {"model": "m-1", "max_tokens": 100, "temperature": 0.5, "system": "Be terse.",
                                 "messages": [{"role": "user", "content": "Name a colour"}]}

    assert shapes["gemini"].url == "https://api.example/v9/models/m-1:generateContent"
    assert shapes["gemini"].headers["x-goog-api-key"] == "KEY"
    assert body["gemini"] == {"contents": [{"role": "user", "parts": [{"text": "Name a colour"}]}],
                              "systemInstruction": {"parts": [{"text": "Be terse."}]},
                              "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5}}

    assert shapes["cohere"].url == "https://api.example/v9/chat"
    assert shapes["cohere"].headers["Authorization"] == "Bearer KEY"
    assert body["cohere"] == {"model": "m-1", "stream": False, "max_tokens": 100, "temperature": 0.5, "messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a colour"}]}

    streamed = {name: llm.WIRES[name].request("https://api.example/v9", None, msgspec.structs.replace(
        request, stream=True)) for name in STREAMING}
    assert msgspec.json.decode(streamed["openai"].body)["stream_options"] == {"include_usage": True}
    assert msgspec.json.decode(streamed["anthropic"].body)["stream"] is True
    assert streamed["gemini"].url == "https://api.example/v9/models/m-1:streamGenerateContent?alt=sse"
    assert all("Authorization" not in r.headers and "x-api-key" not in r.headers for r in streamed.values())


@pytest.mark.parametrize("wire", STREAMING)
async def test_a_streamed_reply_reads_the_same_as_a_whole_one(wire: str, http: aiohttp.ClientSession) -> None:
    with LLMServer(wire, api_keys={"k1"}) as srv:
        srv.reply("Green like spring grass")
        streamed, call = await complete(srv, http, stream=True)
        srv.reply("Green like spring grass")
        whole, _ = await complete(srv, http)
    assert streamed == whole
    assert (streamed.text, streamed.finish, streamed.tokens_out) == ("Green like spring grass", "stop", 4)
    assert call.response is not None
    assert call.response.startswith(("data: ", "event: "))


@pytest.mark.parametrize("wire", STREAMING)
async def test_a_stream_cut_off_at_the_token_limit_is_cut_off(wire: str, http: aiohttp.ClientSession) -> None:
    with LLMServer(wire, api_keys={"k1"}) as srv:
        srv.cut_off("def fib(n):")
        with pytest.raises(llm.LLMError) as caught:
            await complete(srv, http, stream=True, max_tokens=2)
    assert (caught.value.kind, caught.value.retryable) == ("cut_off", True)
    assert str(caught.value).endswith("the model stopped at its token limit after 2 tokens (max_tokens 2): the "
                                      "answer is incomplete")


async def test_an_answer_cut_off_at_the_token_limit_fails_as_cut_off_and_counts_its_tokens(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.cut_off("def fib(n):\n    if n < 2:")
    error, call = await failure(server, http)
    assert (error.kind, error.retryable) == ("cut_off", True)
    assert "the model stopped at its token limit after 6 tokens" in str(error)
    assert (call.outcome, call.finish_reason, call.tokens_out) == ("cut_off", "length", 6)
    assert call.cost_usd is not None
    assert call.cost_usd > 0  # the tokens were paid for


async def test_a_filtered_answer_is_content_filtered_and_not_retried(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.filtered()
    error, call = await failure(server, http)
    assert (error.kind, error.retryable, call.outcome) == ("content_filtered", False, "content_filtered")


async def test_a_gemini_prompt_blocked_outright_is_content_filtered(http: aiohttp.ClientSession) -> None:
    with LLMServer("gemini", api_keys={"k1"}) as srv:
        srv.raw(b'{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "modelVersion": "g"}')
        error, _ = await failure(srv, http)
    assert (error.kind, error.retryable) == ("content_filtered", False)
    assert str(error) == (f"{srv.base_url}/models/gemini-2.0-flash:generateContent blocked the prompt "
                          "(promptFeedback.blockReason SAFETY)")


RATE_MESSAGES = {
    "openai": "Rate limit reached for model llama-3.1-8b-instant in organization org_1 on requests per minute (RPM)",
    "anthropic": "This request would exceed the rate limit for your organization of 50 requests per minute.",
    "gemini": "Resource has been exhausted (e.g. check quota).",
    "cohere": "You are using a Trial key, which is limited to 20 API calls / minute.",
}


async def test_429_is_rate_limited_with_the_retry_after_and_the_providers_words(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.rate_limit(retry_after="7", message=RATE_MESSAGES[server.wire])
    error, call = await failure(server, http)
    assert (error.kind, error.retryable, error.retry_after, error.status) == ("rate_limited", True, 7.0, 429)
    assert str(error).endswith(f"rate limited the request (HTTP 429): {RATE_MESSAGES[server.wire]}; retry after 7s")
    assert (call.outcome, call.retry_after_seconds, call.status) == ("rate_limited", 7.0, 429)


async def test_gemini_says_how_long_to_wait_in_its_retry_info_when_no_header_does(
        http: aiohttp.ClientSession) -> None:
    body = {"error": {"code": 429, "message": "You exceeded your current quota for requests per minute.",
                      "status": "RESOURCE_EXHAUSTED", "details": [
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}
    with LLMServer("gemini", api_keys={"k1"}) as srv:
        srv.raw(msgspec.json.encode(body), status=429)
        error, _ = await failure(srv, http)
    assert (error.kind, error.retry_after) == ("rate_limited", 37.0)


QUOTA = {"openai": "You exceeded your current quota, please check your plan and billing details.",
         "anthropic": "Your credit balance is too low to access the Anthropic API.",
         "gemini": "Quota exceeded for metric: generate_content_free_tier_requests, limit: 250, PerDay",
         "cohere": "You have exceeded your daily limit of trial API calls."}


async def test_a_used_up_quota_is_quota_not_a_rate_limit(server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.fail("quota", QUOTA[server.wire])
    error, _ = await failure(server, http)
    assert error.kind == "quota"
    assert error.retry_after is None
    assert not error.retryable  # one key, used up: retrying it cannot help
    assert str(error).endswith(f"says the quota is used up (HTTP {error.status}): {QUOTA[server.wire]}")


async def test_a_refused_key_is_auth(server: LLMServer, http: aiohttp.ClientSession) -> None:
    client, target = client_for(server, http, "wrong")
    with pytest.raises(llm.LLMError) as caught:
        await client.complete(target, MESSAGES)
    error = caught.value
    assert error.kind == "auth"
    assert error.status in (400, 401)  # Gemini says 400 API_KEY_INVALID
    assert "refused the key" in str(error)
    with pytest.raises(llm.LLMError) as again:
        await client.complete(target, MESSAGES)
    assert (again.value.kind, again.value.retryable) == ("auth", False)
    assert "every key was refused by the provider" in str(again.value)
    assert len(server.requests) == 1  # a refused key is not called again


CONTEXT = {"openai": "This model's maximum context length is 131072 tokens. However, your messages resulted in "
                     "140000 tokens. Please reduce the length of the messages.",
           "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
           "gemini": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
           "cohere": "too many tokens: size limit exceeded by 11000 tokens. Try using shorter or fewer inputs."}


async def test_a_prompt_over_the_context_window_is_context_too_long(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.fail("context", CONTEXT[server.wire])
    error, _ = await failure(server, http)
    assert (error.kind, error.retryable, error.status) == ("context_too_long", False, 400)
    assert str(error).endswith(f"says the prompt is too long for the model (HTTP 400): {CONTEXT[server.wire]}")


async def test_a_server_error_and_an_overload_are_retryable_server_errors(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.error(500, "Internal server error")
    server.fail("overloaded", "Overloaded")
    first, _ = await failure(server, http)
    second, _ = await failure(server, http)
    assert (first.kind, first.retryable, first.status) == ("server_error", True, 500)
    assert str(first).endswith("failed (HTTP 500): Internal server error")
    assert (second.kind, second.retryable, second.status) == ("server_error", True,
                                                               529 if server.wire == "anthropic" else 503)


async def test_malformed_json_is_a_retryable_server_error(server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.invalid_json()
    error, call = await failure(server, http)
    assert (error.kind, error.retryable) == ("server_error", True)
    assert "sent a malformed" in str(error)
    assert "truncated" in str(error)
    assert call.response == '{"id": "broken", "choices": ['


async def test_a_connection_cut_mid_answer_is_a_retryable_server_error(
        server: LLMServer, http: aiohttp.ClientSession) -> None:
    server.cut()
    error, call = await failure(server, http)
    assert (error.kind, error.retryable) == ("server_error", True)
    assert str(error).startswith("connection cut: ")
    assert "closed it before the answer was complete" in str(error)
    assert call.outcome == "server_error"


async def test_a_server_slower_than_the_clients_timeout_is_a_retryable_timeout(server: LLMServer) -> None:
    server.hang()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.3)) as slow_client:
        error, _ = await failure(server, slow_client)
    assert (error.kind, error.retryable) == ("timeout", True)
    assert str(error).endswith("did not answer in time (SocketTimeoutError)")
