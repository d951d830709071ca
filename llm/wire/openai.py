"""OpenAI's chat completions (`POST {base}/chat/completions`), streamed or not: OpenAI itself,
every provider that speaks the same format (Groq, Mistral, DeepSeek, Together, Fireworks,
OpenRouter, Cerebras, SambaNova, Hugging Face, xAI) and local servers (Ollama, llama.cpp, vLLM)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import ErrorKind, LLMError
from .._types import Finish, HttpRequest, Reply, Request
from ._common import classify, decode_json, one_line, provider_message, sse_data

__all__ = ["OpenAIChat"]

_FINISH: dict[str, Finish] = {"stop": "stop", "length": "length", "content_filter": "content_filter",
                              "tool_calls": "tool_calls", "function_call": "tool_calls", "eos": "stop"}
_CODES: dict[str, ErrorKind] = {"context_length_exceeded": "context_too_long", "insufficient_quota": "quota",
                                "invalid_api_key": "auth", "rate_limit_exceeded": "rate_limited"}


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    model: str | None = None
    usage: _Usage | None = None
    error: Any = None  # a stream may end with an error object instead of a chunk


_completion = msgspec.json.Decoder(_Completion)


class OpenAIChat:
    name = "openai"

    def request(self, base_url: str, key: str | None, req: Request) -> HttpRequest:
        body: dict[str, Any] = {"model": req.model,
                                "messages": [{"role": m.role, "content": m.content} for m in req.messages]}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return HttpRequest(f"{base_url}/chat/completions", headers, msgspec.json.encode(body))

    def reply(self, content: bytes, where: str, stream: bool) -> Reply:
        if stream:
            return self._stream(content, where)
        try:
            completion = _completion.decode(content)
        except msgspec.DecodeError as exc:
            raise _malformed(where, one_line(str(exc))) from exc
        choice = completion.choices[0] if completion.choices else None
        text = choice.message.content if choice is not None and choice.message is not None else None
        if choice is None or text is None:
            raise _malformed(where, "no choices with message content")
        return _reply(text, choice.finish_reason, completion.usage, completion.model)

    def _stream(self, content: bytes, where: str) -> Reply:
        parts: list[str] = []
        finish: str | None = None
        usage: _Usage | None = None
        model = None
        done = False
        for data in sse_data(content):
            if data.strip() == b"[DONE]":
                done = True
                break
            try:
                chunk = _completion.decode(data)
            except msgspec.DecodeError as exc:
                raise _malformed(where, f"a stream chunk is not a completion chunk: {one_line(str(exc))}") from exc
            if chunk.error is not None:
                text = provider_message(data, None)
                raise LLMError("server_error", f"{where} failed mid-stream: {text}")
            model = chunk.model or model
            usage = chunk.usage or usage
            for choice in chunk.choices[:1]:
                if choice.delta is not None and choice.delta.content:
                    parts.append(choice.delta.content)
                finish = choice.finish_reason or finish
        if not done and finish is None:
            raise LLMError("server_error", f"{where} ended the stream before the answer was complete "
                           f"({len(parts)} chunks, no finish reason)")
        return _reply("".join(parts), finish, usage, model)

    def error(self, status: int, reason: str | None, headers: Mapping[str, str], content: bytes,
              where: str) -> LLMError:
        code = None
        body = decode_json(content)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = error.get("code") if isinstance(error.get("code"), str) else error.get("type")
        return classify(status, provider_message(content, reason), headers, where, _CODES,
                        code if isinstance(code, str) else None)


def _reply(text: str, finish: str | None, usage: _Usage | None, model: str | None) -> Reply:
    return Reply(text=text, finish=_FINISH.get(finish or "stop", "other"),
                 tokens_in=(usage.prompt_tokens or 0) if usage else 0,
                 tokens_out=(usage.completion_tokens or 0) if usage else 0, model=model)


def _malformed(where: str, detail: str) -> LLMError:
    return LLMError("server_error", f"{where} sent a malformed completion: {detail}")
