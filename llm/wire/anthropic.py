"""Anthropic's Messages API (`POST {base}/messages`, `x-api-key`, `anthropic-version`), streamed or not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import ErrorKind, LLMError
from .._types import Finish, HttpRequest, Reply, Request
from ._common import classify, decode_json, one_line, provider_message, sse_data

__all__ = ["VERSION", "AnthropicMessages"]

VERSION = "2023-06-01"
# Messages needs max_tokens; when neither the task nor the catalogue gives one.
DEFAULT_MAX_TOKENS = 4096

_FINISH: dict[str, Finish] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                              "tool_use": "tool_calls", "refusal": "content_filter"}
_CODES: dict[str, ErrorKind] = {"authentication_error": "auth", "permission_error": "auth",
                                "rate_limit_error": "rate_limited", "overloaded_error": "server_error",
                                "api_error": "server_error", "billing_error": "quota",
                                "request_too_large": "context_too_long"}


class _Block(msgspec.Struct):
    type: str
    text: str | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = 0
    output_tokens: int | None = 0


class _Message(msgspec.Struct):
    content: list[_Block]
    stop_reason: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    stop_reason: str | None = None


class _StreamEvent(msgspec.Struct):
    type: str
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: Any = None


_message = msgspec.json.Decoder(_Message)
_event = msgspec.json.Decoder(_StreamEvent)


class AnthropicMessages:
    name = "anthropic"

    def request(self, base_url: str, key: str | None, req: Request) -> HttpRequest:
        body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
                                "messages": [{"role": m.role, "content": m.content} for m in req.turns]}
        if req.system is not None:
            body["system"] = req.system
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)  # Messages takes 0..1
        if req.stream:
            body["stream"] = True
        headers = {"Content-Type": "application/json", "anthropic-version": VERSION}
        if key:
            headers["x-api-key"] = key
        return HttpRequest(f"{base_url}/messages", headers, msgspec.json.encode(body))

    def reply(self, content: bytes, where: str, stream: bool) -> Reply:
        if stream:
            return self._stream(content, where)
        try:
            message = _message.decode(content)
        except msgspec.DecodeError as exc:
            raise _malformed(where, one_line(str(exc))) from exc
        return _reply(message.content, message.stop_reason, message.usage, message.model)

    def _stream(self, content: bytes, where: str) -> Reply:
        blocks: list[_Block] = []
        stop = model = None
        usage_in = usage_out = 0
        ended = False
        for data in sse_data(content):
            try:
                event = _event.decode(data)
            except msgspec.DecodeError as exc:
                raise _malformed(where, f"a stream event is not a Messages event: {one_line(str(exc))}") from exc
            if event.type == "error":
                raise LLMError("server_error", f"{where} failed mid-stream: {provider_message(data, None)}")
            if event.type == "message_start" and event.message is not None:
                model = event.message.model
                usage_in = (event.message.usage.input_tokens or 0) if event.message.usage else 0
            elif event.type == "content_block_delta" and event.delta is not None and event.delta.text:
                blocks.append(_Block("text", event.delta.text))
            elif event.type == "message_delta":
                stop = (event.delta.stop_reason if event.delta else None) or stop
                usage_out = (event.usage.output_tokens or 0) if event.usage else usage_out
            elif event.type == "message_stop":
                ended = True
        if not ended:
            raise LLMError("server_error", f"{where} ended the stream before message_stop ({len(blocks)} deltas)")
        return _reply(blocks, stop, _Usage(usage_in, usage_out), model)

    def error(self, status: int, reason: str | None, headers: Mapping[str, str], content: bytes,
              where: str) -> LLMError:
        body = decode_json(content)
        code = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("type")
        return classify(status, provider_message(content, reason), headers, where, _CODES,
                        code if isinstance(code, str) else None)


def _reply(blocks: list[_Block], stop: str | None, usage: _Usage | None, model: str | None) -> Reply:
    return Reply(text="".join(b.text or "" for b in blocks if b.type == "text"),
                 finish=_FINISH.get(stop or "end_turn", "other"),
                 tokens_in=(usage.input_tokens or 0) if usage else 0,
                 tokens_out=(usage.output_tokens or 0) if usage else 0, model=model)


def _malformed(where: str, detail: str) -> LLMError:
    return LLMError("server_error", f"{where} sent a malformed message: {detail}")
