"""Cohere's chat, version 2 (`POST {base}/chat`, bearer key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import LLMError
from .._types import Finish, HttpRequest, Reply, Request
from ._common import classify, one_line, provider_message

__all__ = ["CohereChat"]

_FINISH: dict[str, Finish] = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
                              "TOOL_CALL": "tool_calls", "ERROR_TOXIC": "content_filter"}


class _Block(msgspec.Struct):
    type: str = "text"
    text: str | None = None


class _Message(msgspec.Struct):
    content: list[_Block] = []


class _Tokens(msgspec.Struct):
    input_tokens: float = 0
    output_tokens: float = 0


class _Usage(msgspec.Struct):
    tokens: _Tokens | None = None
    billed_units: _Tokens | None = None


class _Response(msgspec.Struct):
    finish_reason: str
    message: _Message | None = None
    usage: _Usage | None = None


_response = msgspec.json.Decoder(_Response)


class CohereChat:
    name = "cohere"

    def request(self, base_url: str, key: str | None, req: Request) -> HttpRequest:
        body: dict[str, Any] = {"model": req.model, "stream": False,
                                "messages": [{"role": m.role, "content": m.content} for m in req.messages]}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)  # chat takes 0..1
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return HttpRequest(f"{base_url}/chat", headers, msgspec.json.encode(body))

    def reply(self, content: bytes, where: str, stream: bool) -> Reply:
        try:
            response = _response.decode(content)
        except msgspec.DecodeError as exc:
            raise LLMError("server_error", f"{where} sent a malformed chat response: {one_line(str(exc))}") from exc
        if response.finish_reason == "ERROR":
            raise LLMError("server_error", f"{where} ended the answer with finish_reason ERROR")
        usage = response.usage
        tokens = (usage.tokens or usage.billed_units) if usage else None
        text = "".join(b.text or "" for b in response.message.content if b.type == "text") if response.message else ""
        return Reply(text=text, finish=_FINISH.get(response.finish_reason, "other"),
                     tokens_in=int(tokens.input_tokens) if tokens else 0,
                     tokens_out=int(tokens.output_tokens) if tokens else 0)

    def error(self, status: int, reason: str | None, headers: Mapping[str, str], content: bytes,
              where: str) -> LLMError:
        return classify(status, provider_message(content, reason), headers, where)
