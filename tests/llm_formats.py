"""The four wire formats as a provider writes them, for tests/llm_server.py: success bodies,
streams (Server-Sent Events) and error bodies of OpenAI chat completions, Anthropic Messages,
Gemini generateContent and Cohere chat v2, and the status each failure gets."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

__all__ = ["STATUS", "Failure", "failure", "stream", "success", "texts"]

Failure = Literal["rate", "auth", "context", "quota", "server", "bad", "overloaded"]


STATUS: dict[str, dict[Failure, int]] = {
    "openai": {"rate": 429, "auth": 401, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
    "anthropic": {"rate": 429, "auth": 401, "context": 400, "quota": 400, "server": 500, "bad": 400,
                  "overloaded": 529},
    "gemini": {"rate": 429, "auth": 400, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
    "cohere": {"rate": 429, "auth": 401, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
}


def texts(wire: str, body: dict[str, Any]) -> list[str]:
    """Every message text of a request, the last user message last."""
    if wire == "gemini":
        texts = [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        return texts + [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
    texts = [body["system"]] if wire == "anthropic" and isinstance(body.get("system"), str) else []
    return texts + [str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict)]


def success(wire: str, number: int, model: str, text: str, finish: str, tokens_in: int, tokens_out: int,
             ) -> dict[str, Any]:
    if wire == "openai":
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        return {"id": f"chatcmpl-test{number}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": reason}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}
    if wire == "anthropic":
        reason = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}[finish]
        return {"id": f"msg_test{number}", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": reason, "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}
    if wire == "gemini":
        reason = {"stop": "STOP", "length": "MAX_TOKENS", "filter": "SAFETY"}[finish]
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": reason,
                                "index": 0}],
                "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                                  "totalTokenCount": tokens_in + tokens_out},
                "modelVersion": model, "responseId": f"resp-test{number}"}
    reason = {"stop": "COMPLETE", "length": "MAX_TOKENS", "filter": "ERROR_TOXIC"}[finish]
    return {"id": f"cohere-test{number}", "finish_reason": reason,
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "usage": {"billed_units": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                      "tokens": {"input_tokens": tokens_in, "output_tokens": tokens_out}}}


def stream(wire: str, number: int, model: str, text: str, finish: str, tokens_in: int, tokens_out: int,
            ) -> bytes:
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    events: list[tuple[str | None, Any]] = []
    if wire == "openai":
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        base = {"id": f"chatcmpl-test{number}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        events.append((None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                   "finish_reason": None}]}))
        events += [(None, {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                   for p in pieces]
        events.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
        events.append((None, {**base, "choices": [], "usage": {"prompt_tokens": tokens_in,
                                                               "completion_tokens": tokens_out,
                                                               "total_tokens": tokens_in + tokens_out}}))
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for _, e in events)
        return body + b"data: [DONE]\n\n"
    if wire == "anthropic":
        reason = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}[finish]
        events.append(("message_start", {"type": "message_start", "message": {
            "id": f"msg_test{number}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "usage": {"input_tokens": tokens_in, "output_tokens": 1}}}))
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))
        events.append(("ping", {"type": "ping"}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason,
                                                                            "stop_sequence": None},
                                         "usage": {"output_tokens": tokens_out}}))
        events.append(("message_stop", {"type": "message_stop"}))
    elif wire == "gemini":
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": p}], "role": "model"},
                                                     "index": 0}], "modelVersion": model}
            if last:
                chunk["candidates"][0]["finishReason"] = {"stop": "STOP", "length": "MAX_TOKENS",
                                                          "filter": "SAFETY"}[finish]
                chunk["usageMetadata"] = {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                                          "totalTokenCount": tokens_in + tokens_out}
            events.append((None, chunk))
    return b"".join((f"event: {name}\n".encode() if name else b"") + b"data: " + json.dumps(e).encode() + b"\n\n"
                    for name, e in events)


def failure(wire: str, status: int, failure: Failure, message: str) -> dict[str, Any]:
    if wire == "openai":
        kind, code = {"rate": ("requests", "rate_limit_exceeded"), "auth": ("invalid_request_error", "invalid_api_key"),
                      "context": ("invalid_request_error", "context_length_exceeded"),
                      "quota": ("insufficient_quota", "insufficient_quota"), "server": ("server_error", None),
                      "bad": ("invalid_request_error", None), "overloaded": ("server_error", None)}[failure]
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    if wire == "anthropic":
        kind = {"rate": "rate_limit_error", "auth": "authentication_error", "context": "invalid_request_error",
                "quota": "invalid_request_error", "server": "api_error", "bad": "invalid_request_error",
                "overloaded": "overloaded_error"}[failure]
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"}
    if wire == "gemini":
        state = {"rate": "RESOURCE_EXHAUSTED", "auth": "INVALID_ARGUMENT", "context": "INVALID_ARGUMENT",
                 "quota": "RESOURCE_EXHAUSTED", "server": "INTERNAL", "bad": "INVALID_ARGUMENT",
                 "overloaded": "UNAVAILABLE"}[failure]
        error: dict[str, Any] = {"code": status, "message": message, "status": state}
        if failure == "auth":
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                 "domain": "googleapis.com"}]
        return {"error": error}
    return {"id": "cohere-error", "message": message}
